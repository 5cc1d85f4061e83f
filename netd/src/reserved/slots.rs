//! Where the reserved-ports bookkeeping lives: two slots (`FILE.a`, `FILE.b`), each a file
//! allocated once to [`SLOT`] bytes and overwritten in place, the newer record alternating
//! between them. A write needs no free space (a full disk must not stop `rm` from releasing
//! its ports), and a crash in the middle of one leaves the other whole.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// Room of a slot: far more than a reservation of ranges takes (`1-65535` is 7 bytes); a
/// record that does not fit is refused.
pub const SLOT: usize = 64 * 1024;

/// One record: what netd found as the operator's and what it wrote into the sysctl.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub base: String,
    pub written: String,
}

pub struct Slots {
    paths: [PathBuf; 2],
}

impl Slots {
    pub fn new(file: &Path) -> Self {
        let slot = |s: &str| {
            let mut name = file.as_os_str().to_owned();
            name.push(s);
            PathBuf::from(name)
        };
        Self {
            paths: [slot(".a"), slot(".b")],
        }
    }

    /// The records of both slots that read whole, newest first.
    pub fn read(&self) -> Vec<Record> {
        let mut records: Vec<Record> = self
            .paths
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter_map(|b| serde_json::from_slice::<Record>(trim(&b)).ok())
            .collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.seq));
        records
    }

    /// Writes `record` over the older slot (its `seq` set one past the newest).
    pub fn write(&self, record: &Record) -> io::Result<()> {
        let records = self.read();
        let seq = records.first().map_or(1, |r| r.seq + 1);
        let record = Record {
            seq,
            ..record.clone()
        };
        let mut bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
        if bytes.len() > SLOT {
            return Err(io::Error::other(format!(
                "a reservation record of {} bytes does not fit a slot of {SLOT}",
                bytes.len()
            )));
        }
        // Padded with spaces: JSON ends where they begin, and the slot keeps its blocks.
        bytes.resize(SLOT, b' ');
        let path = &self.paths[(seq % 2) as usize];
        let file = open_allocated(path)?;
        file.write_all_at(&bytes, 0)?;
        file.sync_data()
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// Opens a slot, allocating its blocks the first time: the only moment a full disk can
/// refuse it.
fn open_allocated(path: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.len() < SLOT as u64 {
        // SAFETY: fallocate(2) on a descriptor this function owns.
        let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, SLOT as libc::off_t) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        file.flush()?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_whole_record_wins_and_writes_alternate() {
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots::new(&dir.path().join("reserved-ports"));
        assert!(slots.read().is_empty());
        for n in 0..3 {
            let r = Record {
                base: "22".into(),
                written: format!("22,{}", 8080 + n),
                ..Default::default()
            };
            slots.write(&r).unwrap();
        }
        let records = slots.read();
        assert_eq!(records[0].written, "22,8082");
        assert_eq!(records[1].written, "22,8081");
        assert_eq!(records.len(), 2);
        // A torn write of the newer slot leaves the older one.
        let newer = dir.path().join("reserved-ports.b");
        std::fs::write(&newer, b"{\"seq\":3,\"ba").unwrap();
        assert_eq!(slots.read()[0].written, "22,8081");
        assert_eq!(
            std::fs::metadata(dir.path().join("reserved-ports.a"))
                .unwrap()
                .len(),
            SLOT as u64
        );
    }
}
