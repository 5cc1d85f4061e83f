//! The real drivers of the two network kinds that give containers interfaces: bridges with a
//! veth pair per container, and macvlans of a LAN parent.

use std::sync::Arc;

use super::LinuxHost;
use crate::{
    config::names::IfName,
    engine::host::{
        BridgeSpec, HostError, Links, MacvlanPlug, NetworkDriver, Plug, ShimSpec, Unplug,
    },
    state::model::Network,
};

/// A bridge per network; a container's veth has its host end on it.
pub struct BridgeDriver(pub Arc<LinuxHost>);

/// Containers sit on a LAN through a macvlan of the network's parent; the host reaches them
/// through its own macvlan (the shim) when the network has host access.
pub struct MacvlanDriver(pub Arc<LinuxHost>);

fn bridge_of(net: &Network) -> Result<BridgeSpec, HostError> {
    BridgeSpec::of(net).ok_or_else(|| {
        HostError::new(
            "make the bridge of",
            &net.name,
            std::io::Error::other("the network has no subnet or bridge"),
        )
    })
}

#[async_trait::async_trait]
impl NetworkDriver for BridgeDriver {
    async fn setup(&self, net: &Network) -> Result<(), HostError> {
        self.0.ensure_bridge_link(&bridge_of(net)?).await
    }

    async fn teardown(&self, net: &Network) -> Result<(), HostError> {
        match &net.bridge {
            Some(bridge) => self.0.remove_link(bridge.as_str()).await,
            None => Ok(()),
        }
    }

    fn repaired_links(&self, net: &Network) -> Vec<IfName> {
        net.bridge.iter().cloned().collect()
    }

    fn host_end(&self) -> bool {
        true
    }

    async fn attach(&self, plug: &Plug) -> Result<(), HostError> {
        self.0.plug_port(plug).await
    }

    async fn detach(&self, unplug: &Unplug) -> Result<(), HostError> {
        self.0.unplug_port(unplug.host_ifname.as_str()).await
    }

    async fn check(&self, plug: &Plug) -> Vec<String> {
        self.0.check_port(plug).await
    }

    async fn adopt(&self, plug: &Plug) -> Result<(), HostError> {
        self.0.adopt(plug).await
    }
}

fn macvlan_of(plug: &Plug) -> Result<&MacvlanPlug, HostError> {
    plug.macvlan.as_ref().ok_or_else(|| {
        HostError::new(
            "plug",
            &plug.ifname,
            std::io::Error::other("a macvlan endpoint without its parent"),
        )
    })
}

#[async_trait::async_trait]
impl NetworkDriver for MacvlanDriver {
    async fn setup(&self, net: &Network) -> Result<(), HostError> {
        if let Some(name) = net.own_parent() {
            self.0
                .ensure_internal_parent_link(name.as_str(), &net.id, net.mtu)
                .await?;
        }
        match ShimSpec::of(net) {
            Some(shim) => self.0.ensure_shim_link(&shim).await,
            None => Ok(()),
        }
    }

    async fn teardown(&self, net: &Network) -> Result<(), HostError> {
        let shim = match ShimSpec::of(net) {
            Some(shim) => self.0.remove_link(shim.name.as_str()).await,
            None => Ok(()),
        };
        // The parent's macvlans go with it.
        let parent = match net.own_parent() {
            Some(name) => self.0.remove_link(name.as_str()).await,
            None => Ok(()),
        };
        shim.and(parent)
    }

    /// Nothing is made again while running: a deleted parent takes the containers'
    /// macvlans with it, which only a restart of those containers brings back.
    fn repaired_links(&self, _: &Network) -> Vec<IfName> {
        Vec::new()
    }

    fn host_end(&self) -> bool {
        false
    }

    async fn attach(&self, plug: &Plug) -> Result<(), HostError> {
        self.0.plug_macvlan(plug, macvlan_of(plug)?).await
    }

    /// The interface lives in the container's namespace only: without one to enter, it is
    /// gone with the namespace.
    async fn detach(&self, unplug: &Unplug) -> Result<(), HostError> {
        match &unplug.netns {
            Some(netns) => {
                self.0
                    .unplug_inside(netns, unplug.ifname.as_str(), &unplug.endpoint_id)
                    .await
            }
            None => Ok(()),
        }
    }

    async fn check(&self, plug: &Plug) -> Vec<String> {
        self.0.check_macvlan(plug).await
    }

    async fn adopt(&self, plug: &Plug) -> Result<(), HostError> {
        self.0.adopt_macvlan(plug, macvlan_of(plug)?).await
    }
}
