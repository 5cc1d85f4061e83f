//! Static bridge entries for container MACs, and reading them back in one dump.

use futures::TryStreamExt;
use rtnetlink::packet_route::neighbour::{NeighbourFlags, NeighbourState};

use super::{nl, LinkError, Netlink};

impl Netlink {
    /// A static entry for `mac` behind bridge port `index` (`bridge fdb replace MAC dev PORT
    /// master static`): the bridge never forgets where a container is, so that frames for it
    /// are never flooded to the other ports, even when its traffic to other members goes
    /// past the bridge (the datapath's direct path) and the learned entry would age out.
    pub async fn pin_mac(&self, index: u32, name: &str, mac: [u8; 6]) -> Result<(), LinkError> {
        self.handle
            .neighbours()
            .add_bridge(index, &mac)
            .state(NeighbourState::Noarp)
            .flags(NeighbourFlags::Controller)
            .replace()
            .execute()
            .await
            .map_err(nl("pin MAC on", name.to_string()))
    }

    /// The static bridge entries (`pin_mac`'s: no-ARP, on a bridge) as (port index, MAC),
    /// from one dump of the bridge FDBs.
    pub async fn pinned_macs(
        &self,
    ) -> Result<std::collections::HashSet<(u32, [u8; 6])>, LinkError> {
        use rtnetlink::packet_route::{neighbour::NeighbourAttribute, AddressFamily};
        let _turn = self.dumps.lock().await;
        let mut request = self.handle.neighbours().get();
        request.message_mut().header.family = AddressFamily::Bridge;
        let msgs: Vec<_> = request
            .execute()
            .try_collect()
            .await
            .map_err(nl("list", "bridge entries"))?;
        Ok(msgs
            .into_iter()
            // A dump names the bridge in an attribute, not with the controller flag.
            .filter(|m| {
                m.header.state == NeighbourState::Noarp
                    && m.attributes
                        .iter()
                        .any(|a| matches!(a, NeighbourAttribute::Controller(_)))
            })
            .filter_map(|m| {
                let mac = m.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::LinkLayerAddress(mac) => <[u8; 6]>::try_from(&mac[..]).ok(),
                    _ => None,
                })?;
                Some((m.header.ifindex, mac))
            })
            .collect())
    }
}
