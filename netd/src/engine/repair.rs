//! Repair while running: links deleted behind the daemon's back (by an operator, a script,
//! another tool) are made again without waiting for a restart. The daemon looks once a
//! second with one dump of its marked links; a bridge that is gone is made again and its
//! members attached to it, and a container whose host-side veth is gone gets its interface
//! again, with its address, routes and programs (netd's own containers; a runtime's get
//! their ports attached again to a bridge made anew, and make their interfaces themselves).
//! A container whose namespace a runtime brought and that died (the runtime killed it
//! without a DEL) is released, addresses and ports, as CNI's GC would release it.

use std::collections::{BTreeSet, HashSet};

use super::Engine;
use crate::state::model::{lan_ifindex, Container, Sandbox};

impl Engine {
    /// Puts back what was deleted since the last look and releases what died; returns the
    /// repairs made (each one logged).
    pub async fn repair(&mut self) -> usize {
        self.save_unsaved();
        let remounted = self.remount_lost_namespaces().await;
        let released = self.release_dead_namespaces().await;
        remounted + released + self.repair_links(released > 0).await
    }

    /// Mounts again the namespaces of netd's containers whose mount was removed (`umount`,
    /// a script cleaning namespaces) while their process keeps them alive: `exec`, connect
    /// and a restart's adoption go through the path. One with no process died with its
    /// mount, its veth with it: [`Self::repair_links`] makes both again.
    async fn remount_lost_namespaces(&mut self) -> usize {
        let lost: Vec<(String, std::path::PathBuf, i32)> = self
            .containers
            .values()
            .filter_map(|c| match (&c.sandbox, &c.process) {
                (Sandbox::Owned { path }, Some(p))
                    if !self.host.links.netns_alive(path) && crate::process::alive(p) =>
                {
                    Some((c.name.to_string(), path.clone(), p.pid))
                }
                _ => None,
            })
            .collect();
        let mut remounted = 0;
        for (name, path, pid) in lost {
            log::warn!(
                "container {name}: its namespace {} was unmounted: mounting it again from process {pid}",
                path.display()
            );
            match self.host.links.rebind_netns(&path, pid).await {
                Ok(()) => remounted += 1,
                Err(e) => log::warn!("container {name}: {e}"),
            }
        }
        self.repairs += remounted as u64;
        remounted
    }

    /// Releases the containers whose namespace was brought by their caller (a CNI runtime,
    /// `--netns-path`) and is gone, with no process of netd's keeping it: nothing can use
    /// their addresses and ports again.
    async fn release_dead_namespaces(&mut self) -> usize {
        let dead: Vec<(String, String)> = self
            .containers
            .values()
            .filter(|c| c.process.as_ref().is_none_or(|p| p.exit_code.is_some()))
            .filter_map(|c| match &c.sandbox {
                Sandbox::External { path } if !self.host.links.netns_alive(path) => {
                    Some((c.id.clone(), path.display().to_string()))
                }
                _ => None,
            })
            .collect();
        let mut released = 0;
        for (id, path) in dead {
            let name = self.containers[&id].name.to_string();
            log::warn!(
                "container {name}: its namespace {path} is gone: releasing its addresses and ports"
            );
            match self.remove_container_of_anyone(&id, true).await {
                Ok(_) => released += 1,
                Err(e) => log::warn!("container {name}: releasing it: {e}"),
            }
        }
        self.repairs += released as u64;
        released
    }

    /// `released`: containers were released since the last look, whose interfaces died
    /// with their namespace: their datapath entries go too.
    async fn repair_links(&mut self, released: bool) -> usize {
        let mut present: HashSet<String> = match self.host.links.owned_links().await {
            Ok(links) => links.into_iter().map(|l| l.name).collect(),
            Err(e) => {
                log::warn!("looking for deleted links: {e}");
                return 0;
            }
        };
        let mut repairs = 0;
        let mut remade = HashSet::new();
        for net in self.networks.values() {
            let Some(driver) = self.host.driver(net.driver) else {
                continue;
            };
            let links = driver.repaired_links(net);
            let Some(gone) = links.iter().find(|l| !present.contains(l.as_str())) else {
                continue;
            };
            log::warn!(
                "{gone} of network {} was deleted: making it again",
                net.name
            );
            match driver.setup(net).await {
                Ok(()) => {
                    repairs += 1;
                    remade.insert(net.id.clone());
                }
                Err(e) => log::warn!("making {gone} again: {e}"),
            }
        }
        // A runtime's interfaces are the runtime's to check and make again (CNI's CHECK
        // reports a deleted one, and the runtime re-adds it): its containers only get their
        // ports attached again to a bridge made anew. A caller's namespace that is gone
        // takes its interfaces with it.
        let damaged: Vec<Container> =
            self.containers
                .values()
                .filter(|c| match &c.sandbox {
                    Sandbox::External { path } => self.host.links.netns_alive(path),
                    _ => true,
                })
                .filter(|c| {
                    let missing = c.endpoints.iter().any(|e| {
                        self.has_host_port(e) && !present.contains(e.host_ifname.as_str())
                    });
                    let on_remade = c.endpoints.iter().any(|e| remade.contains(&e.network_id));
                    match c.origin.runtime_id() {
                        None => missing || on_remade,
                        Some(_) => on_remade && !missing,
                    }
                })
                .cloned()
                .collect();
        for c in damaged {
            log::warn!("container {}: putting its interfaces back", c.name);
            match self.restore_container(&c).await {
                Ok(()) => repairs += 1,
                Err(e) => log::warn!("container {}: repairing its interfaces: {e}", c.name),
            }
        }
        if repairs > 0 {
            // A bridge made again has another ifindex.
            if let Err(e) = self.sync_network_rules().await {
                log::warn!("after repairs, network rules: {e}");
            }
            self.repairs += repairs as u64;
        }
        if repairs > 0 {
            // What was made again is present now, with another ifindex.
            match self.host.links.owned_links().await {
                Ok(links) => present = links.into_iter().map(|l| l.name).collect(),
                Err(e) => log::warn!("looking at the links after repairs: {e}"),
            }
        }
        self.forget_removed_ports(&present, repairs > 0 || released)
            .await;
        repairs
    }

    /// Drops the datapath entries (endpoint, member, counters) of interfaces that are gone:
    /// made again, they have another ifindex, and a runtime's that is not made again has
    /// none. Done when what is missing changed or `changed` says so, not every second.
    async fn forget_removed_ports(&mut self, present: &HashSet<String>, changed: bool) {
        let ports: Vec<String> = self
            .containers
            .values()
            .flat_map(|c| c.endpoints.iter())
            .filter(|e| self.has_host_port(e))
            .map(|e| e.host_ifname.to_string())
            .collect();
        let missing: BTreeSet<String> = ports
            .iter()
            .filter(|p| !present.contains(p.as_str()))
            .cloned()
            .collect();
        if !changed && missing == self.missing_ports {
            return;
        }
        match self
            .host
            .rules
            .forget_ports_except(&ports, &self.lan_indexes())
            .await
        {
            Ok(()) => self.missing_ports = missing,
            Err(e) => log::warn!("forgetting the datapath entries of removed interfaces: {e}"),
        }
    }

    /// Whether the endpoint has a host end in the daemon's namespace: a veth on a bridge,
    /// not a macvlan, which lives in the container's namespace only (checked at restarts).
    fn has_host_port(&self, e: &crate::state::model::Endpoint) -> bool {
        self.networks
            .get(&e.network_id)
            .and_then(|n| self.host.driver(n.driver))
            .is_none_or(|d| d.host_end())
    }

    /// Where the datapath counts endpoint `e`.
    pub fn counted_at(&self, e: &crate::state::model::Endpoint) -> super::host::CountedAt {
        match self.has_host_port(e) {
            true => super::host::CountedAt::Port(e.host_ifname.to_string()),
            false => super::host::CountedAt::Lan(lan_ifindex(&e.id)),
        }
    }

    /// The ifindexes of every macvlan endpoint's interface (see [`lan_ifindex`]).
    pub(super) fn lan_indexes(&self) -> Vec<u32> {
        self.containers
            .values()
            .flat_map(|c| &c.endpoints)
            .filter(|e| !self.has_host_port(e))
            .map(|e| lan_ifindex(&e.id))
            .collect()
    }

    /// Repairs made since the daemon started.
    pub fn repairs(&self) -> u64 {
        self.repairs
    }
}
