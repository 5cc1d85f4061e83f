//! Container interfaces of macvlan networks: a macvlan of the network's parent, moved into
//! the container's namespace. There is no host end: the interface lives and dies with the
//! namespace, and is found there by its mark.

use std::path::Path;

use rtnetlink::packet_route::link::MacVlanMode;

use super::LinuxHost;
use crate::{
    config::macvlan::{MacvlanMode, MacvlanSpec},
    engine::host::{HostError, Plug, ShimSpec, OWNER_MARK},
    link::{MacvlanLink, Netlink},
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
    pub(super) async fn plug_macvlan(&self, p: &Plug, m: &MacvlanSpec) -> Result<(), HostError> {
        let parent = self
            .nl
            .index(m.parent.as_str())
            .await
            .map_err(|e| HostError::new("find parent", &m.parent, e))?;
        let link = MacvlanLink {
            netns: &p.netns,
            name: p.ifname.as_str(),
            mac: (m.mode != MacvlanMode::Passthru).then_some(p.mac.0),
            mtu: p.mtu,
            mode: kernel_mode(m.mode),
        };
        let alias = format!("{OWNER_MARK}{}", p.endpoint_id);
        self.nl
            .create_macvlan_into(parent, p.host_ifname.as_str(), &alias, &link)
            .await
            .map_err(|e| HostError::new("create macvlan", &p.host_ifname, e))?;
        if let Err(e) = self.configure_inside(p).await {
            let _ = self
                .unplug_inside(&p.netns, p.ifname.as_str(), &p.endpoint_id)
                .await;
            return Err(e);
        }
        Ok(())
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
        match inside.delete(link.index, ifname).await {
            Err(e) if !e.is_not_found() => Err(HostError::new("remove", ifname, e)),
            _ => Ok(()),
        }
    }

    /// What is missing of a macvlan endpoint: the interface with its mark and address.
    pub(super) async fn check_macvlan(&self, p: &Plug) -> Vec<String> {
        let ifname = p.ifname.as_str();
        let inside = match Netlink::in_netns(&p.netns) {
            Ok(inside) => inside,
            Err(e) => return vec![format!("entering {}: {e}", p.netns.display())],
        };
        let mark = format!("{OWNER_MARK}{}", p.endpoint_id);
        match inside.link(ifname).await {
            Ok(Some(link)) if link.alias.as_deref() == Some(&mark) => {
                let addrs = inside.ipv4_addresses().await.unwrap_or_default();
                if addrs.contains(&(link.index, p.ip, p.prefix)) {
                    vec![]
                } else {
                    vec![format!("{ifname} has no address {}/{}", p.ip, p.prefix)]
                }
            }
            Ok(Some(_)) => vec![format!("{ifname} in {} is not netd's", p.netns.display())],
            Ok(None) => vec![format!(
                "interface {ifname} is gone from {}",
                p.netns.display()
            )],
            Err(e) => vec![format!("looking up {ifname}: {e}")],
        }
    }

    /// After a restart: a macvlan endpoint whose interface is gone gets it back.
    pub(super) async fn adopt_macvlan(&self, p: &Plug, m: &MacvlanSpec) -> Result<(), HostError> {
        let problems = self.check_macvlan(p).await;
        if problems.is_empty() {
            return Ok(());
        }
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
}
