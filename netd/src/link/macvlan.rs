//! macvlan links: made on their parent in the daemon's namespace, marked, then moved into the
//! container's namespace under the container's name for them.

use std::{net::Ipv4Addr, os::fd::AsRawFd, path::Path};

use ipnetwork::Ipv4Network;
use rtnetlink::{packet_route::link::MacVlanMode, LinkMacVlan, LinkUnspec, RouteMessageBuilder};

use super::{LinkError, Netlink};

/// The container end of a macvlan.
pub struct MacvlanLink<'a> {
    pub netns: &'a Path,
    pub name: &'a str,
    /// `None` keeps the kernel's choice (passthru takes the parent's own).
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    pub mode: MacVlanMode,
    /// The ifindex to give it (it keeps it in the container's namespace, where it is free).
    pub index: u32,
}

impl Netlink {
    /// Creates a macvlan of `parent` as `temp` (marked with `alias`, so that a crash before
    /// the move leaves a link reconcile recognises) and moves it into `link.netns` as
    /// `link.name`. On failure nothing of it remains.
    pub async fn create_macvlan_into(
        &self,
        parent: u32,
        temp: &str,
        alias: &str,
        link: &MacvlanLink<'_>,
    ) -> Result<(), LinkError> {
        let ns = std::fs::File::open(link.netns).map_err(|source| LinkError::Io {
            op: "open namespace",
            target: link.netns.display().to_string(),
            source,
        })?;
        let mut msg = LinkMacVlan::new(temp, parent, link.mode).mtu(link.mtu);
        if let Some(mac) = link.mac {
            msg = msg.address(mac.to_vec());
        }
        let mut msg = msg.build();
        msg.header.index = link.index;
        let index = self
            .add_marked(msg, "create macvlan", temp, temp, alias)
            .await?;
        let moved = LinkUnspec::new_with_index(index)
            .setns_by_fd(ns.as_raw_fd())
            .name(link.name.to_string())
            .build();
        let target = format!("{temp} (as {} into {})", link.name, link.netns.display());
        if let Err(e) = self.set("move", &target, moved).await {
            let _ = self.delete(index, temp).await;
            return Err(e);
        }
        Ok(())
    }

    /// Creates a bridge-mode macvlan of `parent` named `name` in this namespace, marked.
    pub async fn create_shim(
        &self,
        parent: u32,
        name: &str,
        alias: &str,
        mtu: u32,
    ) -> Result<u32, LinkError> {
        let msg = LinkMacVlan::new(name, parent, MacVlanMode::Bridge)
            .mtu(mtu)
            .build();
        self.add_marked(msg, "create macvlan", name, name, alias)
            .await
    }

    /// Routes `dest` out of link `index` (replacing a route there was).
    pub async fn route_dev(
        &self,
        index: u32,
        name: &str,
        dest: Ipv4Network,
    ) -> Result<(), LinkError> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dest.network(), dest.prefix())
            .output_interface(index)
            .build();
        self.replace_route(msg, "route", format!("{dest} via {name}"))
            .await
    }
}
