//! The values the engine hands the machine's interfaces: what to plug, bridge and shim
//! shapes, network rules, where counters are, the links netd owns, and the error they share.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::{
    config::{mac::Mac, names::IfName},
    state::model::{shim_name, Network},
};

/// Everything needed to create one container interface on a bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plug {
    pub endpoint_id: String,
    pub netns: std::path::PathBuf,
    pub bridge: IfName,
    pub host_ifname: IfName,
    pub ifname: IfName,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: Mac,
    pub mtu: u32,
    /// Install the container's default route through this gateway.
    pub default_gateway: Option<Ipv4Addr>,
    /// Datapath id of the network.
    pub network: u32,
    /// The container has published ports: its replies may need translating.
    pub dnat_target: bool,
    /// Leave the container end in `netns` as it is, for a runtime to move and configure.
    pub handover: bool,
    /// A macvlan instead of a veth pair (`bridge` is not used, and `host_ifname` names the
    /// link only until it moves into `netns`).
    pub macvlan: Option<MacvlanPlug>,
}

/// Where a container's macvlan sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacvlanPlug {
    pub parent: IfName,
    pub mode: crate::config::macvlan::MacvlanMode,
}

/// A bridge with its gateway address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeSpec {
    pub network_id: String,
    pub name: IfName,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u32,
    pub mac: Mac,
}

/// The host's own macvlan on a macvlan network's parent (`host_access`): the host reaches
/// the containers' range through it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShimSpec {
    pub network_id: String,
    pub name: IfName,
    pub parent: IfName,
    pub ip: Ipv4Addr,
    pub range: Ipv4Network,
    pub mtu: u32,
}

impl BridgeSpec {
    /// The bridge of `net`, if it is a bridge network with a subnet.
    pub fn of(net: &Network) -> Option<Self> {
        let subnet = net.subnet?;
        Some(Self {
            network_id: net.id.clone(),
            name: net.bridge.clone()?,
            gateway: subnet.gateway,
            prefix: subnet.subnet.prefix(),
            mtu: net.mtu,
            mac: Mac::for_gateway(subnet.gateway),
        })
    }
}

impl ShimSpec {
    /// The shim of a macvlan network with host access.
    pub fn of(net: &Network) -> Option<Self> {
        net.macvlan.as_ref().filter(|m| m.host_access)?;
        Some(Self {
            network_id: net.id.clone(),
            name: shim_name(&net.id),
            parent: net.macvlan_parent()?,
            ip: net.shim_ip?,
            range: net.subnet?.ip_range?,
            mtu: net.mtu,
        })
    }
}

/// A bridge network's rules for the datapath.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRules {
    /// Datapath id.
    pub id: u32,
    pub bridge: IfName,
    pub subnet: Ipv4Network,
    pub gateway: Ipv4Addr,
    pub gateway_mac: Mac,
    pub icc: bool,
    pub internal: bool,
    pub routed: bool,
    /// The network has virtual IPs.
    pub vips: bool,
}

/// Where the datapath keeps an interface's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CountedAt {
    /// A bridge port, by its name in the daemon's namespace.
    Port(String),
    /// A macvlan endpoint's own interface, by its ifindex (unique among netd's).
    Lan(u32),
}

/// A link that carries netd's ownership mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedLink {
    pub name: String,
    /// The network or endpoint id in the mark; for a half-made bridge, the network id's
    /// first 12 characters, from its name.
    pub owner: String,
    /// A bridge named as netd names them (`nd-` and 12 hex digits) that has no mark: netd
    /// creates a link and marks it in two netlink requests (the kernel takes no alias at
    /// creation), and a crash between them leaves this.
    pub half_made: bool,
}

impl OwnedLink {
    /// The owner of a bridge named `name` as netd names bridges, if it is one.
    pub fn bridge_owner(name: &str) -> Option<&str> {
        let hex = name.strip_prefix("nd-")?;
        (hex.len() == 12
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then_some(hex)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{op} {target}: {source}")]
pub struct HostError {
    pub op: &'static str,
    pub target: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl HostError {
    pub fn new(
        op: &'static str,
        target: impl ToString,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            op,
            target: target.to_string(),
            source: source.into(),
        }
    }
}

/// Prefix of the alias netd puts on every link it creates; links without it are never touched.
pub const OWNER_MARK: &str = "netd:";

#[cfg(test)]
mod tests {
    use super::OwnedLink;

    #[test]
    fn only_netds_bridge_names_have_an_owner() {
        assert_eq!(
            OwnedLink::bridge_owner("nd-0123456789ab"),
            Some("0123456789ab")
        );
        for other in [
            "nd-operator",
            "br-0123456789ab",
            "nd-0123456789abc",
            "nd-0123456789AB",
        ] {
            assert_eq!(OwnedLink::bridge_owner(other), None, "{other}");
        }
    }
}
