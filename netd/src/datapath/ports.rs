//! Bridge ports: the counter programs on both directions of each container veth, and the
//! per-interface counters they fill.

use std::path::PathBuf;

use aya::{
    maps::MapError,
    programs::{links::FdLink, tc::TcAttachType},
};
use netd_common::{
    counters::{IfaceCounters, IfaceKey},
    maps,
};

use super::{loader::classifier_for, Datapath, DatapathError};

const DIRECTIONS: [(&str, TcAttachType, &str); 2] = [
    (maps::PROG_PORT_INGRESS, TcAttachType::Ingress, "ingress"),
    (maps::PROG_PORT_EGRESS, TcAttachType::Egress, "egress"),
];

impl Datapath {
    fn link_pin(&self, port: &str, direction: &str) -> PathBuf {
        // bpffs refuses names with dots.
        self.links_dir.join(format!("{port}-{direction}"))
    }

    /// Starts counting on `port` (a host-side veth). Idempotent: a port whose links are already
    /// pinned, by this run or an earlier one, is adopted as it is.
    pub fn attach_port(&mut self, port: &str, ifindex: u32) -> Result<(), DatapathError> {
        let err = |op: &'static str| {
            let port = port.to_string();
            move |e: Box<dyn std::error::Error + Send + Sync>| DatapathError::Port {
                op,
                port,
                source: e,
            }
        };
        self.track(ifindex)
            .map_err(|e| err("seed counters")(e.into()))?;
        for (prog, attach, direction) in DIRECTIONS {
            let pin = self.link_pin(port, direction);
            if pin.exists() {
                continue;
            }
            let program = classifier_for(&mut self.ebpf, prog)?;
            let id = program
                .attach(port, attach)
                .map_err(|e| err("attach")(e.into()))?;
            let link = program
                .take_link(id)
                .map_err(|e| err("take link")(e.into()))?;
            let link = FdLink::try_from(link).map_err(|e| err("link fd")(e.into()))?;
            link.pin(&pin).map_err(|e| err("pin link")(e.into()))?;
        }
        Ok(())
    }

    /// Gives `ifindex` a zeroed counter entry, unless it has one. The programs count only
    /// interfaces that have an entry: they never insert, so no stranger fills the map.
    pub fn track(&mut self, ifindex: u32) -> Result<(), MapError> {
        let key = IfaceKey { ifindex };
        if self.iface_counters.get(&key, 0).is_ok() {
            return Ok(());
        }
        let cpus = aya::util::nr_cpus().map_err(|(call, io_error)| {
            MapError::SyscallError(aya::sys::SyscallError { call, io_error })
        })?;
        let zero = aya::maps::PerCpuValues::try_from(vec![IfaceCounters::default(); cpus])?;
        self.iface_counters.insert(key, zero, 0)
    }

    /// Forgets the counters of `ifindex`.
    pub fn untrack(&mut self, ifindex: u32) -> Result<(), MapError> {
        match self.iface_counters.remove(&IfaceKey { ifindex }) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stops counting on `port` and forgets its counters. Keeps going past failures.
    pub fn detach_port(&mut self, port: &str, ifindex: Option<u32>) -> Result<(), DatapathError> {
        let mut first_error = None;
        for (_, _, direction) in DIRECTIONS {
            // Removing the last reference (the pin) detaches the TCX link.
            let pin = self.link_pin(port, direction);
            if let Err(e) = std::fs::remove_file(&pin) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    first_error.get_or_insert(DatapathError::Bpffs {
                        op: "unpin",
                        path: pin,
                        source: e,
                    });
                }
            }
        }
        if let Some(ifindex) = ifindex {
            if let Err(e) = self.untrack(ifindex) {
                first_error.get_or_insert(DatapathError::Port {
                    op: "remove counters",
                    port: port.to_string(),
                    source: e.into(),
                });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Ports with pinned links, by name: what an earlier run attached.
    pub fn pinned_ports(&self) -> Vec<String> {
        let mut ports: Vec<String> = std::fs::read_dir(&self.links_dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.rsplit_once('-').map(|(p, _)| p.to_string()))
            .collect();
        ports.sort();
        ports.dedup();
        ports
    }

    /// Counters of the port with `ifindex`, summed over CPUs.
    pub fn port_counters(&self, ifindex: u32) -> Option<IfaceCounters> {
        let per_cpu = self.iface_counters.get(&IfaceKey { ifindex }, 0).ok()?;
        let mut sum = IfaceCounters::default();
        per_cpu.iter().for_each(|c| sum.merge(c));
        Some(sum)
    }

    /// Interface indexes that have a counter entry.
    pub fn counted_ifindexes(&self) -> Vec<u32> {
        self.iface_counters
            .keys()
            .filter_map(|k| k.ok().map(|k| k.ifindex))
            .collect()
    }
}
