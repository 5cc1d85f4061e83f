//! The real machine behind the engine's interfaces ([`Host`]): rtnetlink for links and
//! routes, bind-mounted namespaces, the eBPF datapath on every container interface, and the
//! embedded DNS.

use std::{
    net::Ipv4Addr,
    sync::{Arc, Mutex},
};

use super::host::{Drivers, Host, HostError};
use crate::{
    datapath::{nat::Publication, Datapath},
    dns::Dns,
    link::Netlink,
    reserved::ReservedPorts,
};

mod bridges;
mod dns;
mod drivers;
mod facts;
mod links;
mod macvlan;
mod ports;
mod rules;
mod telemetry;
mod uplinks;

pub use drivers::{BridgeDriver, MacvlanDriver};
use ports::{ipv4_only, LinkSnapshot};

pub struct LinuxHost {
    nl: Netlink,
    datapath: Mutex<Datapath>,
    /// Read for its counters; served through its own [`DnsServing`](super::host::DnsServing).
    dns: Arc<Dns>,
    reserved: Mutex<ReservedPorts>,
    /// The uplinks attached, with the address masquerade uses on each.
    uplinks: Mutex<Vec<uplinks::Uplink>>,
    /// One dump of the links, looked up instead of a netlink request per port while a
    /// reconcile adopts them all (see [`Links::snapshot_links`](super::host::Links::snapshot_links)).
    links: Mutex<Option<LinkSnapshot>>,
}

impl LinuxHost {
    /// `reserved` starts with the ports the pinned datapath still publishes.
    pub fn new(
        nl: Netlink,
        datapath: Datapath,
        dns: Arc<Dns>,
        mut reserved: ReservedPorts,
    ) -> Self {
        let ports = datapath.published().into_iter().map(|(k, _)| {
            let ip = Ipv4Addr::from(u32::from_be(k.addr_be));
            (k.proto, ip, u16::from_be(k.port_be))
        });
        if let Err(e) = reserved.add(ports) {
            log::warn!("reserving published host ports: {e}");
        }
        Self {
            nl,
            datapath: Mutex::new(datapath),
            dns,
            reserved: Mutex::new(reserved),
            uplinks: Mutex::new(Vec::new()),
            links: Mutex::new(None),
        }
    }

    /// The engine's view of this host: each interface is served by this host, but DNS by
    /// the embedded DNS and each network kind by its driver.
    pub fn interfaces(self: &Arc<Self>) -> Host {
        Host {
            links: self.clone(),
            rules: self.clone(),
            dns: self.dns.clone(),
            telemetry: self.clone(),
            facts: self.clone(),
            drivers: Drivers {
                bridge: Arc::new(BridgeDriver(self.clone())),
                macvlan: Arc::new(MacvlanDriver(self.clone())),
            },
        }
    }

    /// Keeps the kernel's reserved ports in step with what is published.
    fn reserve(&self, publications: &[Publication], published: bool) {
        let ports = publications
            .iter()
            .map(|p| (p.proto, p.host_ip, p.host_port));
        let mut reserved = self.reserved.lock().expect("reserved ports lock");
        let done = if published {
            reserved.add(ports)
        } else {
            reserved.remove(ports)
        };
        if let Err(e) = done {
            log::warn!("net.ipv4.ip_local_reserved_ports: {e}");
        }
    }

    /// Lets processes of the host reach published ports through the socket hooks.
    pub fn attach_socket_hooks(&self) -> Result<(), HostError> {
        let cgroup = crate::datapath::sockets::cgroup2_root().ok_or_else(|| {
            HostError::new(
                "find",
                "cgroup2",
                std::io::Error::other("no cgroup2 mount in /proc/mounts"),
            )
        })?;
        self.datapath()
            .attach_socket_hooks(&cgroup)
            .map_err(|e| HostError::new("attach socket hooks to", cgroup.display(), e))
    }

    /// Ends the moves of pinned maps of an older layout, once this build's programs are
    /// attached to every port, uplink and the socket hooks.
    pub fn finish_map_moves(&self) -> Result<(), HostError> {
        self.datapath()
            .finish_moves()
            .map_err(|e| HostError::new("move", "older pinned maps", e))
    }

    /// Tells the datapath which addresses are the host's own (published ports answer there).
    pub async fn refresh_local_addrs(&self) -> Result<(), HostError> {
        let addrs = self
            .nl
            .ipv4_addresses()
            .await
            .map_err(|e| HostError::new("list", "addresses", e))?;
        self.follow_uplink_addresses(&addrs);
        let ips: Vec<Ipv4Addr> = addrs.into_iter().map(|(_, ip, _)| ip).collect();
        self.datapath()
            .set_local_addrs(&ips)
            .map_err(|e| HostError::new("set", "local addresses", e))
    }

    /// The conntrack collection, to run off the async runtime and without the datapath's
    /// lock (see [`Datapath::conntrack_sweeper`]).
    pub fn conntrack_sweeper(&self) -> Result<crate::datapath::nat::ConntrackSweeper, HostError> {
        self.datapath()
            .conntrack_sweeper()
            .map_err(|e| HostError::new("open", "conntrack tables", e))
    }

    fn datapath(&self) -> std::sync::MutexGuard<'_, Datapath> {
        self.datapath.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `netd monitor` event ring, for the daemon's reader (once).
    pub fn take_events(&self) -> Option<crate::datapath::monitor::Events> {
        self.datapath().take_events()
    }
}
