//! Bridge ports of the real host: plugging a container's veth pair, adopting one a restart
//! finds (from one snapshot of the links and bridge entries), checking and forgetting them.

use std::collections::HashSet;

use super::LinuxHost;
use crate::{
    datapath::isolation,
    engine::host::{HostError, Plug, OWNER_MARK},
    link::{LinkError, Netlink, VethPeer},
    netns,
};

/// The links and static bridge entries when a reconcile started.
pub(super) struct LinkSnapshot {
    links: std::collections::HashMap<String, crate::link::LinkInfo>,
    pinned_macs: HashSet<(u32, [u8; 6])>,
}

impl LinuxHost {
    pub(super) async fn take_link_snapshot(&self, on: bool) -> Result<(), HostError> {
        let snapshot = match on {
            true => Some(LinkSnapshot {
                links: self
                    .nl
                    .links()
                    .await
                    .map_err(|e| HostError::new("list", "links", e))?
                    .into_iter()
                    .map(|l| (l.name.clone(), l))
                    .collect(),
                pinned_macs: self
                    .nl
                    .pinned_macs()
                    .await
                    .map_err(|e| HostError::new("list", "bridge entries", e))?,
            }),
            false => None,
        };
        *self.links.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
        Ok(())
    }

    pub(super) async fn plug_port(&self, p: &Plug) -> Result<(), HostError> {
        let host = p.host_ifname.as_str();
        let alias = format!("{OWNER_MARK}{}", p.endpoint_id);
        let peer = VethPeer {
            netns: &p.netns,
            name: p.ifname.as_str(),
            mac: p.mac.0,
            mtu: p.mtu,
        };
        let host_index = self
            .nl
            .create_veth_into(host, &alias, &peer)
            .await
            .map_err(|e| HostError::new("create veth", host, e))?;
        if let Err(e) = self.complete_plug(p, host_index).await {
            // Deleting one end removes the pair, wherever the peer is.
            let _ = self.unplug_port(host).await;
            return Err(e);
        }
        Ok(())
    }

    pub(super) async fn unplug_port(&self, host_ifname: &str) -> Result<(), HostError> {
        let Some(link) = self
            .nl
            .link(host_ifname)
            .await
            .map_err(|e| HostError::new("find", host_ifname, e))?
        else {
            return Ok(());
        };
        let untracked = self
            .datapath()
            .untrack(link.index)
            .map_err(|e| HostError::new("forget counters of", host_ifname, e));
        match self.nl.delete(link.index, host_ifname).await {
            Err(e) if !e.is_not_found() => Err(HostError::new("remove", host_ifname, e)),
            _ => untracked,
        }
    }

    pub(super) async fn check_port(&self, p: &Plug) -> Vec<String> {
        let host = p.host_ifname.as_str();
        let mut problems = Vec::new();
        let bridge = self.nl.link(p.bridge.as_str()).await.ok().flatten();
        match self.nl.link(host).await {
            Ok(Some(link)) => {
                if bridge.is_none_or(|b| link.controller != Some(b.index)) {
                    problems.push(format!("{host} is not a port of bridge {}", p.bridge));
                }
                problems.extend(self.datapath().check_port(host, link.index, p.ip));
            }
            Ok(None) => problems.push(format!("host interface {host} is gone")),
            Err(e) => problems.push(format!("looking up {host}: {e}")),
        }
        if p.handover {
            return problems;
        }
        let ifname = p.ifname.as_str();
        let inside = match Netlink::in_netns(&p.netns) {
            Ok(inside) => inside,
            Err(e) => {
                problems.push(format!("entering {}: {e}", p.netns.display()));
                return problems;
            }
        };
        match inside.link(ifname).await {
            Ok(Some(link)) => {
                let addrs = inside.ipv4_addresses().await.unwrap_or_default();
                if !addrs.contains(&(link.index, p.ip, p.prefix)) {
                    problems.push(format!("{ifname} has no address {}/{}", p.ip, p.prefix));
                }
            }
            Ok(None) => problems.push(format!(
                "interface {ifname} is gone from {}",
                p.netns.display()
            )),
            Err(e) => problems.push(format!("looking up {ifname}: {e}")),
        }
        problems
    }

    pub(super) async fn adopt(&self, plug: &Plug) -> Result<(), HostError> {
        let host = plug.host_ifname.as_str();
        let port = self
            .find_link(host)
            .await?
            .ok_or_else(|| HostError::new("find", host, LinkError::NotFound(host.to_string())))?;
        let index = port.index;
        // A bridge deleted behind the daemon's back released its ports; the one reconcile
        // made again has none until they are attached again.
        let bridge_name = plug.bridge.as_str();
        let bridge = self
            .find_link(bridge_name)
            .await?
            .ok_or_else(|| {
                HostError::new("find", bridge_name, LinkError::NotFound(bridge_name.into()))
            })?
            .index;
        if port.controller != Some(bridge) {
            log::info!("re-attaching {host} to bridge {}", plug.bridge);
            self.nl
                .enslave(index, host, bridge)
                .await
                .map_err(|e| HostError::new("re-attach", host, e))?;
        }
        // Ports plugged by a build without static bridge entries get theirs. Pinning again
        // one that is there costs a restart dearly: after a filter swap, an FDB change
        // waits (about 0.3 ms a port).
        let pinned = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|s| s.pinned_macs.contains(&(index, plug.mac.0)));
        if !pinned {
            self.nl
                .pin_mac(index, host, plug.mac.0)
                .await
                .map_err(|e| HostError::new("adopt", host, e))?;
        }
        if !port.ipv6_off {
            ipv4_only(host);
        }
        self.attach_port(plug, index)
    }

    pub(super) async fn forget_ports(
        &self,
        keep: &[String],
        keep_lan: &[u32],
    ) -> Result<(), HostError> {
        // One dump, whatever the number of ports.
        let keep: HashSet<&str> = keep.iter().map(String::as_str).collect();
        let mut live: HashSet<u32> = self
            .nl
            .links()
            .await
            .map_err(|e| HostError::new("list", "links", e))?
            .into_iter()
            .filter(|l| keep.contains(l.name.as_str()))
            .map(|l| l.index)
            .collect();
        // Not among the daemon's links: they live in their containers' namespaces.
        live.extend(keep_lan);
        let mut datapath = self.datapath();
        for index in datapath.counted_ifindexes() {
            if !live.contains(&index) {
                datapath.untrack(index).map_err(|e| {
                    HostError::new("forget counters of", format!("ifindex {index}"), e)
                })?;
            }
        }
        Ok(())
    }

    /// The link `name`, from the snapshot while a reconcile holds one.
    pub(super) async fn find_link(
        &self,
        name: &str,
    ) -> Result<Option<crate::link::LinkInfo>, HostError> {
        if let Some(s) = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(s.links.get(name).cloned());
        }
        self.nl
            .link(name)
            .await
            .map_err(|e| HostError::new("find", name, e))
    }

    /// The port's endpoint (its only address and MAC, its network) and programs.
    pub(super) fn attach_port(&self, p: &Plug, host_index: u32) -> Result<(), HostError> {
        let host = p.host_ifname.as_str();
        let mut ep = isolation::endpoint(p.ip, p.mac.0, p.network);
        if p.dnat_target {
            ep = isolation::dnat_target(ep);
        }
        self.datapath()
            .attach_port(host, host_index, ep)
            .map_err(|e| HostError::new("attach datapath to", host, e))
    }

    /// Counts and filters from the first frame: the datapath is attached before the host end
    /// joins the bridge, and the container end gets its address last.
    async fn complete_plug(&self, p: &Plug, host_index: u32) -> Result<(), HostError> {
        let host = p.host_ifname.as_str();
        ipv4_only(host);
        self.attach_port(p, host_index)?;
        let bridge = self
            .nl
            .index(p.bridge.as_str())
            .await
            .map_err(|e| HostError::new("find bridge", &p.bridge, e))?;
        self.nl
            .enslave(host_index, host, bridge)
            .await
            .map_err(|e| HostError::new("plug", host, e))?;
        self.nl
            .pin_mac(host_index, host, p.mac.0)
            .await
            .map_err(|e| HostError::new("plug", host, e))?;
        if p.handover {
            return Ok(());
        }
        self.configure_inside(p).await
    }

    /// The container end, in its namespace: no IPv6, up, its address and default route.
    pub(super) async fn configure_inside(&self, p: &Plug) -> Result<(), HostError> {
        let inside = Netlink::in_netns(&p.netns)
            .map_err(|e| HostError::new("enter", p.netns.display(), e))?;
        let ifname = p.ifname.as_str();
        let index = inside
            .index(ifname)
            .await
            .map_err(|e| HostError::new("find", ifname, e))?;
        // Before it is up, so that it never sends an IPv6 packet (see `ipv4_only`).
        netns::disable_ipv6_in(&p.netns, ifname)
            .map_err(|e| HostError::new("disable IPv6 on", ifname, e))?;
        // Not up at creation: the kernel refuses IFF_UP on a peer created in another namespace.
        inside
            .set_up(index, ifname)
            .await
            .map_err(|e| HostError::new("set up", ifname, e))?;
        inside
            .add_address(index, ifname, p.ip, p.prefix)
            .await
            .map_err(|e| HostError::new("address", ifname, e))?;
        if let Some(gateway) = p.default_gateway {
            inside
                .add_default_route(gateway)
                .await
                .map_err(|e| HostError::new("route", ifname, e))?;
        }
        Ok(())
    }
}

/// netd's networks are IPv4-only, so their bridges and ports run no IPv6, as Docker does for
/// an IPv4-only network: no link-local address, router solicitation or MLD report, and no
/// router advertisement taken (containers' are dropped by the port programs too). Without
/// IPv6 in the kernel there is nothing to switch off.
pub(super) fn ipv4_only(ifname: &str) {
    for (key, value) in [("accept_ra", "0"), ("disable_ipv6", "1")] {
        let path = format!("/proc/sys/net/ipv6/conf/{ifname}/{key}");
        // An adopted port has them already: a write takes the RTNL lock for nothing.
        if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
            continue;
        }
        match std::fs::write(&path, value) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("{path}: {e}"),
        }
    }
}
