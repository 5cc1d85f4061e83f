//! Bridge ports: the counter programs on both directions of each container veth, and the
//! per-interface counters they fill.
//!
//! Ports use netlink (clsact + cls_bpf) attachments rather than TCX links: every TCX attach
//! waits for a full RCU grace period (about 10 ms here), twice per container, which alone
//! would exceed the budget of `netd run`. A netlink filter lives as long as its device, so
//! the programs keep running without the daemon, and they go away with the veth.

use aya::{
    maps::MapError,
    programs::tc::{
        self, NlOptions, SchedClassifierLink, TcAttachOptions, TcAttachType, TcError, TcHandle,
    },
    programs::ProgramError,
};
use netd_common::{
    counters::{IfaceCounters, IfaceKey},
    isolation::{Endpoint, EP_VIP_BACKEND},
    maps,
};

use super::{loader::classifier_for, Datapath, DatapathError};

const PORT_PROGRAMS: [(&str, TcAttachType); 2] = [
    (maps::PROG_PORT_INGRESS, TcAttachType::Ingress),
    (maps::PROG_PORT_EGRESS, TcAttachType::Egress),
];

/// netd's filters sit at a fixed priority and handle, so that a restarted daemon finds what
/// an earlier run attached (the kernel refuses a second filter there) instead of stacking.
const FILTER: NlOptions = NlOptions {
    priority: 1,
    handle: TcHandle::new(0, 0x4e44),
    classid: None,
};

fn is_eexist(e: &ProgramError) -> bool {
    matches!(e, ProgramError::TcError(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST))
}

impl Datapath {
    /// Starts counting, policing and translating on `port`, the host-side veth of the
    /// container interface `ep`. Idempotent: filters an earlier run left on the port get this
    /// run's programs.
    pub fn attach_port(
        &mut self,
        port: &str,
        ifindex: u32,
        ep: Endpoint,
    ) -> Result<(), DatapathError> {
        self.track(ifindex).map_err(|e| DatapathError::Port {
            op: "seed counters",
            port: port.to_string(),
            source: e.into(),
        })?;
        // An adopted port keeps the backend mark the VIPs gave it until they are synced
        // again: a backend's replies that lost their translation for a moment would reach
        // the client from the backend's address, and the client's RST would end them.
        let ep = match self.endpoints.get(&ifindex, 0) {
            Ok(old) if old.addr_be == ep.addr_be && old.network == ep.network => Endpoint {
                flags: ep.flags | (old.flags & EP_VIP_BACKEND),
                ..ep
            },
            _ => ep,
        };
        self.set_endpoint(ifindex, ep)?;
        self.attach_filters(port, &PORT_PROGRAMS)
    }

    /// Puts netd's filters for `programs` on `iface` through netlink (clsact + cls_bpf),
    /// replacing the programs of filters an earlier run left there.
    pub(super) fn attach_filters(
        &mut self,
        iface: &str,
        programs: &[(&'static str, TcAttachType)],
    ) -> Result<(), DatapathError> {
        let err =
            |op: &'static str, e: Box<dyn std::error::Error + Send + Sync>| DatapathError::Port {
                op,
                port: iface.to_string(),
                source: e,
            };
        match tc::qdisc_add_clsact(iface) {
            Ok(()) => {}
            Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(err("add clsact", e.into())),
        }
        for (prog, attach) in programs {
            let program = classifier_for(&mut self.ebpf, prog)?;
            let id =
                match program.attach_with_options(iface, *attach, TcAttachOptions::Netlink(FILTER))
                {
                    Ok(id) => id,
                    // An earlier run's filter: swap this run's program in, atomically, so that an
                    // upgraded daemon runs its own code without a gap in the datapath.
                    Err(e) if is_eexist(&e) => {
                        let existing = SchedClassifierLink::attached(
                            iface,
                            *attach,
                            FILTER.priority,
                            FILTER.handle,
                            None,
                        )
                        .map_err(|e| err("find filter", e.into()))?;
                        program
                            .attach_to_link(existing)
                            .map_err(|e| err("replace", e.into()))?
                    }
                    Err(e) => return Err(err("attach", e.into())),
                };
            let link = program
                .take_link(id)
                .map_err(|e| err("take link", e.into()))?;
            // Dropping the handle would detach; the filter must outlive the daemon.
            std::mem::forget(link);
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

    /// Forgets the counters and endpoint of `ifindex`. The filters go with the device itself.
    pub fn untrack(&mut self, ifindex: u32) -> Result<(), DatapathError> {
        super::removed(self.iface_counters.remove(&IfaceKey { ifindex })).map_err(|source| {
            DatapathError::Map {
                name: maps::IFACE_COUNTERS,
                source,
            }
        })?;
        self.remove_endpoint(ifindex)
    }

    /// Counters of the port with `ifindex`, summed over CPUs.
    pub fn port_counters(&self, ifindex: u32) -> Option<IfaceCounters> {
        let per_cpu = self.iface_counters.get(&IfaceKey { ifindex }, 0).ok()?;
        let mut sum = IfaceCounters::default();
        per_cpu.iter().for_each(|c| sum.merge(c));
        Some(sum)
    }

    /// What is missing for `port` (host end of the interface with address `ip`) to be in
    /// the datapath: its endpoint entry, its counters, its two filters.
    pub fn check_port(&self, port: &str, ifindex: u32, ip: std::net::Ipv4Addr) -> Vec<String> {
        let mut problems = Vec::new();
        let addr_be = u32::from(ip).to_be();
        match self.endpoints().into_iter().find(|(i, _)| *i == ifindex) {
            Some((_, ep)) if ep.addr_be == addr_be => {}
            Some(_) => problems.push(format!(
                "the datapath endpoint of {port} has another address than {ip}"
            )),
            None => problems.push(format!("{port} has no datapath endpoint")),
        }
        if self.iface_counters.get(&IfaceKey { ifindex }, 0).is_err() {
            problems.push(format!("{port} has no counters"));
        }
        for (prog, attach) in PORT_PROGRAMS {
            let attached =
                SchedClassifierLink::attached(port, attach, FILTER.priority, FILTER.handle, None);
            if attached.is_err() {
                problems.push(format!("{port} has no {prog} filter"));
            }
        }
        problems
    }

    /// Interface indexes that have a counter or endpoint entry.
    pub fn counted_ifindexes(&self) -> Vec<u32> {
        let mut indexes: Vec<u32> = self
            .iface_counters
            .keys()
            .filter_map(|k| k.ok().map(|k| k.ifindex))
            .chain(self.endpoints().into_iter().map(|(i, _)| i))
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        indexes
    }
}
