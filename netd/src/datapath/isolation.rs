//! Typed handles for isolation and anti-spoofing: container interfaces (endpoints), the rules
//! of each bridge network with its subnet and bridge, and the drop counters.

use std::net::Ipv4Addr;

use aya::maps::{lpm_trie::Key, MapError, PerCpuValues};
use ipnetwork::Ipv4Network;
use netd_common::{
    isolation::{DropCounters, DropKey, Endpoint, Member, NetworkPolicy, EP_DNAT_TARGET},
    maps,
};

use super::{
    nat::{addr_be, ip_of},
    Datapath, DatapathError,
};

fn map_err(name: &'static str) -> impl Fn(MapError) -> DatapathError {
    move |source| DatapathError::Map { name, source }
}

/// One bridge network as the datapath sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkRule {
    /// Datapath id (key of the network map).
    pub id: u32,
    pub subnet: Ipv4Network,
    pub gateway: Ipv4Addr,
    pub gateway_mac: [u8; 6],
    /// `NET_*` flags of netd-common's isolation module.
    pub flags: u32,
    pub bridge_ifindex: u32,
}

impl NetworkRule {
    fn policy(&self) -> NetworkPolicy {
        NetworkPolicy {
            subnet_be: addr_be(self.subnet.network()),
            mask_be: addr_be(self.subnet.mask()),
            gateway_be: addr_be(self.gateway),
            flags: self.flags,
            gateway_mac: self.gateway_mac,
            _pad: [0; 2],
        }
    }
}

/// A container interface: the only address and MAC it may send from, and its network.
pub fn endpoint(ip: Ipv4Addr, mac: [u8; 6], network: u32) -> Endpoint {
    Endpoint {
        addr_be: addr_be(ip),
        network,
        mac,
        flags: 0,
        _pad: 0,
    }
}

/// The same, for the target of published ports.
pub fn dnat_target(mut ep: Endpoint) -> Endpoint {
    ep.flags |= EP_DNAT_TARGET;
    ep
}

impl Datapath {
    /// Describes the container interface behind bridge port `ifindex`; its programs drop
    /// everything until this is done.
    /// Also makes its address a member the network's other ports deliver to directly.
    pub fn set_endpoint(&mut self, ifindex: u32, ep: Endpoint) -> Result<(), DatapathError> {
        self.endpoints
            .insert(ifindex, ep, 0)
            .map_err(map_err(maps::ENDPOINTS))?;
        let member = Member {
            port_ifindex: ifindex,
            network: ep.network,
            mac: ep.mac,
            _pad: [0; 2],
        };
        self.members
            .insert(ep.addr_be, member, 0)
            .map_err(map_err(maps::MEMBERS))
    }

    /// The member entry goes with it, unless its address already belongs to another port.
    pub fn remove_endpoint(&mut self, ifindex: u32) -> Result<(), DatapathError> {
        if let Ok(ep) = self.endpoints.get(&ifindex, 0) {
            if self
                .member(ep.addr_be)
                .is_some_and(|m| m.port_ifindex == ifindex)
            {
                super::removed(self.members.remove(&ep.addr_be)).map_err(map_err(maps::MEMBERS))?;
            }
        }
        super::removed(self.endpoints.remove(&ifindex)).map_err(map_err(maps::ENDPOINTS))
    }

    /// Flags the endpoint of port `ifindex` as the target of published ports.
    pub fn mark_dnat_target(&mut self, ifindex: u32) -> Result<(), DatapathError> {
        let ep = self
            .endpoints
            .get(&ifindex, 0)
            .map_err(map_err(maps::ENDPOINTS))?;
        if ep.flags & EP_DNAT_TARGET == 0 {
            self.set_endpoint(ifindex, dnat_target(ep))?;
        }
        Ok(())
    }

    /// Where the address `addr_be` (network order) is delivered directly.
    pub fn member(&self, addr_be: u32) -> Option<Member> {
        self.members.get(&addr_be, 0).ok()
    }

    pub fn endpoints(&self) -> Vec<(u32, Endpoint)> {
        self.endpoints.iter().filter_map(Result::ok).collect()
    }

    /// Makes the networks, their subnets and bridges exactly `rules`. New and changed entries
    /// go in before stale ones go out, so that a live network never misses.
    pub fn set_networks(&mut self, rules: &[NetworkRule]) -> Result<(), DatapathError> {
        for r in rules {
            self.networks
                .insert(r.id, r.policy(), 0)
                .map_err(map_err(maps::NETWORKS))?;
            let key = Key::new(u32::from(r.subnet.prefix()), addr_be(r.subnet.network()));
            self.network_subnets
                .insert(&key, r.id, 0)
                .map_err(map_err(maps::NETWORK_SUBNETS))?;
            if r.bridge_ifindex != 0 {
                self.bridges
                    .insert(r.bridge_ifindex, r.id, 0)
                    .map_err(map_err(maps::BRIDGES))?;
            }
        }
        let stale_ids: Vec<u32> = self
            .networks
            .keys()
            .filter_map(Result::ok)
            .filter(|id| !rules.iter().any(|r| r.id == *id))
            .collect();
        for id in stale_ids {
            let _ = self.networks.remove(&id);
        }
        let stale_subnets: Vec<Key<u32>> = self
            .network_subnets
            .keys()
            .filter_map(Result::ok)
            .filter(|k| {
                !rules.iter().any(|r| {
                    (u32::from(r.subnet.prefix()), addr_be(r.subnet.network()))
                        == (k.prefix_len(), k.data())
                })
            })
            .collect();
        for key in stale_subnets {
            let _ = self.network_subnets.remove(&key);
        }
        let stale_bridges: Vec<u32> = self
            .bridges
            .iter()
            .filter_map(Result::ok)
            .filter(|(ifindex, id)| {
                !rules
                    .iter()
                    .any(|r| r.bridge_ifindex == *ifindex && r.id == *id)
            })
            .map(|(ifindex, _)| ifindex)
            .collect();
        for ifindex in stale_bridges {
            let _ = self.bridges.remove(&ifindex);
        }
        Ok(())
    }

    /// The network rules as the datapath has them.
    pub fn network_rules(&self) -> Vec<NetworkRule> {
        let subnets: Vec<(Key<u32>, u32)> =
            self.network_subnets.iter().filter_map(Result::ok).collect();
        let bridges: Vec<(u32, u32)> = self.bridges.iter().filter_map(Result::ok).collect();
        self.networks
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(id, p): (u32, NetworkPolicy)| {
                let (key, _) = subnets.iter().find(|(_, v)| *v == id)?;
                Some(NetworkRule {
                    id,
                    subnet: Ipv4Network::new(ip_of(key.data()), key.prefix_len() as u8).ok()?,
                    gateway: ip_of(p.gateway_be),
                    gateway_mac: p.gateway_mac,
                    flags: p.flags,
                    bridge_ifindex: bridges.iter().find(|(_, v)| *v == id).map_or(0, |b| b.0),
                })
            })
            .collect()
    }

    /// Drop counters summed over CPUs.
    pub fn drops(&self) -> Vec<(DropKey, DropCounters)> {
        self.drops
            .iter()
            .filter_map(Result::ok)
            .map(|(k, per_cpu): (DropKey, PerCpuValues<DropCounters>)| {
                let mut sum = DropCounters::default();
                per_cpu.iter().for_each(|c| sum.merge(c));
                (k, sum)
            })
            .collect()
    }
}
