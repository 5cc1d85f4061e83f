//! The fake machine's links, namespaces, datapath rules, DNS, telemetry and facts: what
//! the engine asked for is kept in [`Kernel`] for the tests to look at.

use std::{net::Ipv4Addr, path::Path};

use ipnetwork::Ipv4Network;
use netd_common::{
    counters::IfaceCounters,
    isolation::{DropCounters, DropKey},
    nat::{PortStats, PortStatsKey},
};

use super::{fake_ns_id, FakeHost, PROTECTED};
use crate::{
    config::{mac::Mac, port::Proto},
    datapath::{nat::Publication, stats::Usage, vips::VipSpec},
    dns::{DnsNetwork, Names},
    engine::host::{
        CountedAt, DatapathRules, DnsServing, HostError, HostFacts, Links, NetworkRules, OwnedLink,
        Telemetry,
    },
    netns::NsId,
};

#[async_trait::async_trait]
impl Links for FakeHost {
    async fn link_exists(&self, name: &str) -> Result<bool, HostError> {
        Ok(self.k().links.contains_key(name))
    }
    async fn snapshot_links(&self, _: bool) -> Result<(), HostError> {
        Ok(())
    }
    async fn remove_link(&self, name: &str) -> Result<(), HostError> {
        self.k().links.remove(name);
        Ok(())
    }
    async fn owned_links(&self) -> Result<Vec<OwnedLink>, HostError> {
        Ok(self
            .k()
            .links
            .iter()
            .map(|(name, owner)| OwnedLink {
                name: name.clone(),
                owner: owner.clone(),
                half_made: false,
            })
            .collect())
    }
    async fn create_netns(&self, path: &Path) -> Result<(), HostError> {
        std::fs::write(path, b"").unwrap();
        self.k().netns.insert(path.to_path_buf());
        Ok(())
    }
    async fn remove_netns(&self, path: &Path) -> Result<(), HostError> {
        let _ = std::fs::remove_file(path);
        self.k().netns.remove(path);
        Ok(())
    }
    fn netns_alive(&self, path: &Path) -> bool {
        let k = self.k();
        let ns = k.ns_aliases.get(path).map_or(path, |p| p.as_path());
        k.netns.contains(ns) || PROTECTED.iter().any(|(p, _)| Path::new(p) == ns)
    }
    async fn rebind_netns(&self, path: &Path, _: i32) -> Result<(), HostError> {
        self.k().netns.insert(path.to_path_buf());
        Ok(())
    }
    fn netns_id(&self, path: &Path) -> std::io::Result<NsId> {
        let k = self.k();
        let ns = k.ns_aliases.get(path).map_or(path, |p| p.as_path());
        if k.ns_unreadable.contains(ns) {
            return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        }
        if !k.netns.contains(ns) && !PROTECTED.iter().any(|(p, _)| Path::new(p) == ns) {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        Ok(fake_ns_id(ns))
    }
    async fn set_default_route(&self, _: &Path, _: Ipv4Addr) -> Result<(), HostError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl DatapathRules for FakeHost {
    async fn mark_dnat_target(&self, host_ifname: &str) -> Result<(), HostError> {
        match self.k().plugs.get_mut(host_ifname) {
            Some(plug) => plug.dnat_target = true,
            None => {
                return Err(HostError::new(
                    "find",
                    host_ifname,
                    std::io::Error::other("gone"),
                ))
            }
        }
        Ok(())
    }
    async fn publish(&self, publications: &[Publication]) -> Result<(), HostError> {
        self.k().published.extend_from_slice(publications);
        Ok(())
    }
    async fn unpublish(&self, publications: &[Publication]) -> Result<(), HostError> {
        self.k().published.retain(|p| !publications.contains(p));
        Ok(())
    }
    async fn publish_exactly(&self, publications: &[Publication]) -> Result<(), HostError> {
        self.k().published = publications.to_vec();
        Ok(())
    }
    async fn flush_connections(&self, ip: Ipv4Addr) {
        self.k().flushed.push(ip);
    }
    async fn set_networks(&self, networks: &[NetworkRules]) -> Result<(), HostError> {
        self.k().rules = networks.to_vec();
        Ok(())
    }
    fn set_vips(&self, vips: &[VipSpec]) -> Result<(), HostError> {
        self.k().vips = vips.to_vec();
        Ok(())
    }
    async fn set_masq_subnets(&self, subnets: &[Ipv4Network]) -> Result<(), HostError> {
        self.k().masq = subnets.to_vec();
        Ok(())
    }
    async fn forget_ports_except(&self, keep: &[String], _: &[u32]) -> Result<(), HostError> {
        self.k().forgets.push(keep.to_vec());
        Ok(())
    }
}

#[async_trait::async_trait]
impl Telemetry for FakeHost {
    async fn port_counters(&self, at: &[CountedAt]) -> Vec<IfaceCounters> {
        vec![IfaceCounters::default(); at.len()]
    }
    fn port_stats(&self) -> Vec<(PortStatsKey, PortStats)> {
        Vec::new()
    }
    fn usage(&self) -> Usage {
        Usage::default()
    }
    fn drops(&self) -> Vec<(DropKey, DropCounters)> {
        Vec::new()
    }
    fn vip_connections(&self, _id: u32) -> Vec<(Ipv4Addr, u64)> {
        Vec::new()
    }
    fn dns_counters(&self) -> Vec<crate::dns::DnsCounts> {
        Vec::new()
    }
    fn set_monitor(&self, _on: bool) {}
}

#[async_trait::async_trait]
impl HostFacts for FakeHost {
    async fn routes(&self) -> Result<Vec<Ipv4Network>, HostError> {
        Ok(self.k().routes.clone())
    }
    fn bound_ports(&self) -> Vec<(Proto, Ipv4Addr, u16)> {
        let bound = &self.k().bound;
        bound
            .iter()
            .map(|p| (Proto::Tcp, Ipv4Addr::UNSPECIFIED, *p))
            .collect()
    }
    fn ephemeral_ports(&self) -> (u16, u16) {
        (40000, 40004)
    }
    fn has_address(&self, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || self.k().addresses.contains(&ip)
    }
    async fn lan_owner(&self, _: &str, ip: Ipv4Addr) -> Result<Option<Mac>, HostError> {
        Ok(self.k().lan.get(&ip).copied().map(Mac))
    }
}

#[async_trait::async_trait]
impl DnsServing for FakeHost {
    async fn serve_dns(&self, networks: &[DnsNetwork]) -> Result<(), HostError> {
        self.k().dns = networks.to_vec();
        Ok(())
    }
    async fn serve_dns_in(&self, key: &str, spec: &DnsNetwork) -> Result<(), HostError> {
        self.k().dns_in.insert(key.to_string(), spec.clone());
        Ok(())
    }
    fn stop_dns_in(&self, key: &str) {
        self.k().dns_in.remove(key);
    }
    fn set_names(&self, names: Names) {
        self.k().names = Some(names);
    }
}
