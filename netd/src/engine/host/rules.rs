//! The datapath's rules: published ports, network isolation, virtual IPs, masquerade.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::{HostError, NetworkRules};
use crate::datapath::{nat::Publication, vips::VipSpec};

#[async_trait::async_trait]
pub trait DatapathRules: Send + Sync {
    /// Marks the container interface behind `host_ifname` as the target of published ports
    /// (once it has its first one; see `Plug::dnat_target`).
    async fn mark_dnat_target(&self, host_ifname: &str) -> Result<(), HostError>;
    /// Installs published ports in the datapath.
    async fn publish(&self, publications: &[Publication]) -> Result<(), HostError>;
    async fn unpublish(&self, publications: &[Publication]) -> Result<(), HostError>;
    /// Makes the published ports exactly `publications` (at start: a crash may have left
    /// ports of a container that was never recorded).
    async fn publish_exactly(&self, publications: &[Publication]) -> Result<(), HostError>;
    /// Forgets tracked connections of `ip` (a container going away).
    async fn flush_connections(&self, ip: Ipv4Addr);
    /// Makes the datapath's network rules exactly these.
    async fn set_networks(&self, networks: &[NetworkRules]) -> Result<(), HostError>;
    /// Makes the datapath's virtual IPs and their backends exactly these.
    fn set_vips(&self, vips: &[VipSpec]) -> Result<(), HostError>;
    /// Subnets whose connections to the outside are masqueraded.
    async fn set_masq_subnets(&self, subnets: &[Ipv4Network]) -> Result<(), HostError>;
    /// Drops datapath state (counters, endpoints) of every port but these host interfaces,
    /// and of every macvlan endpoint but those with these ifindexes.
    async fn forget_ports_except(&self, keep: &[String], keep_lan: &[u32])
        -> Result<(), HostError>;
}
