//! One daemon per state. Before a daemon reads or changes anything it takes exclusive locks
//! on everything another daemon could share with it: its network namespace (whose links it
//! reconciles), its state dir, its bpffs dir (whose pinned maps it loads) and its API
//! socket. A second daemon on any of them refuses at once, naming the path and the holder,
//! and has changed nothing. The locks are flock(2) locks: the kernel drops them with the
//! process, so a dead daemon's are never stale.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::{
        fd::AsRawFd,
        unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
};

/// What another daemon holds, and who.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what} {path} is in use by another netd daemon{holder}; {hint}")]
    Held {
        what: &'static str,
        path: PathBuf,
        /// " (PID N)" when /proc/locks names it.
        holder: String,
        hint: &'static str,
    },
    #[error("locking {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The paths a daemon must hold alone.
pub struct Paths<'a> {
    /// The daemon's network namespace (`/proc/self/ns/net` once it has entered it).
    pub netns: &'a Path,
    /// How the operator named it (`--netns`), for messages.
    pub netns_name: &'a Path,
    pub state_dir: &'a Path,
    pub bpffs: &'a Path,
    pub socket: &'a Path,
}

/// The locks, held until the daemon exits.
pub struct Locks {
    _held: Vec<File>,
}

/// Takes every lock, or none: the first one held elsewhere is the error.
pub fn take(paths: &Paths) -> Result<Locks, LockError> {
    let netns = open_existing(paths.netns, "network namespace")?;
    let netns = lock(
        netns,
        "network namespace",
        paths.netns_name,
        "one daemon per network namespace",
    )?;
    make_dir(paths.state_dir, "state dir")?;
    let state_lock = paths.state_dir.join("netd.lock");
    let mut state = lock(
        open_lock_file(&state_lock, "state dir")?,
        "state dir",
        paths.state_dir,
        "stop it or pick another --state-dir",
    )?;
    make_dir(paths.bpffs, "bpffs dir")?;
    let bpffs = lock(
        open_existing(paths.bpffs, "bpffs dir")?,
        "bpffs dir",
        paths.bpffs,
        "stop it or pick another --bpffs",
    )?;
    let socket_lock = lock_file_of(paths.socket);
    if let Some(dir) = socket_lock.parent() {
        make_dir(dir, "socket dir")?;
    }
    let socket = lock(
        open_lock_file(&socket_lock, "socket")?,
        "socket",
        paths.socket,
        "stop it or pick another --socket",
    )?;
    // For whoever looks: the holder of the state dir.
    let _ = state.set_len(0);
    let _ = writeln!(state, "{}", std::process::id());
    Ok(Locks {
        _held: vec![netns, state, bpffs, socket],
    })
}

/// `<socket>.lock`, beside the socket: the socket itself is replaced when it is stale.
pub fn lock_file_of(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn make_dir(dir: &Path, what: &'static str) -> Result<(), LockError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(what, dir))
}

fn io_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> LockError + 'a {
    move |source| LockError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn open_existing(path: &Path, what: &'static str) -> Result<File, LockError> {
    File::open(path).map_err(io_error(what, path))
}

fn open_lock_file(path: &Path, what: &'static str) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_error(what, path))
}

fn lock(
    file: File,
    what: &'static str,
    path: &Path,
    hint: &'static str,
) -> Result<File, LockError> {
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(file);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
        return Err(io_error(what, path)(err));
    }
    let holder = file
        .metadata()
        .ok()
        .and_then(|m| {
            holder_of(
                &std::fs::read_to_string("/proc/locks").ok()?,
                m.dev(),
                m.ino(),
            )
        })
        .map(|pid| format!(" (PID {pid})"))
        .unwrap_or_default();
    Err(LockError::Held {
        what,
        path: path.to_path_buf(),
        holder,
        hint,
    })
}

/// The PID of the process holding a flock on the file with `dev` and `ino`, from the text
/// of /proc/locks ("1: FLOCK  ADVISORY  WRITE 4242 00:28:925165 0 EOF").
fn holder_of(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let id = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Lines of waiters start "->"; only holders are wanted.
        (fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&id.as_str()))
            .then(|| fields.get(4)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let locks = "1: FLOCK  ADVISORY  WRITE 13100 00:04:4026531833 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 99 00:28:925165 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 4242 00:28:925165 0 EOF\n\
                     3: -> FLOCK  ADVISORY  WRITE 5555 00:28:925165 0 EOF\n";
        let dev = libc::makedev(0, 0x28);
        assert_eq!(holder_of(locks, dev, 925165), Some(4242));
        assert_eq!(
            holder_of(locks, libc::makedev(0, 4), 4026531833),
            Some(13100)
        );
        assert_eq!(holder_of(locks, dev, 1), None);
    }

    #[test]
    fn a_second_holder_is_refused_with_the_path_and_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netd.lock");
        let first = lock(
            open_lock_file(&path, "state dir").unwrap(),
            "state dir",
            dir.path(),
            "x",
        );
        assert!(first.is_ok());
        // A second open file description conflicts, even in the same process.
        let second = lock(
            open_lock_file(&path, "state dir").unwrap(),
            "state dir",
            dir.path(),
            "x",
        );
        let err = second.expect_err("refused").to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(
            err.contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
        drop(first);
        assert!(lock(
            open_lock_file(&path, "state dir").unwrap(),
            "state dir",
            dir.path(),
            "x"
        )
        .is_ok());
    }

    #[test]
    fn the_socket_lock_sits_beside_the_socket() {
        assert_eq!(
            lock_file_of(Path::new("/run/netd.sock")),
            Path::new("/run/netd.sock.lock")
        );
    }
}
