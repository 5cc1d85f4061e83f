//! Published host ports are the containers': netd lists them in the kernel's
//! `net.ipv4.ip_local_reserved_ports`, so that the kernel never hands one to a host socket as
//! its ephemeral port (that socket's replies, a DNS or NTP answer, would be translated into
//! the container). The ports the operator reserved stay reserved: netd keeps them apart, in a
//! file of its state dir, and writes them with its own.

mod ranges;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

pub use ranges::{format, parse};

const SYSCTL: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// What netd found and what it wrote, so that a restart tells the operator's ports from its
/// own.
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
    file: PathBuf,
    base: BTreeSet<u16>,
    published: BTreeMap<u16, BTreeSet<(u8, std::net::Ipv4Addr)>>,
    sysctl: PathBuf,
}

impl ReservedPorts {
    /// Reads the current reservation: the operator's, unless it is what netd wrote last.
    pub fn open(file: &Path) -> Self {
        Self::open_at(file, Path::new(SYSCTL))
    }

    fn open_at(file: &Path, sysctl: &Path) -> Self {
        let current = std::fs::read_to_string(sysctl).unwrap_or_default();
        let saved: Saved = std::fs::read(file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        // Changed since netd wrote it (or never written): the operator's now.
        let base = if !saved.written.is_empty() && saved.written.trim() == current.trim() {
            parse(&saved.base)
        } else {
            parse(&current)
        };
        Self {
            file: file.to_path_buf(),
            base,
            published: BTreeMap::new(),
            sysctl: sysctl.to_path_buf(),
        }
    }

    /// Adds publications (and writes the reservation).
    pub fn add(&mut self, published: impl IntoIterator<Item = Published>) -> std::io::Result<()> {
        for (proto, ip, port) in published {
            self.published.entry(port).or_default().insert((proto, ip));
        }
        self.write()
    }

    /// Removes publications: a port stays reserved while any of its publications is left.
    pub fn remove(
        &mut self,
        published: impl IntoIterator<Item = Published>,
    ) -> std::io::Result<()> {
        for (proto, ip, port) in published {
            if let Some(by) = self.published.get_mut(&port) {
                by.remove(&(proto, ip));
                if by.is_empty() {
                    self.published.remove(&port);
                }
            }
        }
        self.write()
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
        // With a newline: the kernel takes an empty write as no write at all.
        std::fs::write(&self.sysctl, format!("{written}\n"))?;
        let saved = Saved {
            base: format(&self.base),
            written,
        };
        let tmp = self.file.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(&saved).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &self.file)
    }
}

#[cfg(test)]
mod tests;
