//! What each network kind does for the engine. One implementation per kind (bridge,
//! macvlan), chosen once from the network's driver: a new kind is a new driver, not new
//! branches in the engine.

use std::path::PathBuf;

use super::{HostError, Plug};
use crate::{config::names::IfName, state::model::Network};

/// One endpoint to take away, with everything a driver may need to find its interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unplug {
    pub endpoint_id: String,
    pub host_ifname: IfName,
    pub ifname: IfName,
    /// The container's namespace, when netd may enter it (not a runtime's sandbox).
    pub netns: Option<PathBuf>,
}

#[async_trait::async_trait]
pub trait NetworkDriver: Send + Sync {
    /// Makes the network's own links, or completes those that exist (create, start).
    async fn setup(&self, net: &Network) -> Result<(), HostError>;
    /// Removes the network's own links; what is gone already is no error.
    async fn teardown(&self, net: &Network) -> Result<(), HostError>;
    /// The links of `net` that a repair makes again when they are deleted behind netd's
    /// back, with [`NetworkDriver::setup`].
    fn repaired_links(&self, net: &Network) -> Vec<IfName>;
    /// Whether an endpoint has an end in the daemon's namespace (named `host_ifname`).
    fn host_end(&self) -> bool;

    /// Creates the endpoint's interface, configures the container side and attaches the
    /// datapath. On failure nothing of it remains.
    async fn attach(&self, plug: &Plug) -> Result<(), HostError>;
    /// Removes the endpoint's interface (its datapath attachment goes with it) and counters.
    async fn detach(&self, unplug: &Unplug) -> Result<(), HostError>;
    /// What is missing of an attached endpoint (CNI's CHECK); empty when all is there.
    async fn check(&self, plug: &Plug) -> Vec<String>;
    /// Makes sure the datapath is attached to an existing endpoint (after a restart).
    async fn adopt(&self, plug: &Plug) -> Result<(), HostError>;
}
