//! The embedded DNS servers, one per network and one in each namespace that needs its own.

use super::HostError;
use crate::dns::{DnsNetwork, Names};

#[async_trait::async_trait]
pub trait DnsServing: Send + Sync {
    /// Runs the servers of exactly these networks.
    async fn serve_dns(&self, networks: &[DnsNetwork]) -> Result<(), HostError>;
    /// Runs a server in a container's namespace (`spec.netns`) under `key`, replacing one
    /// there was.
    async fn serve_dns_in(&self, key: &str, spec: &DnsNetwork) -> Result<(), HostError>;
    /// Stops the server of `key`, if there is one.
    fn stop_dns_in(&self, key: &str);
    /// The container names the servers answer from now on.
    fn set_names(&self, names: Names);
}
