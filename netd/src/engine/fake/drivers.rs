//! Fake drivers of the bridge and macvlan kinds: what they made is kept in the fake
//! machine's [`Kernel`](super::Kernel), with the links of the other interfaces.

use std::sync::Arc;

use super::FakeHost;
use crate::{
    config::names::IfName,
    engine::host::{BridgeSpec, HostError, NetworkDriver, Plug, ShimSpec, Unplug},
    state::model::Network,
};

pub(in crate::engine) struct FakeBridge(pub(super) Arc<FakeHost>);
pub(in crate::engine) struct FakeMacvlan(pub(super) Arc<FakeHost>);

impl FakeHost {
    /// Records the endpoint, or fails as the test asked; `host_end`: the endpoint's link
    /// lives in the daemon's namespace.
    fn attach(&self, plug: &Plug, host_end: bool) -> Result<(), HostError> {
        let mut k = self.k();
        if k.fail_plug {
            return Err(HostError::new(
                "plug",
                &plug.host_ifname,
                std::io::Error::other("injected"),
            ));
        }
        if host_end {
            k.links
                .insert(plug.host_ifname.to_string(), plug.endpoint_id.clone());
        }
        k.plugs.insert(plug.host_ifname.to_string(), plug.clone());
        Ok(())
    }

    fn check(&self, plug: &Plug) -> Vec<String> {
        match self.k().plugs.contains_key(plug.host_ifname.as_str()) {
            true => Vec::new(),
            false => vec![format!("host interface {} is gone", plug.host_ifname)],
        }
    }

    fn add_link(&self, name: &IfName, owner: &str) {
        self.k().links.insert(name.to_string(), owner.to_string());
    }

    fn remove(&self, name: &IfName) {
        self.k().links.remove(name.as_str());
    }
}

#[async_trait::async_trait]
impl NetworkDriver for FakeBridge {
    async fn setup(&self, net: &Network) -> Result<(), HostError> {
        let b = BridgeSpec::of(net).expect("a bridge network");
        self.0.add_link(&b.name, &b.network_id);
        Ok(())
    }
    async fn teardown(&self, net: &Network) -> Result<(), HostError> {
        net.bridge.iter().for_each(|b| self.0.remove(b));
        Ok(())
    }
    fn repaired_links(&self, net: &Network) -> Vec<IfName> {
        net.bridge.iter().cloned().collect()
    }
    fn host_end(&self) -> bool {
        true
    }
    async fn attach(&self, plug: &Plug) -> Result<(), HostError> {
        self.0.attach(plug, true)
    }
    async fn detach(&self, unplug: &Unplug) -> Result<(), HostError> {
        let mut k = self.0.k();
        k.links.remove(unplug.host_ifname.as_str());
        k.plugs.remove(unplug.host_ifname.as_str());
        Ok(())
    }
    async fn check(&self, plug: &Plug) -> Vec<String> {
        self.0.check(plug)
    }
    async fn adopt(&self, _: &Plug) -> Result<(), HostError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl NetworkDriver for FakeMacvlan {
    async fn setup(&self, net: &Network) -> Result<(), HostError> {
        if let Some(parent) = net.own_parent() {
            self.0.add_link(&parent, &net.id);
        }
        if let Some(shim) = ShimSpec::of(net) {
            self.0.add_link(&shim.name, &shim.network_id);
        }
        Ok(())
    }
    async fn teardown(&self, net: &Network) -> Result<(), HostError> {
        if let Some(shim) = ShimSpec::of(net) {
            self.0.remove(&shim.name);
        }
        if let Some(parent) = net.own_parent() {
            self.0.remove(&parent);
        }
        Ok(())
    }
    fn repaired_links(&self, _: &Network) -> Vec<IfName> {
        Vec::new()
    }
    fn host_end(&self) -> bool {
        false
    }
    async fn attach(&self, plug: &Plug) -> Result<(), HostError> {
        self.0.attach(plug, false)
    }
    async fn detach(&self, unplug: &Unplug) -> Result<(), HostError> {
        if unplug.netns.is_some() {
            let id = &unplug.endpoint_id;
            self.0.k().plugs.retain(|_, p| &p.endpoint_id != id);
        }
        Ok(())
    }
    async fn check(&self, plug: &Plug) -> Vec<String> {
        self.0.check(plug)
    }
    async fn adopt(&self, _: &Plug) -> Result<(), HostError> {
        Ok(())
    }
}
