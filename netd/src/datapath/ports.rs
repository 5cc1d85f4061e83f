//! Bridge ports: the counter programs on both directions of each container veth, and the
//! per-interface counters they fill.
//!
//! Ports use netlink (clsact + cls_bpf) attachments rather than TCX links: every TCX attach
//! waits for a full RCU grace period (about 10 ms here), twice per container, which alone
//! would exceed the budget of `netd run`. A netlink filter lives as long as its device, so
//! the programs keep running without the daemon, and they go away with the veth.

use aya::maps::MapError;
use netd_common::{
    counters::{IfaceCounters, IfaceKey},
    isolation::{Endpoint, EP_VIP_BACKEND},
    maps,
};

use super::{
    loader::classifier_for,
    tc::{Direction, TcSocket},
    Datapath, DatapathError,
};

const PORT_PROGRAMS: [(&str, Direction); 2] = [
    (maps::PROG_PORT_INGRESS, Direction::Ingress),
    (maps::PROG_PORT_EGRESS, Direction::Egress),
];

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
        self.attach_filters(port, ifindex, &PORT_PROGRAMS)
    }

    /// Puts netd's filters for `programs` on `iface` (clsact + cls_bpf). A filter an
    /// earlier run left there keeps running if it has this run's program, and gets it
    /// otherwise, swapped in atomically: an upgraded daemon runs its own code without a gap.
    pub(super) fn attach_filters(
        &mut self,
        iface: &str,
        ifindex: u32,
        programs: &[(&'static str, Direction)],
    ) -> Result<(), DatapathError> {
        let mut tc = TcSocket::open().map_err(port_err(iface, "open rtnetlink for"))?;
        self.attach_filters_on(&mut tc, iface, ifindex, programs)
    }

    /// [`Datapath::attach_filters`] on the namespace of `tc`.
    pub(super) fn attach_filters_on(
        &mut self,
        tc: &mut TcSocket,
        iface: &str,
        ifindex: u32,
        programs: &[(&'static str, Direction)],
    ) -> Result<(), DatapathError> {
        let err = |op: &'static str| port_err(iface, op);
        let mut has_clsact = false;
        for (name, direction) in programs {
            let want = self.program_id(name);
            let running = tc
                .filter_program(ifindex, *direction)
                .map_err(err("read filter of"))?;
            match running {
                Some(id) if Some(id) == want => continue,
                Some(_) => {}
                None if !has_clsact => {
                    tc.add_clsact(ifindex).map_err(err("add clsact"))?;
                    has_clsact = true;
                }
                None => {}
            }
            let fd = classifier_for(&mut self.ebpf, name)?
                .fd()
                .map_err(|source| DatapathError::Program { name, source })?;
            tc.set_filter(ifindex, *direction, fd, name)
                .map_err(err("attach"))?;
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
        match TcSocket::open() {
            Ok(mut tc) => {
                problems.extend(self.check_filters_on(&mut tc, port, ifindex, &PORT_PROGRAMS))
            }
            Err(e) => problems.push(format!("{port}'s filters cannot be read: {e}")),
        }
        problems
    }

    /// What is missing of `programs`' filters on `iface` in the namespace of `tc`.
    pub(super) fn check_filters_on(
        &self,
        tc: &mut TcSocket,
        iface: &str,
        ifindex: u32,
        programs: &[(&'static str, Direction)],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for (prog, direction) in programs {
            let want = self.program_id(prog);
            match tc.filter_program(ifindex, *direction) {
                Ok(Some(id)) if Some(id) == want => {}
                Ok(Some(id)) => problems.push(format!("{iface}'s {prog} filter runs program {id}")),
                Ok(None) => problems.push(format!("{iface} has no {prog} filter")),
                Err(e) => problems.push(format!("{iface}'s {prog} filter cannot be read: {e}")),
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

fn port_err<'a>(iface: &'a str, op: &'static str) -> impl Fn(std::io::Error) -> DatapathError + 'a {
    move |e| DatapathError::Port {
        op,
        port: iface.to_string(),
        source: e.into(),
    }
}
