//! What the engine reads of the host it runs in: bound ports, addresses, the ephemeral
//! range. All of the calling thread's namespace, the daemon's.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::LinuxHost;
use crate::{
    config::{mac::Mac, port::Proto},
    engine::host::{HostError, HostFacts, OWNER_MARK},
    sockdiag,
};

fn read_bound_ports() -> Vec<(Proto, Ipv4Addr, u16)> {
    // The calling thread's namespace: the daemon's.
    let mut bound = Vec::new();
    for (proto, number) in [
        (Proto::Tcp, libc::IPPROTO_TCP),
        (Proto::Udp, libc::IPPROTO_UDP),
    ] {
        match sockdiag::bound(number as u8) {
            Ok(ports) => bound.extend(ports.into_iter().map(|(ip, port)| (proto, ip, port))),
            Err(e) => log::warn!("listing bound {proto} ports of the host: {e}"),
        }
    }
    bound
}

fn is_own_address(ip: Ipv4Addr) -> bool {
    // The calling thread's namespace: the daemon's.
    ip.is_loopback()
        || nix::ifaddrs::getifaddrs().is_ok_and(|mut all| {
            all.any(|a| {
                a.address
                    .and_then(|s| s.as_sockaddr_in().map(|s| s.ip()))
                    .is_some_and(|a| a == ip)
            })
        })
}

fn read_ephemeral_ports() -> (u16, u16) {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = range.split_whitespace().filter_map(|p| p.parse().ok());
    match (it.next(), it.next()) {
        (Some(lo), Some(hi)) if lo <= hi => (lo, hi),
        _ => (32768, 60999),
    }
}

#[async_trait::async_trait]
impl HostFacts for LinuxHost {
    async fn routes(&self) -> Result<Vec<Ipv4Network>, HostError> {
        let owned: Vec<u32> = self
            .nl
            .links()
            .await
            .map_err(|e| HostError::new("list", "links", e))?
            .into_iter()
            .filter(|l| {
                l.alias
                    .as_deref()
                    .is_some_and(|a| a.starts_with(OWNER_MARK))
            })
            .map(|l| l.index)
            .collect();
        let routes = self
            .nl
            .ipv4_routes()
            .await
            .map_err(|e| HostError::new("list", "routes", e))?;
        Ok(routes
            .into_iter()
            .filter(|(_, oif)| !oif.is_some_and(|i| owned.contains(&i)))
            .map(|(net, _)| net)
            .collect())
    }

    fn bound_ports(&self) -> Vec<(Proto, Ipv4Addr, u16)> {
        read_bound_ports()
    }

    fn ephemeral_ports(&self) -> (u16, u16) {
        read_ephemeral_ports()
    }

    fn has_address(&self, ip: Ipv4Addr) -> bool {
        is_own_address(ip)
    }

    async fn lan_owner(&self, parent: &str, ip: Ipv4Addr) -> Result<Option<Mac>, HostError> {
        let iface = parent.to_string();
        // Long enough for a LAN's answer, short enough for `netd run`.
        let wait = std::time::Duration::from_millis(150);
        tokio::task::spawn_blocking(move || crate::link::arp::probe(&iface, ip, wait))
            .await
            .map_err(|e| HostError::new("probe", ip, e))?
            .map(|owner| owner.map(Mac))
            .map_err(|e| HostError::new("ARP probe on", parent, e))
    }
}
