//! netd's IPAM driver for runtimes (Docker's `--ipam-driver`): pools and addresses handed
//! out on request, persisted, and shared with the netd network made on a pool.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::{Engine, EngineError};
use crate::{config::network::SubnetSpec, ipam::Pool, state::model::IpamPool};

/// Holder of the addresses netd's IPAM handed out, in a network's pool.
pub const IPAM_HOLDER: &str = "netd IPAM";
/// The one address space of netd's IPAM (Docker's LocalDefaultAddressSpace).
pub const ADDRESS_SPACE: &str = "netd";

/// What an address is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressUse {
    Gateway,
    Endpoint,
}

impl Engine {
    pub fn ipam_pool(&self, id: &str) -> Option<&IpamPool> {
        self.ipam_pools.get(id)
    }

    /// Gives a runtime a pool: `subnet` if it is free, else the first free default one.
    /// A pool that overlaps another pool, a network or a host route is refused, as
    /// Docker's own IPAM does, also when the same subnet is asked for twice.
    pub async fn request_pool(
        &mut self,
        subnet: Option<Ipv4Network>,
        ip_range: Option<Ipv4Network>,
    ) -> Result<IpamPool, EngineError> {
        let routes = self.host.facts.routes().await?;
        let subnet = match subnet {
            Some(subnet) => {
                self.check_overlap(subnet, &routes, None)?;
                subnet
            }
            None if ip_range.is_some() => {
                return Err(EngineError::Conflict(
                    "a sub-pool needs its pool: give the subnet too".into(),
                ))
            }
            None => self.free_default_subnet(&routes)?.subnet,
        };
        let inside =
            |r: &Ipv4Network| subnet.contains(r.network()) && r.prefix() >= subnet.prefix();
        if let Some(range) = ip_range.filter(|r| !inside(r)) {
            return Err(EngineError::Conflict(format!(
                "sub-pool {range} is not inside pool {subnet}"
            )));
        }
        let pool = IpamPool {
            id: subnet.to_string(),
            subnet,
            ip_range,
            addresses: Default::default(),
        };
        self.ipam_pools.insert(pool.id.clone(), pool.clone());
        if let Err(e) = self.save_ipam_pools() {
            self.ipam_pools.remove(&pool.id);
            return Err(e);
        }
        Ok(pool)
    }

    /// Forgets a pool; one that is not known is no error (Docker retries). Docker releases
    /// a network's pool before it deletes the network, so a network may still be on it.
    pub fn release_pool(&mut self, id: &str) -> Result<(), EngineError> {
        if self.ipam_pools.remove(id).is_some() {
            self.save_ipam_pools()?;
        }
        Ok(())
    }

    /// Hands out `ip`, or a free address, of pool `id`; with its prefix length.
    pub fn request_address(
        &mut self,
        id: &str,
        ip: Option<Ipv4Addr>,
        usage: AddressUse,
    ) -> Result<(Ipv4Addr, u8), EngineError> {
        let prefix = self
            .ipam_pools
            .get(id)
            .ok_or_else(|| EngineError::not_found("IPAM pool", id))?
            .subnet
            .prefix();
        let network = self
            .network_on_pool(id)
            .map(|n| (n.id.clone(), n.subnet.map(|s| s.gateway)));
        let ip = match network {
            // The network's gateway is its own: asking for it again gets it.
            Some((_, Some(gateway))) if ip == Some(gateway) && usage == AddressUse::Gateway => {
                gateway
            }
            Some((net_id, _)) => {
                let pool = self
                    .pools
                    .get_mut(&net_id)
                    .expect("bridge networks have a pool");
                pick(pool, ip, usage)?
            }
            None => pick(&mut standalone_pool(&self.ipam_pools[id]), ip, usage)?,
        };
        let purpose = match usage {
            AddressUse::Gateway => "gateway",
            AddressUse::Endpoint => "endpoint",
        };
        self.ipam_pools
            .get_mut(id)
            .expect("looked up above")
            .addresses
            .insert(ip, purpose.into());
        if let Err(e) = self.save_ipam_pools() {
            self.release_address(id, ip).ok();
            return Err(e);
        }
        Ok((ip, prefix))
    }

    /// Takes an address back; one that is not handed out is no error (Docker retries).
    pub fn release_address(&mut self, id: &str, ip: Ipv4Addr) -> Result<(), EngineError> {
        let Some(record) = self.ipam_pools.get_mut(id) else {
            return Ok(());
        };
        if record.addresses.remove(&ip).is_none() {
            return Ok(());
        }
        let network = self.network_on_pool(id).map(|n| n.id.clone());
        if let Some(pool) = network.and_then(|n| self.pools.get_mut(&n)) {
            // An endpoint still on it keeps it until it goes.
            if pool.holder(ip) == Some(IPAM_HOLDER) {
                pool.release(ip);
            }
        }
        self.save_ipam_pools()
    }

    /// A network made on pool `id` must have its subnet, and be the only one on it.
    pub(super) fn check_ipam_binding(
        &self,
        id: Option<&str>,
        subnet: Ipv4Network,
    ) -> Result<(), EngineError> {
        let Some(id) = id else { return Ok(()) };
        let pool = self
            .ipam_pools
            .get(id)
            .ok_or_else(|| EngineError::not_found("IPAM pool", id))?;
        if pool.subnet != subnet {
            return Err(EngineError::Conflict(format!(
                "subnet {subnet} is not the subnet {} of IPAM pool {id}",
                pool.subnet
            )));
        }
        if let Some(net) = self.network_on_pool(id) {
            return Err(EngineError::Conflict(format!(
                "IPAM pool {id} already has network {}",
                net.name
            )));
        }
        Ok(())
    }

    /// The netd network made on pool `id`, if any.
    fn network_on_pool(&self, id: &str) -> Option<&crate::state::model::Network> {
        self.networks
            .values()
            .find(|n| n.ipam_pool.as_deref() == Some(id))
    }

    fn save_ipam_pools(&self) -> Result<(), EngineError> {
        let pools: Vec<&IpamPool> = self.ipam_pools.values().collect();
        self.store.save_ipam_pools(&pools).map_err(Into::into)
    }
}

/// A gateway asked for by no address gets the subnet's first host, as with Docker's IPAM;
/// other addresses come from the range.
fn pick(pool: &mut Pool, ip: Option<Ipv4Addr>, usage: AddressUse) -> Result<Ipv4Addr, EngineError> {
    let first_host = Ipv4Addr::from(u32::from(pool.spec().subnet.network()) + 1);
    let ip = match (ip, usage) {
        (Some(ip), _) => ip,
        (None, AddressUse::Gateway) if pool.check_static(first_host).is_ok() => first_host,
        (None, _) => return pool.allocate(IPAM_HOLDER).map_err(Into::into),
    };
    pool.reserve(ip, IPAM_HOLDER)?;
    Ok(ip)
}

/// The addresses of a pool no netd network is made on (say, one of Docker's own bridge
/// networks): what was handed out, no gateway of its own.
fn standalone_pool(record: &IpamPool) -> Pool {
    let spec = SubnetSpec {
        subnet: record.subnet,
        ip_range: record.ip_range,
        gateway: record.subnet.network(),
    };
    let mut pool = Pool::new(format!("IPAM pool {}", record.id), spec);
    for ip in record.addresses.keys() {
        pool.give_back(*ip, IPAM_HOLDER);
    }
    pool
}
