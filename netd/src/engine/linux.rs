//! The real [`Host`]: rtnetlink for links and routes, bind-mounted namespaces, and the eBPF
//! datapath on every bridge port.

use std::{net::Ipv4Addr, path::Path, sync::Mutex};

use ipnetwork::Ipv4Network;
use netd_common::{
    counters::IfaceCounters,
    isolation::{DropCounters, DropKey, NET_ICC_OFF, NET_INTERNAL, NET_ROUTED, NET_VIPS},
    nat::{PortStats, PortStatsKey},
};

use super::host::{
    BridgeSpec, Host, HostError, NetworkRules, OwnedLink, Plug, ShimSpec, OWNER_MARK,
};
use crate::{
    config::{names::IfName, port::Proto},
    datapath::{isolation::NetworkRule, nat::Publication, stats::Usage, vips::VipSpec},
    dns::{Dns, DnsNetwork, Names},
};
use crate::{datapath::Datapath, link::Netlink, netns, reserved::ReservedPorts};

mod bridges;
mod facts;
mod macvlan;
mod ports;
mod uplinks;

use ports::{ipv4_only, LinkSnapshot};

pub struct LinuxHost {
    nl: Netlink,
    datapath: Mutex<Datapath>,
    dns: Dns,
    reserved: Mutex<ReservedPorts>,
    /// The uplinks attached, with the address masquerade uses on each.
    uplinks: Mutex<Vec<uplinks::Uplink>>,
    /// One dump of the links, looked up instead of a netlink request per port while a
    /// reconcile adopts them all (see [`Host::snapshot_links`]).
    links: Mutex<Option<LinkSnapshot>>,
}

impl LinuxHost {
    /// `reserved` starts with the ports the pinned datapath still publishes.
    pub fn new(nl: Netlink, datapath: Datapath, dns: Dns, mut reserved: ReservedPorts) -> Self {
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

#[async_trait::async_trait]
impl Host for LinuxHost {
    async fn routes(&self) -> Result<Vec<Ipv4Network>, HostError> {
        let owned: Vec<u32> = self
            .nl
            .links()
            .await
            .map_err(|e| HostError::new("list", "links", e))?
            .into_iter()
            .filter(|l| {
                l.alias
                    .as_deref()
                    .is_some_and(|a| a.starts_with(OWNER_MARK))
            })
            .map(|l| l.index)
            .collect();
        let routes = self
            .nl
            .ipv4_routes()
            .await
            .map_err(|e| HostError::new("list", "routes", e))?;
        Ok(routes
            .into_iter()
            .filter(|(_, oif)| !oif.is_some_and(|i| owned.contains(&i)))
            .map(|(net, _)| net)
            .collect())
    }

    async fn ensure_bridge(&self, b: &BridgeSpec) -> Result<(), HostError> {
        self.ensure_bridge_link(b).await
    }

    async fn ensure_internal_parent(
        &self,
        name: &IfName,
        network_id: &str,
        mtu: u32,
    ) -> Result<(), HostError> {
        self.ensure_internal_parent_link(name.as_str(), network_id, mtu)
            .await
    }

    async fn ensure_shim(&self, shim: &ShimSpec) -> Result<(), HostError> {
        self.ensure_shim_link(shim).await
    }

    async fn link_exists(&self, name: &str) -> Result<bool, HostError> {
        Ok(self.find_link(name).await?.is_some())
    }

    async fn snapshot_links(&self, on: bool) -> Result<(), HostError> {
        self.take_link_snapshot(on).await
    }

    async fn remove_link(&self, name: &str) -> Result<(), HostError> {
        match self
            .nl
            .link(name)
            .await
            .map_err(|e| HostError::new("find", name, e))?
        {
            Some(link) => match self.nl.delete(link.index, name).await {
                Err(e) if !e.is_not_found() => Err(HostError::new("remove", name, e)),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    async fn owned_links(&self) -> Result<Vec<OwnedLink>, HostError> {
        let links = self
            .nl
            .links()
            .await
            .map_err(|e| HostError::new("list", "links", e))?;
        Ok(links
            .into_iter()
            .filter_map(|l| match &l.alias {
                Some(alias) => Some(OwnedLink {
                    owner: alias.strip_prefix(OWNER_MARK)?.to_string(),
                    name: l.name,
                    half_made: false,
                }),
                None => Some(OwnedLink {
                    owner: OwnedLink::bridge_owner(&l.name)?.to_string(),
                    name: l.name,
                    half_made: true,
                }),
            })
            .collect())
    }

    async fn create_netns(&self, path: &Path) -> Result<(), HostError> {
        let t = std::time::Instant::now();
        let target = path.to_path_buf();
        tokio::task::spawn_blocking(move || netns::create(&target))
            .await
            .map_err(|e| HostError::new("create namespace", path.display(), e))?
            .map_err(|e| HostError::new("create namespace", path.display(), e))?;
        let lo_up = async {
            let inside = Netlink::in_netns(path)?;
            let lo = inside.index("lo").await?;
            inside.set_up(lo, "lo").await
        };
        if let Err(e) = lo_up.await {
            let _ = netns::remove(path);
            return Err(HostError::new("bring up lo in", path.display(), e));
        }
        log::debug!("namespace {} ready after {:?}", path.display(), t.elapsed());
        Ok(())
    }

    async fn remove_netns(&self, path: &Path) -> Result<(), HostError> {
        netns::remove(path).map_err(|e| HostError::new("remove namespace", path.display(), e))
    }

    fn netns_alive(&self, path: &Path) -> bool {
        netns::is_namespace(path)
    }

    async fn rebind_netns(&self, path: &Path, pid: i32) -> Result<(), HostError> {
        let from = format!("/proc/{pid}/ns/net");
        netns::bind(Path::new(&from), path)
            .map_err(|e| HostError::new("mount namespace again at", path.display(), e))
    }

    fn netns_id(&self, path: &Path) -> std::io::Result<netns::NsId> {
        netns::NsId::of(path)
    }

    async fn plug(&self, p: &Plug) -> Result<(), HostError> {
        match &p.macvlan {
            Some(m) => self.plug_macvlan(p, m).await,
            None => self.plug_port(p).await,
        }
    }

    async fn unplug(&self, host_ifname: &str) -> Result<(), HostError> {
        self.unplug_port(host_ifname).await
    }

    async fn unplug_inside(
        &self,
        netns: &Path,
        ifname: &str,
        endpoint_id: &str,
    ) -> Result<(), HostError> {
        LinuxHost::unplug_inside(self, netns, ifname, endpoint_id).await
    }

    async fn check_plug(&self, p: &Plug) -> Vec<String> {
        match p.macvlan {
            Some(_) => self.check_macvlan(p).await,
            None => self.check_port(p).await,
        }
    }

    async fn adopt_port(&self, plug: &Plug) -> Result<(), HostError> {
        match &plug.macvlan {
            Some(m) => self.adopt_macvlan(plug, m).await,
            None => self.adopt(plug).await,
        }
    }

    async fn forget_ports_except(
        &self,
        keep: &[String],
        keep_lan: &[u32],
    ) -> Result<(), HostError> {
        self.forget_ports(keep, keep_lan).await
    }

    async fn lan_owner(
        &self,
        parent: &str,
        ip: Ipv4Addr,
    ) -> Result<Option<crate::config::mac::Mac>, HostError> {
        let iface = parent.to_string();
        // Long enough for a LAN's answer, short enough for `netd run`.
        let wait = std::time::Duration::from_millis(150);
        tokio::task::spawn_blocking(move || crate::link::arp::probe(&iface, ip, wait))
            .await
            .map_err(|e| HostError::new("probe", ip, e))?
            .map(|owner| owner.map(crate::config::mac::Mac))
            .map_err(|e| HostError::new("ARP probe on", parent, e))
    }

    async fn set_default_route(&self, netns: &Path, gateway: Ipv4Addr) -> Result<(), HostError> {
        let inside =
            Netlink::in_netns(netns).map_err(|e| HostError::new("enter", netns.display(), e))?;
        inside
            .add_default_route(gateway)
            .await
            .map_err(|e| HostError::new("route via", gateway, e))
    }

    async fn mark_dnat_target(&self, host_ifname: &str) -> Result<(), HostError> {
        let index = self
            .nl
            .index(host_ifname)
            .await
            .map_err(|e| HostError::new("find", host_ifname, e))?;
        self.datapath()
            .mark_dnat_target(index)
            .map_err(|e| HostError::new("mark as published", host_ifname, e))
    }

    async fn publish(&self, publications: &[Publication]) -> Result<(), HostError> {
        self.datapath()
            .publish(publications)
            .map_err(|e| HostError::new("publish", "ports", e))?;
        self.reserve(publications, true);
        Ok(())
    }

    async fn unpublish(&self, publications: &[Publication]) -> Result<(), HostError> {
        self.datapath()
            .unpublish(publications)
            .map_err(|e| HostError::new("unpublish", "ports", e))?;
        self.reserve(publications, false);
        Ok(())
    }

    async fn publish_exactly(&self, publications: &[Publication]) -> Result<(), HostError> {
        let stale = self.datapath().published_beyond(publications);
        for p in &stale {
            log::info!(
                "unpublishing {}:{}/{} of no container (a crash before it was recorded)",
                p.host_ip,
                p.host_port,
                if p.proto == 6 { "tcp" } else { "udp" }
            );
        }
        self.unpublish(&stale).await?;
        self.publish(publications).await
    }

    async fn flush_connections(&self, ip: Ipv4Addr) {
        let flushed = self.datapath().flush_conntrack(ip);
        log::debug!("flushed {flushed} conntrack entries of {ip}");
    }

    async fn set_networks(&self, networks: &[NetworkRules]) -> Result<(), HostError> {
        let mut rules = Vec::new();
        for n in networks {
            // A bridge that could not be made has no ifindex; its rules still apply.
            let bridge_ifindex = match self.nl.link(n.bridge.as_str()).await {
                Ok(Some(link)) => link.index,
                _ => 0,
            };
            let flags = [
                (!n.icc, NET_ICC_OFF),
                (n.internal, NET_INTERNAL),
                (n.routed, NET_ROUTED),
                (n.vips, NET_VIPS),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .fold(0, |acc, (_, bit)| acc | bit);
            rules.push(NetworkRule {
                id: n.id,
                subnet: n.subnet,
                gateway: n.gateway,
                gateway_mac: n.gateway_mac.0,
                flags,
                bridge_ifindex,
            });
        }
        self.datapath()
            .set_networks(&rules)
            .map_err(|e| HostError::new("set", "network rules", e))
    }

    fn drops(&self) -> Vec<(DropKey, DropCounters)> {
        self.datapath().drops()
    }

    fn set_monitor(&self, on: bool) {
        if let Err(e) = self.datapath().set_monitor(on) {
            log::warn!(
                "switching monitor events {}: {e}",
                if on { "on" } else { "off" }
            );
        }
    }

    fn port_stats(&self) -> Vec<(PortStatsKey, PortStats)> {
        self.datapath().port_stats()
    }

    fn usage(&self) -> Usage {
        self.datapath().usage()
    }

    fn dns_counters(&self) -> Vec<crate::dns::DnsCounts> {
        self.dns.counters()
    }

    fn set_vips(&self, vips: &[VipSpec]) -> Result<(), HostError> {
        self.datapath()
            .set_vips(vips)
            .map_err(|e| HostError::new("set", "virtual IPs", e))
    }

    fn vip_connections(&self, id: u32) -> Vec<(Ipv4Addr, u64)> {
        self.datapath().vip_connections(id)
    }

    async fn serve_dns(&self, networks: &[DnsNetwork]) -> Result<(), HostError> {
        self.dns.serve(networks).await.map_err(|errors| {
            let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
            HostError::new("serve", "DNS", std::io::Error::other(all.join("; ")))
        })
    }

    async fn serve_dns_in(&self, key: &str, spec: &DnsNetwork) -> Result<(), HostError> {
        self.dns
            .serve_in(key, spec)
            .await
            .map_err(|e| HostError::new("serve", "DNS", e))
    }

    fn stop_dns_in(&self, key: &str) {
        self.dns.stop_in(key);
    }

    fn set_names(&self, names: Names) {
        self.dns.set_names(names);
    }

    async fn set_masq_subnets(&self, subnets: &[Ipv4Network]) -> Result<(), HostError> {
        self.datapath()
            .set_masq_subnets(subnets)
            .map_err(|e| HostError::new("set", "masqueraded subnets", e))
    }

    fn bound_ports(&self) -> Vec<(Proto, Ipv4Addr, u16)> {
        facts::bound_ports()
    }

    fn has_address(&self, ip: Ipv4Addr) -> bool {
        facts::has_address(ip)
    }

    fn ephemeral_ports(&self) -> (u16, u16) {
        facts::ephemeral_ports()
    }

    async fn port_counters(&self, at: &[super::host::CountedAt]) -> Vec<IfaceCounters> {
        use super::host::CountedAt;
        // if_nametoindex is one ioctl in the calling thread's namespace (the daemon's): no
        // netlink round trip or link dump per scrape.
        let dp = self.datapath();
        at.iter()
            .map(|at| {
                match at {
                    CountedAt::Port(name) => nix::net::if_::if_nametoindex(name.as_str()).ok(),
                    CountedAt::Lan(index) => Some(*index),
                }
                .and_then(|i| dp.port_counters(i))
                .unwrap_or_default()
            })
            .collect()
    }
}
