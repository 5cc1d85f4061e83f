//! What the engine asks of the machine: links, namespaces and the datapath. The engine only
//! talks to this trait, so that its planning and rollback are tested with a fake.

use std::{net::Ipv4Addr, path::Path};

use ipnetwork::Ipv4Network;
use netd_common::{
    counters::IfaceCounters,
    isolation::{DropCounters, DropKey},
    nat::{PortStats, PortStatsKey},
};

use crate::{
    config::{mac::Mac, names::IfName, port::Proto},
    datapath::{nat::Publication, stats::Usage, vips::VipSpec},
    dns::{DnsNetwork, Names},
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

#[async_trait::async_trait]
pub trait Host: Send + Sync {
    /// Destinations of the host's routes, except those through netd's own bridges.
    async fn routes(&self) -> Result<Vec<Ipv4Network>, HostError>;
    /// Creates the bridge with its gateway address, or completes one that exists.
    async fn ensure_bridge(&self, bridge: &BridgeSpec) -> Result<(), HostError>;
    /// Creates the parent of an internal macvlan network (marked with `network_id`, up, no
    /// address), or leaves the one that exists.
    async fn ensure_internal_parent(
        &self,
        name: &IfName,
        network_id: &str,
        mtu: u32,
    ) -> Result<(), HostError>;
    /// Creates the shim macvlan with its address and route, or completes one that exists.
    async fn ensure_shim(&self, shim: &ShimSpec) -> Result<(), HostError>;
    async fn link_exists(&self, name: &str) -> Result<bool, HostError>;
    /// With `on`, takes one dump of the links that [`Host::link_exists`] and adoption look
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

    /// Creates the veth pair, configures the container side and attaches the datapath. On
    /// failure nothing of it remains.
    async fn plug(&self, plug: &Plug) -> Result<(), HostError>;
    /// Removes the veth pair (its datapath attachment goes with it) and its counters.
    async fn unplug(&self, host_ifname: &str) -> Result<(), HostError>;
    /// Removes an interface that lives only in the container's namespace (a macvlan), if
    /// it carries the mark of `endpoint_id`.
    async fn unplug_inside(
        &self,
        netns: &Path,
        ifname: &str,
        endpoint_id: &str,
    ) -> Result<(), HostError>;
    /// What is missing of a plugged interface (CNI's CHECK): both ends, the container end's
    /// address, the port's place on the bridge and in the datapath. Empty when all is there.
    async fn check_plug(&self, plug: &Plug) -> Vec<String>;
    /// Makes sure the datapath is attached to an existing port (after a restart).
    async fn adopt_port(&self, plug: &Plug) -> Result<(), HostError>;
    /// Drops datapath state (counters, endpoints) of every port but these host interfaces.
    /// and of every macvlan endpoint but those with these ifindexes.
    async fn forget_ports_except(&self, keep: &[String], keep_lan: &[u32])
        -> Result<(), HostError>;
    async fn set_default_route(&self, netns: &Path, gateway: Ipv4Addr) -> Result<(), HostError>;
    /// The MAC of a machine on `parent`'s LAN that answers ARP for `ip`, if one does.
    async fn lan_owner(&self, parent: &str, ip: Ipv4Addr) -> Result<Option<Mac>, HostError>;
    /// The counters of each of these host interfaces (zero for one that is gone), read
    /// with one look at the links whatever their number.
    async fn port_counters(&self, at: &[CountedAt]) -> Vec<IfaceCounters>;

    /// Marks the container interface behind `host_ifname` as the target of published ports
    /// (once it has its first one; see `Plug::dnat_target`).
    async fn mark_dnat_target(&self, host_ifname: &str) -> Result<(), HostError>;
    /// Installs published ports in the datapath.
    async fn publish(&self, publications: &[Publication]) -> Result<(), HostError>;
    async fn unpublish(&self, publications: &[Publication]) -> Result<(), HostError>;
    /// Makes the published ports exactly `publications` (at start: a crash may have left
    /// ports of a container that was never recorded).
    async fn publish_exactly(&self, publications: &[Publication]) -> Result<(), HostError>;
    /// Forgets tracked connections of `ip` (a container going away).
    async fn flush_connections(&self, ip: Ipv4Addr);
    /// Makes the datapath's network rules exactly these.
    async fn set_networks(&self, networks: &[NetworkRules]) -> Result<(), HostError>;
    /// Runs the embedded DNS servers of exactly these networks.
    async fn serve_dns(&self, networks: &[DnsNetwork]) -> Result<(), HostError>;
    /// Runs a DNS server in a container's namespace (`spec.netns`) under `key`, replacing
    /// one there was.
    async fn serve_dns_in(&self, key: &str, spec: &DnsNetwork) -> Result<(), HostError>;
    /// Stops the server of `key`, if there is one.
    fn stop_dns_in(&self, key: &str);
    /// The container names the DNS servers answer from now on.
    fn set_names(&self, names: Names);
    /// Makes the datapath's virtual IPs and their backends exactly these.
    fn set_vips(&self, vips: &[VipSpec]) -> Result<(), HostError>;
    /// Connections each backend (by address) of VIP `id` was chosen for.
    fn vip_connections(&self, id: u32) -> Vec<(Ipv4Addr, u64)>;
    /// Makes the programs write `netd monitor` events (someone watches) or not.
    fn set_monitor(&self, on: bool);
    /// Traffic of published ports that saw connections, summed over CPUs.
    fn port_stats(&self) -> Vec<(PortStatsKey, PortStats)>;
    /// Entries and capacity of the datapath's maps, and conntrack entries by kind.
    fn usage(&self) -> Usage;
    /// What the embedded DNS servers counted.
    fn dns_counters(&self) -> Vec<crate::dns::DnsCounts>;
    /// What the datapath dropped, summed over CPUs.
    fn drops(&self) -> Vec<(DropKey, DropCounters)>;
    /// Subnets whose connections to the outside are masqueraded.
    async fn set_masq_subnets(&self, subnets: &[Ipv4Network]) -> Result<(), HostError>;
    /// Ports processes of the host listen on (TCP) or have bound (UDP), read once.
    fn bound_ports(&self) -> Vec<(Proto, Ipv4Addr, u16)>;
    /// The range random host ports come from (`ip_local_port_range`).
    fn ephemeral_ports(&self) -> (u16, u16);
    /// Whether `ip` is an address of the host (any of 127.0.0.0/8 is), where a port can be
    /// published.
    fn has_address(&self, ip: Ipv4Addr) -> bool;
}

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
