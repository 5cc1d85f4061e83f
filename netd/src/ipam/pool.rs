//! The addresses of one network: who holds which, and the next free one.

use std::{collections::BTreeMap, net::Ipv4Addr};

use ipnetwork::Ipv4Network;

use crate::config::network::SubnetSpec;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("no free address left in {range} of network {network}; remove containers or use a larger --subnet/--ip-range")]
    Exhausted { network: String, range: Ipv4Network },
    #[error("address {ip} is outside subnet {subnet} of network {network}")]
    OutsideSubnet {
        ip: Ipv4Addr,
        subnet: Ipv4Network,
        network: String,
    },
    #[error("address {ip} is the {which} address of network {network} and cannot be assigned")]
    Reserved {
        ip: Ipv4Addr,
        which: &'static str,
        network: String,
    },
    #[error("address {ip} is already in use on network {network} by {holder}")]
    Taken {
        ip: Ipv4Addr,
        network: String,
        holder: String,
    },
}

/// Addresses of a network's subnet. Dynamic addresses come from the ip-range (the whole subnet
/// when there is none), lowest free first, as Docker does; static ones from the whole subnet.
#[derive(Clone, Debug)]
pub struct Pool {
    network: String,
    spec: SubnetSpec,
    holders: BTreeMap<Ipv4Addr, String>,
}

impl Pool {
    pub fn new(network: impl Into<String>, spec: SubnetSpec) -> Self {
        Self {
            network: network.into(),
            spec,
            holders: BTreeMap::new(),
        }
    }

    pub fn spec(&self) -> &SubnetSpec {
        &self.spec
    }

    /// Gives `holder` the lowest free address of the dynamic range.
    pub fn allocate(&mut self, holder: &str) -> Result<Ipv4Addr, IpamError> {
        self.allocate_from(holder, false)
    }

    /// Gives `holder` the highest free address of the dynamic range.
    pub fn allocate_highest(&mut self, holder: &str) -> Result<Ipv4Addr, IpamError> {
        self.allocate_from(holder, true)
    }

    fn allocate_from(&mut self, holder: &str, highest: bool) -> Result<Ipv4Addr, IpamError> {
        let range = self.spec.ip_range.unwrap_or(self.spec.subnet);
        let all = u32::from(range.network())..=u32::from(range.broadcast());
        let free =
            |ip: &Ipv4Addr| self.reserved_kind(*ip).is_none() && !self.holders.contains_key(ip);
        let found = match highest {
            true => all.rev().map(Ipv4Addr::from).find(free),
            false => all.map(Ipv4Addr::from).find(free),
        };
        let ip = found.ok_or_else(|| IpamError::Exhausted {
            network: self.network.clone(),
            range,
        })?;
        self.holders.insert(ip, holder.to_string());
        Ok(ip)
    }

    /// Gives `holder` a static address anywhere in the subnet.
    pub fn reserve(&mut self, ip: Ipv4Addr, holder: &str) -> Result<(), IpamError> {
        self.check_static(ip)?;
        self.holders.insert(ip, holder.to_string());
        Ok(())
    }

    /// Gives `holder` a static address, also when `from` holds it (an address a runtime got
    /// from netd's IPAM and now gives its endpoint).
    pub fn take_over(&mut self, ip: Ipv4Addr, from: &str, holder: &str) -> Result<(), IpamError> {
        if self.holders.get(&ip).is_some_and(|h| h == from) {
            self.holders.insert(ip, holder.to_string());
            return Ok(());
        }
        self.reserve(ip, holder)
    }

    /// Who holds `ip`, if anyone.
    pub fn holder(&self, ip: Ipv4Addr) -> Option<&str> {
        self.holders.get(&ip).map(String::as_str)
    }

    /// Checks that `ip` could be reserved, without reserving it.
    pub fn check_static(&self, ip: Ipv4Addr) -> Result<(), IpamError> {
        if !self.spec.subnet.contains(ip) {
            return Err(IpamError::OutsideSubnet {
                ip,
                subnet: self.spec.subnet,
                network: self.network.clone(),
            });
        }
        if let Some(which) = self.reserved_kind(ip) {
            return Err(IpamError::Reserved {
                ip,
                which,
                network: self.network.clone(),
            });
        }
        if let Some(holder) = self.holders.get(&ip) {
            return Err(IpamError::Taken {
                ip,
                network: self.network.clone(),
                holder: holder.clone(),
            });
        }
        Ok(())
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.holders.remove(&ip);
    }

    /// Hands `ip` back to `holder` (see [`Pool::take_over`]).
    pub fn give_back(&mut self, ip: Ipv4Addr, holder: &str) {
        self.holders.insert(ip, holder.to_string());
    }

    pub fn in_use(&self) -> usize {
        self.holders.len()
    }

    /// Usable host addresses of the subnet (network, broadcast and gateway excluded).
    pub fn capacity(&self) -> u64 {
        (1u64 << (32 - self.spec.subnet.prefix())) - 3
    }

    fn reserved_kind(&self, ip: Ipv4Addr) -> Option<&'static str> {
        if ip == self.spec.subnet.network() {
            Some("network")
        } else if ip == self.spec.subnet.broadcast() {
            Some("broadcast")
        } else if ip == self.spec.gateway {
            Some("gateway")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(subnet: &str, range: Option<&str>, gw: Option<&str>) -> Pool {
        Pool::new("net1", SubnetSpec::parse(subnet, range, gw).unwrap())
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_lowest_free_skipping_gateway() {
        let mut p = pool("172.18.0.0/16", None, None);
        assert_eq!(p.allocate("a").unwrap(), ip("172.18.0.2"));
        assert_eq!(p.allocate("b").unwrap(), ip("172.18.0.3"));
        p.release(ip("172.18.0.2"));
        assert_eq!(p.allocate("c").unwrap(), ip("172.18.0.2"));
        assert_eq!(p.in_use(), 2);
    }

    #[test]
    fn gateway_elsewhere_frees_the_first_address() {
        let mut p = pool("192.168.100.0/24", None, Some("192.168.100.254"));
        assert_eq!(p.allocate("a").unwrap(), ip("192.168.100.1"));
    }

    #[test]
    fn range_restricts_dynamic_but_not_static() {
        let mut p = pool("10.5.0.0/16", Some("10.5.7.0/24"), None);
        assert_eq!(p.allocate("a").unwrap(), ip("10.5.7.0"));
        p.reserve(ip("10.5.0.9"), "b").unwrap();
        assert_eq!(p.allocate("c").unwrap(), ip("10.5.7.1"));
    }

    #[test]
    fn static_addresses_are_checked() {
        let mut p = pool("10.5.0.0/24", None, None);
        p.reserve(ip("10.5.0.9"), "web").unwrap();
        let taken = p.reserve(ip("10.5.0.9"), "db").unwrap_err();
        assert_eq!(
            taken,
            IpamError::Taken {
                ip: ip("10.5.0.9"),
                network: "net1".into(),
                holder: "web".into()
            }
        );
        assert!(p
            .reserve(ip("10.6.0.9"), "x")
            .unwrap_err()
            .to_string()
            .contains("10.6.0.9"));
        assert!(p
            .reserve(ip("10.5.0.1"), "x")
            .unwrap_err()
            .to_string()
            .contains("gateway"));
        assert!(p
            .reserve(ip("10.5.0.0"), "x")
            .unwrap_err()
            .to_string()
            .contains("network"));
        assert!(p
            .reserve(ip("10.5.0.255"), "x")
            .unwrap_err()
            .to_string()
            .contains("broadcast"));
    }

    #[test]
    fn exhaustion_names_the_range() {
        let mut p = pool("10.9.0.0/30", None, None);
        assert_eq!(p.capacity(), 1);
        assert_eq!(p.allocate("a").unwrap(), ip("10.9.0.2"));
        let e = p.allocate("b").unwrap_err().to_string();
        assert!(e.contains("10.9.0.0/30") && e.contains("net1"), "{e}");
        p.release(ip("10.9.0.2"));
        assert!(p.allocate("b").is_ok());
    }
}
