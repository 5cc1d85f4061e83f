//! netd's bridges on the real host: made marked, or completed when they exist.

use super::{ports::ipv4_only, LinuxHost};
use crate::engine::host::{BridgeSpec, HostError, OWNER_MARK};

impl LinuxHost {
    pub(super) async fn ensure_bridge_link(&self, b: &BridgeSpec) -> Result<(), HostError> {
        let name = b.name.as_str();
        let err = |op| move |e| HostError::new(op, name, e);
        let (index, created) = match self.nl.link(name).await.map_err(err("find bridge"))? {
            Some(link) => (link.index, false),
            None => {
                let alias = format!("{OWNER_MARK}{}", b.network_id);
                (
                    self.nl
                        .create_bridge(name, &alias, b.mtu, b.mac.0)
                        .await
                        .map_err(err("create"))?,
                    true,
                )
            }
        };
        let result = async {
            if !created {
                // A bridge of an earlier version may have no address of its own yet.
                self.nl
                    .set_mac(index, name, b.mac.0)
                    .await
                    .map_err(err("set address"))?;
            }
            ipv4_only(name);
            self.nl
                .add_address(index, name, b.gateway, b.prefix)
                .await
                .map_err(err("address"))?;
            self.nl.set_up(index, name).await.map_err(err("set up"))
        }
        .await;
        if result.is_err() && created {
            let _ = self.nl.delete(index, name).await;
        }
        result
    }
}
