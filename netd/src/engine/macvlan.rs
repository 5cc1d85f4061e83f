//! macvlan networks: the containers sit on the LAN through a parent interface of the host,
//! with addresses of the LAN's subnet, and no bridge, NAT or published port of netd's.

use std::{collections::BTreeMap, net::Ipv4Addr};

use super::{Engine, EngineError};
use crate::{
    config::{
        macvlan::{MacvlanMode, MacvlanSpec},
        names::IfName,
        network::NetworkSpec,
        ConfigError,
    },
    ipam,
    state::model::{Driver, Network},
};

/// Who holds the shim's address in the network's pool.
pub(super) const SHIM_HOLDER: &str = "the host's shim (host_access)";

impl Engine {
    pub(super) async fn create_macvlan_network(
        &mut self,
        spec: NetworkSpec,
        macvlan: MacvlanSpec,
    ) -> Result<Network, EngineError> {
        let subnet = spec.subnet.expect("config requires a macvlan subnet");
        if let Some(parent) = &macvlan.parent {
            if !self.host.links.link_exists(parent.as_str()).await? {
                // Docker would make PARENT.ID, a VLAN sub-interface; this kernel has no
                // 802.1Q driver, so netd makes none (one that exists is used as it is).
                let why = match parent.as_str().split_once('.') {
                    Some((_, id)) if id.parse::<u16>().is_ok() => "no such interface on this host, and netd makes no VLAN sub-interfaces: this kernel has no 802.1Q driver (CONFIG_VLAN_8021Q)",
                    _ => "no such interface on this host",
                };
                return Err(EngineError::Invalid(ConfigError::invalid(
                    "network option",
                    format!("parent={parent}"),
                    why,
                )));
            }
            self.check_parent_free(parent, macvlan.mode, subnet.subnet)?;
        }
        // The LAN's subnet is a route of the host's (the parent's own): only netd's other
        // networks and pools must stay clear of it.
        self.check_overlap(subnet.subnet, &[], None)?;
        let net = Network {
            id: self.new_network_id(),
            name: spec.name,
            driver: Driver::Macvlan,
            created: chrono::Utc::now(),
            predefined: false,
            internal: spec.internal,
            subnet: Some(subnet),
            bridge: None,
            mtu: spec.mtu,
            labels: spec.labels,
            masquerade: false,
            icc: true,
            routed: false,
            vip_aliases: false,
            alias_lb: Default::default(),
            vips: BTreeMap::new(),
            origin: spec.origin,
            ipam_pool: None,
            aux_addresses: spec.aux_addresses,
            macvlan: Some(macvlan),
            shim_ip: None,
        };
        let mut refused = Vec::new();
        let pool = self
            .network_pool(&net, &mut refused)
            .expect("a network with a subnet");
        if let Some(e) = refused.into_iter().next() {
            return Err(e.into());
        }
        self.pools.insert(net.id.clone(), pool);
        let mut net = net;
        let made = self.make_macvlan_network(&mut net).await;
        if made.is_err() {
            self.pools.remove(&net.id);
        }
        made.map(|()| net)
    }

    /// Makes the network's links (its own parent, the shim) and persists it; nothing remains
    /// on failure.
    async fn make_macvlan_network(&mut self, net: &mut Network) -> Result<(), EngineError> {
        if net.macvlan.as_ref().is_some_and(|m| m.host_access) {
            let pool = self.pools.get_mut(&net.id).expect("inserted");
            let ip = pool.allocate_highest(SHIM_HOLDER)?;
            net.shim_ip = Some(self.clear_on_lan(net, ip, false, SHIM_HOLDER).await?);
        }
        self.set_up_network(net).await?;
        self.networks.insert(net.id.clone(), net.clone());
        Ok(())
    }

    /// Two macvlan networks share a parent only with disjoint subnets, as in Docker, and a
    /// passthru one shares it with none: its container takes the parent over.
    fn check_parent_free(
        &self,
        parent: &IfName,
        mode: MacvlanMode,
        subnet: ipnetwork::Ipv4Network,
    ) -> Result<(), EngineError> {
        for other in self.networks.values() {
            let Some(theirs) = other.macvlan.as_ref() else {
                continue;
            };
            if other.macvlan_parent().as_ref() != Some(parent) {
                continue;
            }
            let passthru = [theirs.mode, mode].contains(&MacvlanMode::Passthru);
            let overlap = other
                .subnet
                .is_some_and(|s| ipam::overlaps(s.subnet, subnet));
            if passthru || overlap {
                return Err(EngineError::Conflict(format!(
                    "parent {parent} is taken by macvlan network {} ({}{}); a parent carries several macvlan networks only with disjoint subnets and none in passthru mode",
                    other.name,
                    theirs.mode.as_str(),
                    other.subnet.map(|s| format!(", {}", s.subnet)).unwrap_or_default(),
                )));
            }
        }
        Ok(())
    }

    /// A passthru network gives its parent to one container.
    pub(super) fn check_passthru_free(&self, net: &Network) -> Result<(), EngineError> {
        if net.macvlan.as_ref().map(|m| m.mode) != Some(MacvlanMode::Passthru) {
            return Ok(());
        }
        let holder = self
            .containers
            .values()
            .find(|c| c.endpoint_on(&net.id).is_some());
        match holder {
            Some(c) => Err(EngineError::Conflict(format!(
                "macvlan network {} is in passthru mode and container {} has its parent {}; a passthru network takes one container",
                net.name,
                c.name,
                net.macvlan_parent().map(|p| p.to_string()).unwrap_or_default()
            ))),
            None => Ok(()),
        }
    }

    /// `ip` if no machine on the LAN answers for it (nor the host itself). One asked for
    /// (`--ip`) that is taken is refused; an allocated one stays held for its owner on the
    /// LAN, until the daemon restarts, and the next free one is tried.
    pub(super) async fn clear_on_lan(
        &mut self,
        net: &Network,
        mut ip: Ipv4Addr,
        asked: bool,
        holder: &str,
    ) -> Result<Ipv4Addr, EngineError> {
        // An internal network's parent is netd's own: there is no LAN to ask.
        let Some(parent) = net.macvlan.as_ref().and_then(|m| m.parent.as_ref()) else {
            return Ok(ip);
        };
        let parent = parent.to_string();
        loop {
            let owner = match self.host.facts.has_address(ip) {
                true => Some("this host".to_string()),
                false => match self.host.facts.lan_owner(&parent, ip).await {
                    Ok(owner) => owner.map(|mac| format!("{mac} (answering ARP on {parent})")),
                    Err(e) => {
                        self.release_on(net, ip);
                        return Err(e.into());
                    }
                },
            };
            let Some(owner) = owner else {
                return Ok(ip);
            };
            if asked {
                self.release_on(net, ip);
                return Err(EngineError::Invalid(ConfigError::invalid(
                    "IP address",
                    ip.to_string(),
                    format!("is in use on the LAN by {owner}"),
                )));
            }
            log::warn!("{ip} of network {} is in use by {owner}: skipped", net.name);
            let pool = self.pools.get_mut(&net.id).expect("the network's pool");
            pool.give_back(ip, &format!("in use on the LAN by {owner}"));
            ip = pool.allocate(holder)?;
        }
    }

    fn release_on(&mut self, net: &Network, ip: Ipv4Addr) {
        if let Some(pool) = self.pools.get_mut(&net.id) {
            pool.release(ip);
        }
    }
}
