//! The names containers answer to on each network, built from the state: A records by name,
//! PTR records by address. Which names a client sees depends on the networks it shares with
//! them; addresses of a name shared by several containers come back rotated, query by query.

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::state::model::{Container, Network};

/// The names of one network: lowercase name -> addresses, address -> canonical name.
#[derive(Debug, Default, PartialEq)]
struct Zone {
    names: BTreeMap<String, Vec<Ipv4Addr>>,
    ptrs: HashMap<Ipv4Addr, String>,
}

/// Every network's names, and which networks each container address may resolve in.
#[derive(Debug, Default)]
pub struct Names {
    zones: HashMap<String, Zone>,
    /// (network id, address of a container there) -> the container's networks with names,
    /// the one of the address first.
    clients: HashMap<(String, Ipv4Addr), Vec<String>>,
    turn: AtomicUsize,
}

/// Whether a network has an embedded DNS: user-defined networks, as in Docker (the default
/// `bridge` has none).
pub fn has_dns(net: &Network) -> bool {
    net.subnet.is_some() && !net.predefined
}

impl Names {
    /// The names of running containers on networks with DNS: the container's name, its
    /// hostname, its short id, the endpoint's aliases, and each of them as `NAME.NETWORK`. An
    /// alias with a virtual IP resolves to that one address, whoever carries it.
    pub fn build<'a>(
        networks: impl IntoIterator<Item = &'a Network>,
        containers: impl IntoIterator<Item = &'a Container>,
    ) -> Self {
        let nets: HashMap<&str, &Network> = networks
            .into_iter()
            .filter(|n| has_dns(n))
            .map(|n| (n.id.as_str(), n))
            .collect();
        let mut names = Names::default();
        for c in containers.into_iter().filter(|c| c.is_running()) {
            let joined: Vec<String> = c
                .endpoints
                .iter()
                .filter(|e| nets.contains_key(e.network_id.as_str()))
                .map(|e| e.network_id.clone())
                .collect();
            for e in c.endpoints.iter() {
                let Some(net) = nets.get(e.network_id.as_str()) else {
                    continue;
                };
                let zone = names.zones.entry(net.id.clone()).or_default();
                let mut own = vec![
                    c.name.to_string(),
                    c.hostname.clone(),
                    c.id[..12].to_string(),
                ];
                own.extend(e.aliases.iter().cloned());
                own.retain(|n| !net.vips.contains_key(&n.to_ascii_lowercase()));
                own.sort();
                own.dedup();
                for name in own {
                    for n in [name.clone(), format!("{name}.{}", net.name)] {
                        let addrs = zone.names.entry(n.to_ascii_lowercase()).or_default();
                        if !addrs.contains(&e.ip) {
                            addrs.push(e.ip);
                        }
                    }
                }
                zone.ptrs.insert(e.ip, format!("{}.{}", c.name, net.name));
                let mut order = vec![e.network_id.clone()];
                order.extend(joined.iter().filter(|n| **n != e.network_id).cloned());
                names.clients.insert((e.network_id.clone(), e.ip), order);
            }
        }
        for net in nets.values() {
            for (alias, vip) in &net.vips {
                let zone = names.zones.entry(net.id.clone()).or_default();
                let qualified = format!("{alias}.{}", net.name);
                for n in [alias.clone(), qualified.to_ascii_lowercase()] {
                    zone.names.insert(n, vec![vip.ip]);
                }
                zone.ptrs.insert(vip.ip, qualified);
            }
        }
        names
    }

    /// The networks whose names `client`, asking on `network`, may resolve.
    fn scope<'a>(&'a self, network: &'a str, client: Ipv4Addr) -> Vec<&'a str> {
        match self.clients.get(&(network.to_string(), client)) {
            Some(nets) => nets.iter().map(String::as_str).collect(),
            None => vec![network],
        }
    }

    /// Addresses of `name` (case-insensitive, trailing dot allowed) for `client` asking on
    /// `network`, rotated by one more place at every call; `None` when the name is not one of
    /// the networks'.
    pub fn lookup(&self, network: &str, client: Ipv4Addr, name: &str) -> Option<Vec<Ipv4Addr>> {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        let mut addrs = self
            .scope(network, client)
            .into_iter()
            .find_map(|n| self.zones.get(n)?.names.get(&key))?
            .clone();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let len = addrs.len();
        addrs.rotate_left(turn % len);
        Some(addrs)
    }

    /// The name of a container address, for PTR queries.
    pub fn reverse(&self, network: &str, client: Ipv4Addr, addr: Ipv4Addr) -> Option<&str> {
        self.scope(network, client)
            .into_iter()
            .find_map(|n| self.zones.get(n)?.ptrs.get(&addr))
            .map(String::as_str)
    }
}

#[cfg(test)]
#[path = "names_tests.rs"]
mod tests;
