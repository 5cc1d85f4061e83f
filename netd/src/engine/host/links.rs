//! Links and namespaces of the machine, beyond any one network kind's.

use std::{net::Ipv4Addr, path::Path};

use super::{HostError, OwnedLink};

#[async_trait::async_trait]
pub trait Links: Send + Sync {
    async fn link_exists(&self, name: &str) -> Result<bool, HostError>;
    /// With `on`, takes one dump of the links that [`Links::link_exists`] and adoption look
    /// up until it is turned off: a reconcile adopting a thousand ports makes one request
    /// instead of three per port. Only for a reconcile, which alone changes links then.
    async fn snapshot_links(&self, on: bool) -> Result<(), HostError>;
    async fn remove_link(&self, name: &str) -> Result<(), HostError>;
    /// Links in the daemon's namespace that carry netd's mark.
    async fn owned_links(&self) -> Result<Vec<OwnedLink>, HostError>;

    /// Creates a namespace at `path` with `lo` up.
    async fn create_netns(&self, path: &Path) -> Result<(), HostError>;
    async fn remove_netns(&self, path: &Path) -> Result<(), HostError>;
    fn netns_alive(&self, path: &Path) -> bool;
    /// Mounts the namespace of process `pid` at `path` again.
    async fn rebind_netns(&self, path: &Path, pid: i32) -> Result<(), HostError>;
    /// Which namespace `path` names, whatever the path (an error when it names none).
    fn netns_id(&self, path: &Path) -> std::io::Result<crate::netns::NsId>;
    async fn set_default_route(&self, netns: &Path, gateway: Ipv4Addr) -> Result<(), HostError>;
}
