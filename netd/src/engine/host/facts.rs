//! Facts about the machine the engine decides with: routes, bound ports, addresses, and who
//! answers for an address on a LAN.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::HostError;
use crate::config::{mac::Mac, port::Proto};

#[async_trait::async_trait]
pub trait HostFacts: Send + Sync {
    /// Destinations of the host's routes, except those through netd's own links.
    async fn routes(&self) -> Result<Vec<Ipv4Network>, HostError>;
    /// Ports processes of the host listen on (TCP) or have bound (UDP), read once.
    fn bound_ports(&self) -> Vec<(Proto, Ipv4Addr, u16)>;
    /// The range random host ports come from (`ip_local_port_range`).
    fn ephemeral_ports(&self) -> (u16, u16);
    /// Whether `ip` is an address of the host (any of 127.0.0.0/8 is), where a port can be
    /// published.
    fn has_address(&self, ip: Ipv4Addr) -> bool;
    /// The MAC of a machine on `parent`'s LAN that answers ARP for `ip`, if one does.
    async fn lan_owner(&self, parent: &str, ip: Ipv4Addr) -> Result<Option<Mac>, HostError>;
}
