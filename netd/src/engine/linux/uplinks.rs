//! Uplinks: the interfaces of the default route (or those named), where published ports
//! arrive and masqueraded connections leave, and the address masquerade uses on each, which
//! follows the interface when it is renumbered (DHCP, an operator).

use std::net::Ipv4Addr;

use super::LinuxHost;
use crate::engine::host::HostError;

/// An attached uplink and the address its masqueraded connections leave from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Uplink {
    pub name: String,
    pub index: u32,
    pub addr: Ipv4Addr,
}

impl LinuxHost {
    /// The addresses of the attached uplinks, in the order they were named.
    pub fn uplink_addresses(&self) -> Vec<Ipv4Addr> {
        let uplinks = self.uplinks.lock().unwrap_or_else(|p| p.into_inner());
        uplinks.iter().map(|u| u.addr).collect()
    }

    /// Attaches the uplink programs to `names`, or to the interfaces of the default route
    /// when none is named. Returns the uplinks attached.
    pub async fn attach_uplinks(&self, names: &[String]) -> Result<Vec<String>, HostError> {
        let links = self
            .nl
            .links()
            .await
            .map_err(|e| HostError::new("list", "links", e))?;
        let chosen: Vec<(String, u32)> = if names.is_empty() {
            let oifs = self
                .nl
                .default_route_interfaces()
                .await
                .map_err(|e| HostError::new("list", "default routes", e))?;
            links
                .iter()
                .filter(|l| oifs.contains(&l.index))
                .map(|l| (l.name.clone(), l.index))
                .collect()
        } else {
            let mut chosen = Vec::new();
            for name in names {
                let link = links.iter().find(|l| &l.name == name).ok_or_else(|| {
                    HostError::new(
                        "find uplink",
                        name,
                        std::io::Error::other("no such interface"),
                    )
                })?;
                chosen.push((link.name.clone(), link.index));
            }
            chosen
        };
        let addrs = self
            .nl
            .ipv4_addresses()
            .await
            .map_err(|e| HostError::new("list", "addresses", e))?;
        for (name, index) in &chosen {
            let addr = addrs
                .iter()
                .find(|(i, _, _)| i == index)
                .map(|(_, ip, _)| *ip)
                .ok_or_else(|| {
                    HostError::new(
                        "uplink",
                        name,
                        std::io::Error::other("has no IPv4 address to masquerade to"),
                    )
                })?;
            self.datapath()
                .attach_uplink(name, *index, addr)
                .map_err(|e| HostError::new("attach datapath to uplink", name, e))?;
            self.uplinks.lock().expect("uplinks lock").push(Uplink {
                name: name.clone(),
                index: *index,
                addr,
            });
        }
        Ok(chosen.into_iter().map(|(name, _)| name).collect())
    }

    /// Moves masquerade to an uplink's new address when the one it used is gone from the
    /// interface (`addrs`: every IPv4 address of the host, by interface). Connections that
    /// left from the old address cannot survive it; new ones leave from the new one.
    pub(super) fn follow_uplink_addresses(&self, addrs: &[(u32, Ipv4Addr, u8)]) {
        let mut uplinks = self.uplinks.lock().expect("uplinks lock");
        for uplink in uplinks.iter_mut() {
            let Some(new) = renumbered(uplink, addrs) else {
                continue;
            };
            match self.datapath().set_uplink(uplink.index, new) {
                Ok(()) => {
                    log::info!(
                        "uplink {} renumbered: masquerade moves from {} to {new}",
                        uplink.name,
                        uplink.addr
                    );
                    uplink.addr = new;
                }
                Err(e) => log::warn!("uplink {}: masquerading to {new}: {e}", uplink.name),
            }
        }
    }
}

/// The address `uplink` should masquerade to now, when it changed: the interface's first
/// address, once the one in use is gone from it.
fn renumbered(uplink: &Uplink, addrs: &[(u32, Ipv4Addr, u8)]) -> Option<Ipv4Addr> {
    let mut own = addrs.iter().filter(|(i, _, _)| *i == uplink.index);
    if own.clone().any(|(_, ip, _)| *ip == uplink.addr) {
        return None;
    }
    own.next().map(|(_, ip, _)| *ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_follows_the_uplinks_own_address_only() {
        let up = Uplink {
            name: "eth0".into(),
            index: 2,
            addr: [10, 0, 0, 1].into(),
        };
        let kept = [(2, [10, 0, 0, 1].into(), 24), (2, [10, 0, 0, 9].into(), 24)];
        assert_eq!(renumbered(&up, &kept), None, "still there");
        let moved = [(3, [10, 0, 0, 1].into(), 24), (2, [10, 0, 0, 5].into(), 24)];
        assert_eq!(renumbered(&up, &moved), Some([10, 0, 0, 5].into()));
        assert_eq!(renumbered(&up, &[]), None, "no address: nothing to move to");
    }
}
