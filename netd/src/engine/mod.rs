//! The engine: validates requests against the current state, plans the kernel work through
//! [`Host`], persists the result, and rolls back what it did when a step fails.

pub mod containers;
mod dns;
mod endpoints;
mod error;
#[cfg(test)]
mod fake;
pub mod host;
mod ipam_pools;
pub mod linux;
mod macvlan;
mod netns_guard;
mod networks;
mod ports;
mod reconcile;
mod records;
mod repair;
mod runtime;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_input;
#[cfg(test)]
mod tests_isolation;
#[cfg(test)]
mod tests_macvlan;
#[cfg(test)]
mod tests_repair;
#[cfg(test)]
mod tests_runtime;
#[cfg(test)]
mod tests_vips;
mod vips;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::Arc,
};

pub use error::{EngineError, Errors};
pub use host::Host;
use host::NetworkDriver;
pub use ipam_pools::{AddressUse, ADDRESS_SPACE};
pub use runtime::RuntimeEndpoint;
pub use vips::AliasView;

use crate::{
    ipam::Pool,
    state::{
        model::{Container, IpamPool, Network},
        Store,
    },
};

pub struct Engine {
    host: Host,
    store: Store,
    networks: BTreeMap<String, Network>,
    containers: BTreeMap<String, Container>,
    /// Address pools of bridge networks, by network id; rebuilt from endpoints on load.
    pools: HashMap<String, Pool>,
    /// Pools netd's IPAM driver gave runtimes, by pool id (persisted).
    ipam_pools: BTreeMap<String, IpamPool>,
    /// The daemon's own namespace, for `--network host` containers.
    daemon_netns: PathBuf,
    /// Namespaces no caller may name as a container's (the host's, the daemon's).
    protected: crate::netns::Protected,
    /// Reconciliations of the state with the machine since the state was made (persisted).
    reconciles: u64,
    /// Containers whose record in memory is newer than on disk (a write failed): written
    /// again until it succeeds.
    unsaved: std::collections::BTreeSet<String>,
    /// Links made again while running ([`Engine::repair`]).
    repairs: u64,
    /// Host ends of container interfaces missing at the last repair, whose datapath entries
    /// were forgotten then.
    missing_ports: std::collections::BTreeSet<String>,
}

impl Engine {
    pub fn reconciles(&self) -> u64 {
        self.reconciles
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn daemon_netns(&self) -> &std::path::Path {
        &self.daemon_netns
    }

    pub fn networks(&self) -> impl Iterator<Item = &Network> {
        self.networks.values()
    }

    pub fn containers(&self) -> impl Iterator<Item = &Container> {
        self.containers.values()
    }

    pub fn pool(&self, network_id: &str) -> Option<&Pool> {
        self.pools.get(network_id)
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The driver of `net`'s kind; `host` and `none` networks have none.
    fn driver(&self, net: &Network) -> Result<Arc<dyn NetworkDriver>, EngineError> {
        self.host.driver(net.driver).ok_or_else(|| {
            EngineError::Conflict(format!(
                "network {} ({} driver) gives containers no interface",
                net.name,
                net.driver.as_str()
            ))
        })
    }

    /// Finds a network by full id, then name, then unique id prefix (Docker's order).
    pub fn network(&self, key: &str) -> Result<&Network, EngineError> {
        find(&self.networks, key, |n| n.name.as_str())
            .ok_or_else(|| EngineError::not_found("network", key))
    }

    pub fn container(&self, key: &str) -> Result<&Container, EngineError> {
        find(&self.containers, key, |c| c.name.as_str())
            .ok_or_else(|| EngineError::not_found("container", key))
    }

    /// Names of the containers with an interface on `network_id`.
    fn members(&self, network_id: &str) -> Vec<String> {
        self.containers
            .values()
            .filter(|c| {
                c.endpoint_on(network_id).is_some() || self.uses_network_mode(c, network_id)
            })
            .map(|c| c.name.to_string())
            .collect()
    }

    /// Containers in host or none mode belong to the predefined host/none networks.
    fn uses_network_mode(&self, c: &Container, network_id: &str) -> bool {
        self.networks.get(network_id).is_some_and(|n| {
            n.predefined && n.subnet.is_none() && c.network_mode == n.name.as_str()
        })
    }
}

fn find<'a, T>(
    map: &'a BTreeMap<String, T>,
    key: &str,
    name: impl Fn(&T) -> &str,
) -> Option<&'a T> {
    if key.is_empty() {
        return None;
    }
    if let Some(v) = map.get(key) {
        return Some(v);
    }
    if let Some(v) = map.values().find(|v| name(v) == key) {
        return Some(v);
    }
    let mut matches = map
        .range(key.to_string()..)
        .take_while(|(id, _)| id.starts_with(key));
    match (matches.next(), matches.next()) {
        (Some((_, v)), None) => Some(v),
        _ => None,
    }
}
