//! Published host ports are the containers': netd lists them in the kernel's
//! `net.ipv4.ip_local_reserved_ports`, so that the kernel never hands one to a host socket as
//! its ephemeral port (that socket's replies, a DNS or NTP answer, would be translated into
//! the container). The ports the operator reserved stay reserved: netd keeps them apart, in a
//! record of its state dir (see [`slots`]), and writes them with its own. The record is
//! written before the sysctl, so that a write that fails leaves both as they were.

mod ranges;
mod slots;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

pub use ranges::{format, parse};

const SYSCTL: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// The record of earlier versions (one JSON file, rewritten with a rename), read once.
#[derive(Default, Serialize, Deserialize)]
struct Saved {
    /// The operator's reservation, as netd first found it.
    base: String,
    /// What netd last wrote.
    written: String,
}

/// One publication of a host port: its protocol and host address (a port may be published
/// for TCP and UDP, on several addresses).
pub type Published = (u8, std::net::Ipv4Addr, u16);

/// The reservation of the daemon's namespace: the operator's ports and the published ones.
/// Publishing what is published already changes nothing (a restart publishes again).
pub struct ReservedPorts {
    slots: slots::Slots,
    base: BTreeSet<u16>,
    published: BTreeMap<u16, BTreeSet<(u8, std::net::Ipv4Addr)>>,
    sysctl: PathBuf,
}

impl ReservedPorts {
    /// Reads the current reservation: the operator's, unless it is what netd wrote (its
    /// last record, or the one before when a crash came between the record and the sysctl).
    /// `file` names the record (`FILE.a`, `FILE.b`; `FILE.json` of earlier versions).
    pub fn open(file: &Path) -> Self {
        Self::open_at(file, Path::new(SYSCTL))
    }

    fn open_at(file: &Path, sysctl: &Path) -> Self {
        let current = std::fs::read_to_string(sysctl).unwrap_or_default();
        let slots = slots::Slots::new(file);
        let legacy = std::fs::read(file.with_extension("json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Saved>(&b).ok())
            .map(|s| slots::Record {
                seq: 0,
                base: s.base,
                written: s.written,
            });
        let mut records = slots.read();
        records.extend(legacy);
        // Changed since netd wrote it (or never written): the operator's now.
        let base = records
            .iter()
            .find(|r| !r.written.is_empty() && r.written.trim() == current.trim())
            .map_or_else(|| parse(&current), |r| parse(&r.base));
        Self {
            slots,
            base,
            published: BTreeMap::new(),
            sysctl: sysctl.to_path_buf(),
        }
    }

    /// Adds publications (and writes the reservation); one that cannot be written changes
    /// nothing.
    pub fn add(&mut self, published: impl IntoIterator<Item = Published>) -> std::io::Result<()> {
        let before = self.published.clone();
        for (proto, ip, port) in published {
            self.published.entry(port).or_default().insert((proto, ip));
        }
        self.write_or_restore(before)
    }

    /// Removes publications: a port stays reserved while any of its publications is left.
    pub fn remove(
        &mut self,
        published: impl IntoIterator<Item = Published>,
    ) -> std::io::Result<()> {
        let before = self.published.clone();
        for (proto, ip, port) in published {
            if let Some(by) = self.published.get_mut(&port) {
                by.remove(&(proto, ip));
                if by.is_empty() {
                    self.published.remove(&port);
                }
            }
        }
        self.write_or_restore(before)
    }

    fn write_or_restore(
        &mut self,
        before: BTreeMap<u16, BTreeSet<(u8, std::net::Ipv4Addr)>>,
    ) -> std::io::Result<()> {
        let written = self.write();
        if written.is_err() {
            self.published = before;
        }
        written
    }

    /// What the reservation is: the operator's ports and the published ones.
    pub fn ports(&self) -> BTreeSet<u16> {
        self.base
            .iter()
            .copied()
            .chain(self.published.keys().copied())
            .collect()
    }

    fn write(&self) -> std::io::Result<()> {
        let written = format(&self.ports());
        self.slots.write(&slots::Record {
            seq: 0,
            base: format(&self.base),
            written: written.clone(),
        })?;
        // With a newline: the kernel takes an empty write as no write at all.
        std::fs::write(&self.sysctl, format!("{written}\n"))
    }
}

#[cfg(test)]
mod tests;
