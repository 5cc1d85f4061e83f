//! Virtual IPs of aliases: made by `alias create`, or for the first member that carries an
//! alias on an `alias-mode=vip` network; removed by `alias rm`, or (when made for a member)
//! once no container carries the alias any more. Their backends are the running members
//! that carry the alias, handed to the datapath at every change of the state.

use std::{collections::BTreeSet, net::Ipv4Addr};

use super::{Engine, EngineError};
use crate::{
    config::{
        alias::{CreateAlias, Lb},
        names::Name,
        network::parse_ipv4,
    },
    datapath::vips::VipSpec,
    dns::has_dns,
    state::model::{Network, VipAlias},
};

/// The holder of a VIP in its network's address pool.
pub(super) fn holder(alias: &str) -> String {
    format!("alias {alias}")
}

/// An alias with its VIP and backends, for `alias ls` and `alias inspect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasView {
    pub network: String,
    pub name: String,
    pub vip: VipAlias,
    /// Made by `alias create` (else for a member, on an `alias-mode=vip` network).
    pub explicit: bool,
    /// Running members that carry the alias: container name and address.
    pub backends: Vec<(String, Ipv4Addr)>,
}

impl Engine {
    /// Running members of `net` that carry `alias`, by address.
    fn backends(&self, net: &Network, alias: &str) -> Vec<(String, Ipv4Addr)> {
        let mut backends: Vec<(String, Ipv4Addr)> = self
            .containers
            .values()
            .filter(|c| c.is_running())
            .filter_map(|c| {
                let e = c.endpoint_on(&net.id)?;
                e.aliases
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(alias))
                    .then(|| (c.name.to_string(), e.ip))
            })
            .collect();
        backends.sort_by_key(|(_, ip)| *ip);
        backends
    }

    /// Every VIP with its backends, as the datapath should have them.
    pub(super) fn vip_specs(&self) -> Vec<VipSpec> {
        self.networks
            .values()
            .flat_map(|net| {
                net.vips.iter().map(move |(alias, vip)| VipSpec {
                    id: vip.id,
                    network: net.datapath_id(),
                    addr: vip.ip,
                    algorithm: vip.lb.algorithm(),
                    backends: self
                        .backends(net, alias)
                        .into_iter()
                        .map(|(_, ip)| ip)
                        .collect::<BTreeSet<_>>(),
                })
            })
            .collect()
    }

    /// Hands the datapath the VIPs and their backends; cheap enough for every change.
    pub(super) fn sync_vips(&self) {
        if let Err(e) = self.host.rules.set_vips(&self.vip_specs()) {
            log::warn!("virtual IPs: {e}");
        }
    }

    pub fn aliases(&self) -> Vec<AliasView> {
        self.networks
            .values()
            .flat_map(|net| {
                net.vips.iter().map(move |(alias, vip)| AliasView {
                    network: net.name.to_string(),
                    name: alias.clone(),
                    vip: vip.clone(),
                    explicit: vip.explicit,
                    backends: self.backends(net, alias),
                })
            })
            .collect()
    }

    /// Connections each backend address of VIP `id` was chosen for.
    pub fn vip_connections(&self, id: u32) -> Vec<(Ipv4Addr, u64)> {
        self.host.telemetry.vip_connections(id)
    }

    /// `alias create`: a VIP alias on a network, whether or not members carry it yet.
    pub async fn create_alias(&mut self, req: CreateAlias) -> Result<AliasView, EngineError> {
        let net = self.network(&req.network)?.clone();
        let name = Name::parse("alias", &req.name)?
            .to_string()
            .to_ascii_lowercase();
        let lb = req.lb.as_deref().map(Lb::parse).transpose()?;
        let ip = req
            .ip
            .as_deref()
            .map(|ip| parse_ipv4("virtual IP", ip))
            .transpose()?;
        check_vip_network(&net)?;
        if net.vips.contains_key(&name) {
            return Err(EngineError::Conflict(format!(
                "alias {name} already has a virtual IP on network {}",
                net.name
            )));
        }
        self.add_vips(&net.id, std::slice::from_ref(&name), lb, ip, true)
            .await?;
        self.refresh_names();
        self.aliases()
            .into_iter()
            .find(|a| a.network == net.name.as_str() && a.name == name)
            .ok_or_else(|| EngineError::not_found("alias", &name))
    }

    /// `alias rm`: releases an alias's VIP. Refused while members carry it on a network that
    /// gives every alias a VIP (it would come back with the next one).
    pub async fn remove_alias(&mut self, network: &str, name: &str) -> Result<(), EngineError> {
        let net = self.network(network)?.clone();
        let key = name.to_ascii_lowercase();
        if !net.vips.contains_key(&key) {
            return Err(EngineError::not_found(
                "alias",
                format!("{name} on network {}", net.name),
            ));
        }
        let carriers = self.carriers(&net, &key);
        if net.vip_aliases && !carriers.is_empty() {
            return Err(EngineError::Conflict(format!(
                "alias {key} of network {} (alias-mode=vip) is carried by {}; disconnect or remove them first",
                net.name,
                carriers.join(", ")
            )));
        }
        self.remove_vips(&net.id, &[key]).await?;
        self.refresh_names();
        Ok(())
    }

    /// Containers, running or not, whose endpoint on `net` carries `alias`.
    fn carriers(&self, net: &Network, alias: &str) -> Vec<String> {
        self.containers
            .values()
            .filter(|c| {
                c.endpoint_on(&net.id)
                    .is_some_and(|e| e.aliases.iter().any(|a| a.eq_ignore_ascii_case(alias)))
            })
            .map(|c| c.name.to_string())
            .collect()
    }

    /// VIPs for those of `aliases` that have none, on a network that gives every alias one.
    /// Returns the aliases it made VIPs for, for the caller to undo.
    pub(super) async fn add_alias_vips(
        &mut self,
        network_id: &str,
        aliases: &[String],
    ) -> Result<Vec<String>, EngineError> {
        let Some(net) = self.networks.get(network_id).filter(|n| n.vip_aliases) else {
            return Ok(Vec::new());
        };
        let mut missing: Vec<String> = aliases
            .iter()
            .map(|a| a.to_ascii_lowercase())
            .filter(|a| !net.vips.contains_key(a))
            .collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(missing);
        }
        self.add_vips(network_id, &missing, None, None, false)
            .await?;
        Ok(missing)
    }

    /// Releases the VIPs made for members once no container carries their alias.
    pub(super) async fn prune_alias_vips(&mut self) {
        let unused: Vec<(String, Vec<String>)> = self
            .networks
            .values()
            .map(|net| {
                let aliases = net
                    .vips
                    .iter()
                    .filter(|(alias, vip)| !vip.explicit && self.carriers(net, alias).is_empty())
                    .map(|(alias, _)| alias.clone())
                    .collect();
                (net.id.clone(), aliases)
            })
            .filter(|(_, aliases): &(String, Vec<String>)| !aliases.is_empty())
            .collect();
        for (network_id, aliases) in unused {
            if let Err(e) = self.remove_vips(&network_id, &aliases).await {
                log::warn!("releasing virtual IPs of {}: {e}", aliases.join(", "));
            }
        }
    }

    /// Reserves and persists a VIP for each alias; all or none.
    async fn add_vips(
        &mut self,
        network_id: &str,
        aliases: &[String],
        lb: Option<Lb>,
        ip: Option<Ipv4Addr>,
        explicit: bool,
    ) -> Result<(), EngineError> {
        let mut net = self.networks[network_id].clone();
        let pool = self
            .pools
            .get_mut(network_id)
            .ok_or_else(|| EngineError::Conflict(format!("network {} has no subnet", net.name)))?;
        let mut reserved = Vec::new();
        let mut taken_ids: BTreeSet<u32> = self
            .networks
            .values()
            .flat_map(|n| n.vips.values().map(|v| v.id))
            .collect();
        // Docker's own IPAM hands out a network's addresses lowest first without asking
        // netd: its VIPs then come from the top, where Docker gets last.
        let from_top = net.origin.runtime_id().is_some() && net.ipam_pool.is_none();
        for alias in aliases {
            let result = match ip {
                Some(ip) => pool.reserve(ip, &holder(alias)).map(|()| ip),
                None if from_top => pool.allocate_highest(&holder(alias)),
                None => pool.allocate(&holder(alias)),
            };
            let addr = match result {
                Ok(addr) => addr,
                Err(e) => {
                    reserved.iter().for_each(|a| pool.release(*a));
                    return Err(e.into());
                }
            };
            reserved.push(addr);
            let id = new_vip_id(&taken_ids);
            taken_ids.insert(id);
            let vip = VipAlias {
                id,
                ip: addr,
                lb: lb.unwrap_or(net.alias_lb),
                explicit,
            };
            net.vips.insert(alias.clone(), vip);
        }
        if let Err(e) = self.store.save_network(&net) {
            let pool = self.pools.get_mut(network_id).expect("checked above");
            reserved.iter().for_each(|a| pool.release(*a));
            return Err(e.into());
        }
        self.networks.insert(net.id.clone(), net);
        self.sync_network_rules().await
    }

    /// Forgets the VIPs of `aliases` and frees their addresses.
    pub(super) async fn remove_vips(
        &mut self,
        network_id: &str,
        aliases: &[String],
    ) -> Result<(), EngineError> {
        let mut net = self.networks[network_id].clone();
        let removed: Vec<VipAlias> = aliases.iter().filter_map(|a| net.vips.remove(a)).collect();
        self.store.save_network(&net)?;
        if let Some(pool) = self.pools.get_mut(network_id) {
            removed.iter().for_each(|v| pool.release(v.ip));
        }
        self.networks.insert(net.id.clone(), net);
        self.sync_vips();
        self.sync_network_rules().await
    }
}

/// VIPs need a network with names, whose members may talk to each other.
pub(super) fn check_vip_network(net: &Network) -> Result<(), EngineError> {
    if !has_dns(net) {
        return Err(EngineError::Conflict(format!(
            "network {} has no embedded DNS; aliases and virtual IPs need a user-defined bridge network",
            net.name
        )));
    }
    if !net.icc {
        return Err(EngineError::Conflict(format!(
            "network {} has icc=false: its members may not reach each other, through a virtual IP neither",
            net.name
        )));
    }
    Ok(())
}

/// A random VIP id, non-zero and not in `taken`.
fn new_vip_id(taken: &BTreeSet<u32>) -> u32 {
    loop {
        let id: u32 = rand::random();
        if id != 0 && !taken.contains(&id) {
            return id;
        }
    }
}
