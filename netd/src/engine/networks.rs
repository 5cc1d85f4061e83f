//! Network lifecycle: create (with subnet choice and overlap checks), remove, prune, and the
//! predefined networks of a first start.

use std::collections::BTreeMap;

use ipnetwork::Ipv4Network;

use super::{host::NetworkRules, ipam_pools::IPAM_HOLDER, Engine, EngineError};
use crate::{
    config::{
        mac::Mac,
        names::{IfName, Name},
        network::{NetworkSpec, PolicyOptions, SubnetSpec, DEFAULT_MTU},
    },
    ipam::{self, IpamError, Pool},
    state::model::{datapath_id, new_id, Driver, Network},
};

/// Device of the default `bridge` network.
pub const DEFAULT_BRIDGE: &str = "netd0";
pub const DEFAULT_SUBNET: &str = "172.17.0.0/16";

impl Engine {
    pub async fn create_network(&mut self, spec: NetworkSpec) -> Result<Network, EngineError> {
        if let Some(other) = self.networks.values().find(|n| n.name == spec.name) {
            return Err(EngineError::Conflict(format!(
                "network with name {} already exists ({})",
                spec.name,
                &other.id[..12]
            )));
        }
        if let Some(macvlan) = spec.macvlan.clone() {
            return self.create_macvlan_network(spec, macvlan).await;
        }
        let routes = self.host.facts.routes().await?;
        let subnet = match spec.subnet {
            Some(mut subnet) => {
                self.check_ipam_binding(spec.ipam_pool.as_deref(), subnet.subnet)?;
                self.check_overlap(subnet.subnet, &routes, spec.ipam_pool.as_deref())?;
                // Docker tells the network driver the pool but not its sub-pool.
                if let Some(pool) = spec.ipam_pool.as_ref().and_then(|p| self.ipam_pools.get(p)) {
                    subnet.ip_range = subnet.ip_range.or(pool.ip_range);
                }
                subnet
            }
            None if spec.ipam_pool.is_some() => {
                return Err(EngineError::Conflict(
                    "a network on a netd IPAM pool needs that pool's subnet".into(),
                ))
            }
            None => self.free_default_subnet(&routes)?,
        };
        let id = self.new_network_id();
        let bridge = match spec.bridge_name {
            Some(name) => {
                self.check_bridge_name(&name).await?;
                name
            }
            None => IfName::parse(&format!("nd-{}", &id[..12]))?,
        };
        let net = Network {
            id,
            name: spec.name,
            driver: Driver::Bridge,
            created: chrono::Utc::now(),
            predefined: false,
            internal: spec.internal,
            subnet: Some(subnet),
            bridge: Some(bridge),
            mtu: spec.mtu,
            labels: spec.labels,
            masquerade: spec.policy.masquerade,
            icc: spec.policy.icc,
            routed: spec.policy.routed,
            vip_aliases: spec.aliases.vip,
            alias_lb: spec.aliases.lb,
            vips: BTreeMap::new(),
            origin: spec.origin,
            ipam_pool: spec.ipam_pool,
            aux_addresses: spec.aux_addresses,
            macvlan: spec.macvlan,
            shim_ip: None,
        };
        self.add_bridge_network(net).await
    }

    /// A random id whose datapath id (its first 32 bits) is non-zero and not another
    /// network's.
    pub(super) fn new_network_id(&self) -> String {
        loop {
            let id = new_id();
            let dp = datapath_id(&id);
            if dp != 0 && !self.networks.values().any(|n| n.datapath_id() == dp) {
                return id;
            }
        }
    }

    /// Changes the datapath options of a live network (icc, gateway mode, masquerade); the
    /// maps follow at once.
    pub async fn update_network(
        &mut self,
        key: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Network, EngineError> {
        let mut net = self.network(key)?.clone();
        // Gateway policies (icc, gateway mode, masquerade) are those of a network whose
        // containers have a host end behind the network's gateway.
        let gated = self.host.driver(net.driver).is_some_and(|d| d.host_end());
        if net.subnet.is_none() || !gated {
            return Err(EngineError::Conflict(format!(
                "network {} ({} driver) has no options to change",
                net.name,
                net.driver.as_str()
            )));
        }
        let mut policy = net.policy();
        for (k, v) in options {
            if !policy.apply(k, v)? {
                return Err(EngineError::Conflict(format!(
                    "network option {k} cannot change on an existing network; the ones that can are {}",
                    PolicyOptions::KNOWN.join(", ")
                )));
            }
        }
        if net.internal && policy.routed {
            return Err(EngineError::Conflict(format!(
                "network {} is internal: it cannot be routed",
                net.name
            )));
        }
        if !policy.icc && (net.vip_aliases || !net.vips.is_empty()) {
            return Err(EngineError::Conflict(format!(
                "network {} has virtual IPs: icc=false would cut members off from them; remove them (netd alias rm) first",
                net.name
            )));
        }
        net.set_policy(policy);
        self.store.save_network(&net)?;
        self.networks.insert(net.id.clone(), net.clone());
        self.sync_masq_subnets().await?;
        self.sync_network_rules().await?;
        Ok(net)
    }

    /// The isolation rules of every bridge network, for the datapath.
    pub(super) fn network_rules(&self) -> Vec<NetworkRules> {
        self.networks
            .values()
            .filter_map(|n| {
                let subnet = n.subnet?;
                Some(NetworkRules {
                    id: n.datapath_id(),
                    bridge: n.bridge.clone()?,
                    subnet: subnet.subnet,
                    gateway: subnet.gateway,
                    gateway_mac: Mac::for_gateway(subnet.gateway),
                    icc: n.icc,
                    internal: n.internal,
                    routed: n.routed,
                    vips: !n.vips.is_empty(),
                })
            })
            .collect()
    }

    pub(super) async fn sync_network_rules(&self) -> Result<(), EngineError> {
        self.host
            .rules
            .set_networks(&self.network_rules())
            .await
            .map_err(Into::into)
    }

    /// Makes the links of `net` with its driver and persists it; nothing remains on failure.
    pub(super) async fn set_up_network(&self, net: &Network) -> Result<(), EngineError> {
        let driver = self.driver(net)?;
        let made = match driver.setup(net).await {
            Ok(()) => self.store.save_network(net).map_err(EngineError::from),
            Err(e) => Err(e.into()),
        };
        if made.is_err() {
            if let Err(e) = driver.teardown(net).await {
                log::warn!("removing what was made of network {}: {e}", net.name);
            }
        }
        made
    }

    /// Creates the bridge of `net`, persists it and opens its address pool.
    async fn add_bridge_network(&mut self, net: Network) -> Result<Network, EngineError> {
        let mut refused = Vec::new();
        let pool = self
            .network_pool(&net, &mut refused)
            .expect("a bridge network");
        if let Some(e) = refused.into_iter().next() {
            return Err(e.into());
        }
        self.set_up_network(&net).await?;
        self.pools.insert(net.id.clone(), pool);
        self.networks.insert(net.id.clone(), net.clone());
        self.sync_masq_subnets().await?;
        self.sync_network_rules().await?;
        self.sync_dns().await;
        Ok(net)
    }

    /// A chosen bridge name must be free: netd never takes over a link it did not create.
    async fn check_bridge_name(&self, name: &IfName) -> Result<(), EngineError> {
        if let Some(net) = self
            .networks
            .values()
            .find(|n| n.bridge.as_ref() == Some(name))
        {
            return Err(EngineError::Conflict(format!(
                "bridge {name} is already used by network {}",
                net.name
            )));
        }
        if self.host.links.link_exists(name.as_str()).await? {
            return Err(EngineError::Conflict(format!(
                "an interface named {name} already exists on the host; pick another bridge name"
            )));
        }
        Ok(())
    }

    /// The address pool of a bridge network: its virtual IPs, aux addresses and what netd's
    /// IPAM handed out of the pool it was made on are held; endpoints come on top. What
    /// cannot be held is returned in `refused`.
    pub(super) fn network_pool(&self, net: &Network, refused: &mut Vec<IpamError>) -> Option<Pool> {
        let subnet = net.subnet?;
        let mut pool = Pool::new(net.name.to_string(), subnet);
        for (alias, vip) in &net.vips {
            refused.extend(pool.reserve(vip.ip, &super::vips::holder(alias)).err());
        }
        for (name, ip) in &net.aux_addresses {
            refused.extend(pool.reserve(*ip, &format!("aux address {name}")).err());
        }
        if let Some(ip) = net.shim_ip {
            refused.extend(pool.reserve(ip, super::macvlan::SHIM_HOLDER).err());
        }
        let handed_out = net
            .ipam_pool
            .as_ref()
            .and_then(|id| self.ipam_pools.get(id));
        for ip in handed_out.into_iter().flat_map(|p| p.addresses.keys()) {
            if *ip != subnet.gateway {
                refused.extend(pool.reserve(*ip, IPAM_HOLDER).err());
            }
        }
        Some(pool)
    }

    /// Subnets must not overlap other networks', netd IPAM pools' (but the one the network is
    /// made on) or the host's routes.
    pub(super) fn check_overlap(
        &self,
        subnet: Ipv4Network,
        routes: &[Ipv4Network],
        own_pool: Option<&str>,
    ) -> Result<(), EngineError> {
        for pool in self.ipam_pools.values() {
            if Some(pool.id.as_str()) != own_pool && ipam::overlaps(pool.subnet, subnet) {
                return Err(EngineError::Conflict(format!(
                    "subnet {subnet} overlaps pool {} that netd's IPAM gave a runtime",
                    pool.subnet
                )));
            }
        }
        for net in self.networks.values() {
            if let Some(other) = net.subnet.filter(|s| ipam::overlaps(s.subnet, subnet)) {
                return Err(EngineError::Conflict(format!(
                    "subnet {subnet} overlaps subnet {} of network {}",
                    other.subnet, net.name
                )));
            }
        }
        if let Some(route) = routes.iter().find(|r| ipam::overlaps(**r, subnet)) {
            return Err(EngineError::Conflict(format!(
                "subnet {subnet} overlaps the host route to {route}; pick another --subnet"
            )));
        }
        Ok(())
    }

    pub(super) fn free_default_subnet(
        &self,
        routes: &[Ipv4Network],
    ) -> Result<SubnetSpec, EngineError> {
        let mut taken: Vec<Ipv4Network> = self
            .networks
            .values()
            .filter_map(|n| n.subnet)
            .map(|s| s.subnet)
            .chain(self.ipam_pools.values().map(|p| p.subnet))
            .collect();
        taken.extend_from_slice(routes);
        ipam::first_free(&taken)
            .map(SubnetSpec::with_default_gateway)
            .ok_or_else(|| {
                EngineError::Conflict(
                    "all of the default address pools (172.17-31.0.0/16, 192.168.0.0/16 in /20s) are in use; give --subnet"
                        .into(),
                )
            })
    }

    pub async fn remove_network(&mut self, key: &str) -> Result<String, EngineError> {
        let net = self.network(key)?;
        if net.origin.runtime_id().is_some() {
            return Err(EngineError::Forbidden(format!(
                "network {} belongs to {}: remove it there (docker network rm)",
                net.name,
                net.origin.kind()
            )));
        }
        let id = net.id.clone();
        self.remove_network_of_anyone(&id).await
    }

    /// Removes a network whoever made it (a runtime's plugin removes its own).
    pub(super) async fn remove_network_of_anyone(
        &mut self,
        key: &str,
    ) -> Result<String, EngineError> {
        let net = self.network(key)?.clone();
        if net.predefined {
            return Err(EngineError::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                net.name
            )));
        }
        let members = self.members(&net.id);
        if !members.is_empty() {
            return Err(EngineError::Conflict(format!(
                "network {} has active endpoints: {}; disconnect or remove them first",
                net.name,
                members.join(", ")
            )));
        }
        if let Some(driver) = self.host.driver(net.driver) {
            driver.teardown(&net).await?;
        }
        self.store.delete_network(&net.id)?;
        self.pools.remove(&net.id);
        self.networks.remove(&net.id);
        self.sync_masq_subnets().await?;
        self.sync_network_rules().await?;
        self.sync_dns().await;
        Ok(net.name.to_string())
    }

    /// Removes every user-defined network without containers; returns their names.
    pub async fn prune_networks(&mut self) -> Result<Vec<String>, EngineError> {
        let unused: Vec<String> = self
            .networks
            .values()
            .filter(|n| !n.predefined && n.origin.runtime_id().is_none())
            .filter(|n| self.members(&n.id).is_empty())
            .map(|n| n.id.clone())
            .collect();
        let mut removed = Vec::new();
        for id in unused {
            removed.push(self.remove_network(&id).await?);
        }
        Ok(removed)
    }

    /// First start: `bridge` on netd0 (172.17.0.0/16 unless a host route overlaps it), `host`
    /// and `none`.
    pub(super) async fn create_predefined(&mut self) -> Result<(), EngineError> {
        let has = |e: &Engine, name: &str| {
            e.networks
                .values()
                .any(|n| n.predefined && n.name.as_str() == name)
        };
        if !has(self, "bridge") {
            let routes = self.host.facts.routes().await?;
            let preferred: Ipv4Network = DEFAULT_SUBNET.parse().expect("valid");
            let subnet = if self.check_overlap(preferred, &routes, None).is_ok() {
                SubnetSpec::with_default_gateway(preferred)
            } else {
                self.free_default_subnet(&routes)?
            };
            let mut net = predefined("bridge", Driver::Bridge);
            net.id = self.new_network_id();
            net.subnet = Some(subnet);
            net.bridge = Some(IfName::parse(DEFAULT_BRIDGE)?);
            self.add_bridge_network(net).await?;
        }
        for (name, driver) in [("host", Driver::Host), ("none", Driver::Null)] {
            if !has(self, name) {
                let net = predefined(name, driver);
                self.store.save_network(&net)?;
                self.networks.insert(net.id.clone(), net);
            }
        }
        Ok(())
    }
}

fn predefined(name: &str, driver: Driver) -> Network {
    Network {
        id: new_id(),
        icc: true,
        routed: false,
        vip_aliases: false,
        alias_lb: Default::default(),
        vips: BTreeMap::new(),
        name: Name::parse("network name", name).expect("valid"),
        driver,
        created: chrono::Utc::now(),
        predefined: true,
        internal: false,
        subnet: None,
        bridge: None,
        mtu: DEFAULT_MTU,
        labels: BTreeMap::new(),
        masquerade: true,
        origin: Default::default(),
        ipam_pool: None,
        aux_addresses: BTreeMap::new(),
        macvlan: None,
        shim_ip: None,
    }
}
