//! macvlan endpoints in the datapath: their own interface, in the container's namespace,
//! gets the LAN programs (anti-spoofing of what the container sends, counters both ways),
//! and an endpoint entry and counters under its ifindex. netd gives those interfaces
//! ifindexes of their own range, so that the maps' keys stay unique across namespaces.

use std::path::Path;

use netd_common::{isolation::Endpoint, maps};

use super::{
    tc::{Direction, TcSocket},
    Datapath, DatapathError,
};

const LAN_PROGRAMS: [(&str, Direction); 2] = [
    (maps::PROG_LAN_EGRESS, Direction::Egress),
    (maps::PROG_LAN_INGRESS, Direction::Ingress),
];

fn tc_in(netns: &Path, iface: &str) -> Result<TcSocket, DatapathError> {
    crate::netns::netlink_socket_in(netns)
        .map(TcSocket::from_fd)
        .map_err(|e| DatapathError::Port {
            op: "open rtnetlink in the namespace of",
            port: iface.to_string(),
            source: e.into(),
        })
}

impl Datapath {
    /// Counts and polices the macvlan `iface` (index `ifindex`) in `netns` as endpoint
    /// `ep`. Idempotent: filters already running this build's programs stay.
    pub fn attach_lan(
        &mut self,
        netns: &Path,
        iface: &str,
        ifindex: u32,
        ep: Endpoint,
    ) -> Result<(), DatapathError> {
        self.track(ifindex).map_err(|e| DatapathError::Port {
            op: "seed counters",
            port: iface.to_string(),
            source: e.into(),
        })?;
        self.set_endpoint(ifindex, ep)?;
        let mut tc = tc_in(netns, iface)?;
        self.attach_filters_on(&mut tc, iface, ifindex, &LAN_PROGRAMS)
    }

    /// What is missing for the macvlan `iface` in `netns` to be in the datapath.
    pub fn check_lan(&self, netns: &Path, iface: &str, ifindex: u32, ep: &Endpoint) -> Vec<String> {
        let mut problems = Vec::new();
        match self.endpoints.get(&ifindex, 0) {
            Ok(e) if e.addr_be == ep.addr_be && e.mac == ep.mac => {}
            Ok(_) => problems.push(format!("the datapath endpoint of {iface} is another's")),
            Err(_) => problems.push(format!("{iface} has no datapath endpoint")),
        }
        if self.port_counters(ifindex).is_none() {
            problems.push(format!("{iface} has no counters"));
        }
        match tc_in(netns, iface) {
            Ok(mut tc) => {
                problems.extend(self.check_filters_on(&mut tc, iface, ifindex, &LAN_PROGRAMS))
            }
            Err(e) => problems.push(e.to_string()),
        }
        problems
    }
}
