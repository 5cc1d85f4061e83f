//! Rewrites of the files containers see through bind mounts (hosts, resolv.conf, hostname),
//! in two steps so that a change is all or nothing with the state: [`prepare`] takes every
//! block the new contents need (a full disk refuses here, and nothing has changed yet), and
//! [`Prepared::commit`] writes them in place into blocks already theirs. A rename would leave
//! running containers the old inode; an in-place write on a full disk would leave them half
//! a file.

use std::{
    fs::{File, OpenOptions},
    io,
    os::{fd::AsRawFd, unix::fs::FileExt},
    path::{Path, PathBuf},
};

use super::store::{write_for_containers, StoreError};

/// The new contents of a container's files, with their blocks taken.
pub struct Prepared {
    files: Vec<(PathBuf, Option<File>, Vec<u8>)>,
}

/// Takes the blocks of each `(path, contents)`: an existing file keeps its size and gets
/// the blocks past it reserved (FALLOC_FL_KEEP_SIZE), a new one is made at commit.
pub fn prepare(files: Vec<(PathBuf, Vec<u8>)>) -> Result<Prepared, StoreError> {
    let mut prepared = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io("open", &path, e)),
        };
        if let Some(f) = &file {
            reserve(f, bytes.len()).map_err(|e| StoreError::io("allocate", &path, e))?;
        }
        prepared.push((path, file, bytes));
    }
    Ok(Prepared { files: prepared })
}

fn reserve(file: &File, len: usize) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: fallocate(2) on an open descriptor; KEEP_SIZE leaves the file's size alone.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            0,
            len as libc::off_t,
        )
    };
    match r {
        0 => Ok(()),
        _ => match io::Error::last_os_error() {
            // A file system without fallocate: the write below takes its chance.
            e if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
            e => Err(e),
        },
    }
}

impl Prepared {
    /// Writes every file: existing ones in place (a reader may see a mix of the two
    /// versions for a moment, as with Docker's updates), new ones atomically.
    pub fn commit(self) -> Result<(), StoreError> {
        for (path, file, bytes) in self.files {
            match file {
                Some(f) => {
                    write_in_place(&f, &bytes).map_err(|e| StoreError::io("write", &path, e))?
                }
                None => write_for_containers(&path, &bytes)?,
            }
        }
        Ok(())
    }
}

fn write_in_place(file: &File, bytes: &[u8]) -> io::Result<()> {
    file.write_all_at(bytes, 0)?;
    file.set_len(bytes.len() as u64)?;
    file.sync_data()
}

/// Writes a container file at once (prepare and commit), for callers with nothing to keep
/// in step with it.
pub fn rewrite(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    prepare(vec![(path.to_path_buf(), bytes.to_vec())])?.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_files_change_only_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, b"old contents\n").unwrap();
        let fresh = dir.path().join("hostname");
        let p = prepare(vec![
            (hosts.clone(), b"new and longer contents\n".to_vec()),
            (fresh.clone(), b"web\n".to_vec()),
        ])
        .unwrap();
        assert_eq!(std::fs::read(&hosts).unwrap(), b"old contents\n");
        assert!(!fresh.exists());
        drop(p);
        assert_eq!(
            std::fs::read(&hosts).unwrap(),
            b"old contents\n",
            "dropped, nothing written"
        );
        prepare(vec![
            (hosts.clone(), b"short\n".to_vec()),
            (fresh.clone(), b"web\n".to_vec()),
        ])
        .unwrap()
        .commit()
        .unwrap();
        assert_eq!(std::fs::read(&hosts).unwrap(), b"short\n");
        assert_eq!(std::fs::read(&fresh).unwrap(), b"web\n");
    }
}
