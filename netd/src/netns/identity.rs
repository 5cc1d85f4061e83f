//! Which namespace a path names: its identity (the nsfs device and inode), the same whatever
//! path reaches it (`/proc/PID/ns/net`, a bind mount, `/run/netns/NAME`), and the namespaces
//! no caller may hand to netd as a container's.

use std::{io, os::unix::fs::MetadataExt, path::Path};

use nix::sys::statfs::{statfs, NSFS_MAGIC};

/// A namespace's identity: the device and inode of its nsfs file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

impl NsId {
    /// The identity of the namespace at `path`; an error when the path cannot be read or is
    /// no namespace (a plain file, a directory).
    pub fn of(path: &Path) -> io::Result<Self> {
        let fs = statfs(path).map_err(|e| io::Error::from_raw_os_error(e as i32))?;
        if fs.filesystem_type() != NSFS_MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a namespace (no nsfs file)",
            ));
        }
        let meta = std::fs::metadata(path)?;
        Ok(NsId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// Namespaces that are never a container's: a caller naming one of them, by any path, would
/// have netd set interfaces and routes of the host itself.
#[derive(Clone, Debug, Default)]
pub struct Protected(Vec<(NsId, &'static str)>);

impl Protected {
    /// What can be known before the daemon enters `--netns`: the namespace it was started
    /// in, and PID 1's where it can be read (some hosts refuse even root that file; the
    /// started-in one covers the usual case then).
    pub fn at_start() -> io::Result<Self> {
        let mut p = Protected::default();
        p.add(
            NsId::of(Path::new("/proc/self/ns/net"))?,
            "the namespace netd was started in",
        );
        match NsId::of(Path::new("/proc/1/ns/net")) {
            Ok(id) => p.add(id, "the host's network namespace (PID 1's)"),
            Err(e) => {
                log::info!("PID 1's network namespace cannot be read ({e}); guarding the others")
            }
        }
        Ok(p)
    }

    /// Adds the namespace the daemon lives in, once it is there.
    pub fn add_own(&mut self) -> io::Result<()> {
        let id = NsId::of(Path::new("/proc/self/ns/net"))?;
        self.add(id, "the daemon's own network namespace");
        Ok(())
    }

    pub fn add(&mut self, id: NsId, what: &'static str) {
        if !self.0.iter().any(|(known, _)| *known == id) {
            self.0.push((id, what));
        }
    }

    /// What `id` is, if it is a protected namespace.
    pub fn which(&self, id: NsId) -> Option<&'static str> {
        self.0
            .iter()
            .find(|(known, _)| *known == id)
            .map(|(_, what)| *what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_the_same_by_any_path() {
        let me = NsId::of(Path::new("/proc/self/ns/net")).unwrap();
        let by_pid = format!("/proc/{}/ns/net", std::process::id());
        assert_eq!(NsId::of(Path::new(&by_pid)).unwrap(), me);
    }

    #[test]
    fn what_is_no_namespace_has_no_identity() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ns");
        std::fs::write(&file, b"").unwrap();
        assert!(NsId::of(&file).is_err());
        assert!(NsId::of(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn the_first_name_of_a_namespace_is_kept() {
        let mut p = Protected::default();
        let id = NsId { dev: 4, ino: 9 };
        p.add(id, "the namespace netd was started in");
        p.add(id, "the daemon's own network namespace");
        assert_eq!(p.which(id), Some("the namespace netd was started in"));
        assert_eq!(p.which(NsId { dev: 4, ino: 10 }), None);
    }
}
