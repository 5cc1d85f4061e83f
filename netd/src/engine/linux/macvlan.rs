//! Container interfaces of macvlan networks: a macvlan of the network's parent, moved into
//! the container's namespace. There is no host end: the interface lives and dies with the
//! namespace, and is found there by its mark.

use std::path::Path;

use rtnetlink::packet_route::link::MacVlanMode;

use super::LinuxHost;
use crate::{
    config::macvlan::MacvlanMode,
    datapath::isolation,
    engine::host::{HostError, MacvlanPlug, Plug, ShimSpec, OWNER_MARK},
    link::{MacvlanLink, Netlink},
    state::model::lan_ifindex,
};

fn kernel_mode(mode: MacvlanMode) -> MacVlanMode {
    match mode {
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
    }
}

impl LinuxHost {
    pub(super) async fn plug_macvlan(&self, p: &Plug, m: &MacvlanPlug) -> Result<(), HostError> {
        let parent = self
            .nl
            .index(m.parent.as_str())
            .await
            .map_err(|e| HostError::new("find parent", &m.parent, e))?;
        let index = lan_ifindex(&p.endpoint_id);
        let link = MacvlanLink {
            netns: &p.netns,
            name: p.ifname.as_str(),
            mac: (m.mode != MacvlanMode::Passthru).then_some(p.mac.0),
            mtu: p.mtu,
            mode: kernel_mode(m.mode),
            index,
        };
        let alias = format!("{OWNER_MARK}{}", p.endpoint_id);
        self.nl
            .create_macvlan_into(parent, p.host_ifname.as_str(), &alias, &link)
            .await
            .map_err(|e| HostError::new("create macvlan", &p.host_ifname, e))?;
        // Policed and counted from the first frame: the datapath before the address.
        let configured = match self.attach_lan(p).await {
            Ok(()) => self.configure_inside(p).await,
            Err(e) => Err(e),
        };
        if let Err(e) = configured {
            let _ = self
                .unplug_inside(&p.netns, p.ifname.as_str(), &p.endpoint_id)
                .await;
            return Err(e);
        }
        Ok(())
    }

    /// The LAN programs, endpoint entry and counters of the macvlan of `p`.
    async fn attach_lan(&self, p: &Plug) -> Result<(), HostError> {
        let ifname = p.ifname.as_str();
        let inside = Netlink::in_netns(&p.netns)
            .map_err(|e| HostError::new("enter", p.netns.display(), e))?;
        let want = lan_ifindex(&p.endpoint_id);
        let index = inside
            .index(ifname)
            .await
            .map_err(|e| HostError::new("find", ifname, e))?;
        if index != want {
            // Another interface of the namespace holds it: the maps' key would not be ours.
            return Err(HostError::new(
                "attach datapath to",
                ifname,
                std::io::Error::other(format!(
                    "it has ifindex {index} in {}, not netd's {want}",
                    p.netns.display()
                )),
            ));
        }
        let ep = isolation::endpoint(p.ip, p.mac.0, p.network);
        self.datapath()
            .attach_lan(&p.netns, ifname, index, ep)
            .map_err(|e| HostError::new("attach datapath to", ifname, e))
    }

    /// Removes `ifname` from `netns` if it carries the mark of `endpoint_id`; a namespace
    /// or interface already gone is fine.
    pub(super) async fn unplug_inside(
        &self,
        netns: &Path,
        ifname: &str,
        endpoint_id: &str,
    ) -> Result<(), HostError> {
        if !netns.exists() {
            return Ok(());
        }
        let inside =
            Netlink::in_netns(netns).map_err(|e| HostError::new("enter", netns.display(), e))?;
        let link = match inside.link(ifname).await {
            Ok(Some(link)) => link,
            Ok(None) => return Ok(()),
            Err(e) => return Err(HostError::new("find", ifname, e)),
        };
        if link.alias.as_deref() != Some(&format!("{OWNER_MARK}{endpoint_id}")) {
            return Ok(());
        }
        let untracked = self
            .datapath()
            .untrack(link.index)
            .map_err(|e| HostError::new("forget counters of", ifname, e));
        match inside.delete(link.index, ifname).await {
            Err(e) if !e.is_not_found() => Err(HostError::new("remove", ifname, e)),
            _ => untracked,
        }
    }

    /// What is missing of a macvlan endpoint: the interface with its mark and address,
    /// then its place in the datapath.
    pub(super) async fn check_macvlan(&self, p: &Plug) -> Vec<String> {
        match self.macvlan_link(p).await {
            Ok(index) => {
                let ep = isolation::endpoint(p.ip, p.mac.0, p.network);
                let ifname = p.ifname.as_str();
                self.datapath().check_lan(&p.netns, ifname, index, &ep)
            }
            Err(problems) => problems,
        }
    }

    /// The index of the endpoint's interface, if it is there, netd's, with its address.
    async fn macvlan_link(&self, p: &Plug) -> Result<u32, Vec<String>> {
        let ifname = p.ifname.as_str();
        let inside = Netlink::in_netns(&p.netns)
            .map_err(|e| vec![format!("entering {}: {e}", p.netns.display())])?;
        let mark = format!("{OWNER_MARK}{}", p.endpoint_id);
        match inside.link(ifname).await {
            Ok(Some(link)) if link.alias.as_deref() == Some(&mark) => {
                let addrs = inside.ipv4_addresses().await.unwrap_or_default();
                match addrs.contains(&(link.index, p.ip, p.prefix)) {
                    true => Ok(link.index),
                    false => Err(vec![format!(
                        "{ifname} has no address {}/{}",
                        p.ip, p.prefix
                    )]),
                }
            }
            Ok(Some(_)) => Err(vec![format!(
                "{ifname} in {} is not netd's",
                p.netns.display()
            )]),
            Ok(None) => Err(vec![format!(
                "interface {ifname} is gone from {}",
                p.netns.display()
            )]),
            Err(e) => Err(vec![format!("looking up {ifname}: {e}")]),
        }
    }

    /// After a restart: a macvlan endpoint whose interface is gone gets it back, and one
    /// whose datapath entries or programs are not this run's gets them.
    pub(super) async fn adopt_macvlan(&self, p: &Plug, m: &MacvlanPlug) -> Result<(), HostError> {
        let problems = match self.macvlan_link(p).await {
            Ok(_) => return self.attach_lan(p).await,
            Err(problems) => problems,
        };
        log::info!(
            "re-plugging macvlan endpoint {}: {}",
            p.ifname,
            problems.join("; ")
        );
        self.unplug_inside(&p.netns, p.ifname.as_str(), &p.endpoint_id)
            .await?;
        // A crash between creating the macvlan and moving it left it here.
        self.unplug_port(p.host_ifname.as_str()).await?;
        self.plug_macvlan(p, m).await
    }

    pub(super) async fn ensure_shim_link(&self, shim: &ShimSpec) -> Result<(), HostError> {
        let name = shim.name.as_str();
        let err = |op| move |e| HostError::new(op, name, e);
        let (index, created) = match self.nl.link(name).await.map_err(err("find shim"))? {
            Some(link) => (link.index, false),
            None => {
                let parent = self
                    .nl
                    .index(shim.parent.as_str())
                    .await
                    .map_err(|e| HostError::new("find parent", &shim.parent, e))?;
                let alias = format!("{OWNER_MARK}{}", shim.network_id);
                let index = self
                    .nl
                    .create_shim(parent, name, &alias, shim.mtu)
                    .await
                    .map_err(err("create"))?;
                (index, true)
            }
        };
        let result = async {
            super::ipv4_only(name);
            self.nl
                .add_address(index, name, shim.ip, 32)
                .await
                .map_err(err("address"))?;
            self.nl.set_up(index, name).await.map_err(err("set up"))?;
            self.nl
                .route_dev(index, name, shim.range)
                .await
                .map_err(err("route"))
        }
        .await;
        if result.is_err() && created {
            let _ = self.nl.delete(index, name).await;
        }
        result
    }

    /// An internal macvlan network's parent: a veth pair of the daemon's, both ends up, so
    /// that it has carrier (a bridge without ports has none, and its macvlans could not send);
    /// the macvlans sit on `name`, and what leaves them for the LAN ends at the peer, which
    /// has no address. (Docker uses a dummy link; this kernel has no dummy driver.)
    pub(super) async fn ensure_internal_parent_link(
        &self,
        name: &str,
        network_id: &str,
        mtu: u32,
    ) -> Result<(), HostError> {
        let err = |op| move |e| HostError::new(op, name, e);
        let peer = format!("ndj-{}", &name[4..]);
        let index = match self.nl.link(name).await.map_err(err("find parent"))? {
            Some(link) => link.index,
            None => {
                let alias = format!("{OWNER_MARK}{network_id}");
                // Its MAC is never seen: nothing answers behind it.
                let mac = crate::config::mac::Mac::from_ipv4(std::net::Ipv4Addr::from(
                    crate::state::model::datapath_id(network_id),
                ));
                let end = crate::link::VethPeer {
                    netns: std::path::Path::new("/proc/thread-self/ns/net"),
                    name: &peer,
                    mac: mac.0,
                    mtu,
                };
                self.nl
                    .create_veth_into(name, &alias, &end)
                    .await
                    .map_err(err("create"))?
            }
        };
        let peer_index = self.nl.index(&peer).await.map_err(err("find peer"))?;
        for (index, ifname) in [(index, name), (peer_index, peer.as_str())] {
            super::ipv4_only(ifname);
            self.nl.set_up(index, ifname).await.map_err(err("set up"))?;
        }
        Ok(())
    }
}
