//! The datapath's rules on the real host: published ports (kept in step with the kernel's
//! reserved ports), network isolation, virtual IPs and masquerade.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use netd_common::isolation::{NET_ICC_OFF, NET_INTERNAL, NET_ROUTED, NET_VIPS};

use super::LinuxHost;
use crate::{
    datapath::{isolation::NetworkRule, nat::Publication, vips::VipSpec},
    engine::host::{DatapathRules, HostError, NetworkRules},
};

#[async_trait::async_trait]
impl DatapathRules for LinuxHost {
    async fn mark_dnat_target(&self, host_ifname: &str) -> Result<(), HostError> {
        let index = self
            .nl
            .index(host_ifname)
            .await
            .map_err(|e| HostError::new("find", host_ifname, e))?;
        self.datapath()
            .mark_dnat_target(index)
            .map_err(|e| HostError::new("mark as published", host_ifname, e))
    }

    async fn publish(&self, publications: &[Publication]) -> Result<(), HostError> {
        self.datapath()
            .publish(publications)
            .map_err(|e| HostError::new("publish", "ports", e))?;
        self.reserve(publications, true);
        Ok(())
    }

    async fn unpublish(&self, publications: &[Publication]) -> Result<(), HostError> {
        self.datapath()
            .unpublish(publications)
            .map_err(|e| HostError::new("unpublish", "ports", e))?;
        self.reserve(publications, false);
        Ok(())
    }

    async fn publish_exactly(&self, publications: &[Publication]) -> Result<(), HostError> {
        let stale = self.datapath().published_beyond(publications);
        for p in &stale {
            log::info!(
                "unpublishing {}:{}/{} of no container (a crash before it was recorded)",
                p.host_ip,
                p.host_port,
                if p.proto == 6 { "tcp" } else { "udp" }
            );
        }
        self.unpublish(&stale).await?;
        self.publish(publications).await
    }

    async fn flush_connections(&self, ip: Ipv4Addr) {
        let flushed = self.datapath().flush_conntrack(ip);
        log::debug!("flushed {flushed} conntrack entries of {ip}");
    }

    async fn set_networks(&self, networks: &[NetworkRules]) -> Result<(), HostError> {
        let mut rules = Vec::new();
        for n in networks {
            // A bridge that could not be made has no ifindex; its rules still apply.
            let bridge_ifindex = match self.nl.link(n.bridge.as_str()).await {
                Ok(Some(link)) => link.index,
                _ => 0,
            };
            let flags = [
                (!n.icc, NET_ICC_OFF),
                (n.internal, NET_INTERNAL),
                (n.routed, NET_ROUTED),
                (n.vips, NET_VIPS),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .fold(0, |acc, (_, bit)| acc | bit);
            rules.push(NetworkRule {
                id: n.id,
                subnet: n.subnet,
                gateway: n.gateway,
                gateway_mac: n.gateway_mac.0,
                flags,
                bridge_ifindex,
            });
        }
        self.datapath()
            .set_networks(&rules)
            .map_err(|e| HostError::new("set", "network rules", e))
    }

    fn set_vips(&self, vips: &[VipSpec]) -> Result<(), HostError> {
        self.datapath()
            .set_vips(vips)
            .map_err(|e| HostError::new("set", "virtual IPs", e))
    }

    async fn set_masq_subnets(&self, subnets: &[Ipv4Network]) -> Result<(), HostError> {
        self.datapath()
            .set_masq_subnets(subnets)
            .map_err(|e| HostError::new("set", "masqueraded subnets", e))
    }

    async fn forget_ports_except(
        &self,
        keep: &[String],
        keep_lan: &[u32],
    ) -> Result<(), HostError> {
        self.forget_ports(keep, keep_lan).await
    }
}
