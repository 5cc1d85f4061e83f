//! What netd persists. Everything else (address pools, indexes) is derived from it on load.

use std::{collections::BTreeMap, net::Ipv4Addr, path::PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::config::origin::Origin;
use crate::config::{
    alias::Lb,
    mac::Mac,
    macvlan::MacvlanSpec,
    names::{IfName, Name},
    network::{PolicyOptions, SubnetSpec},
    port::{ExposedPort, PortMapping},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Bridge,
    Host,
    Null,
    Macvlan,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Host => "host",
            Driver::Null => "null",
            Driver::Macvlan => "macvlan",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub id: String,
    pub name: Name,
    pub driver: Driver,
    pub created: DateTime<Utc>,
    /// Created by the daemon itself (bridge, host, none); cannot be removed.
    pub predefined: bool,
    pub internal: bool,
    /// Bridge networks only.
    pub subnet: Option<SubnetSpec>,
    pub bridge: Option<IfName>,
    pub mtu: u32,
    pub labels: BTreeMap<String, String>,
    /// Connections to the outside leave with the uplink's address.
    #[serde(default = "yes")]
    pub masquerade: bool,
    /// Members may talk to each other (`icc=false` turns it off).
    #[serde(default = "yes")]
    pub icc: bool,
    /// The outside may reach members' addresses by routing (`gateway-mode=routed`).
    #[serde(default)]
    pub routed: bool,
    /// Every alias of a member gets a virtual IP (`alias-mode=vip`).
    #[serde(default)]
    pub vip_aliases: bool,
    /// The algorithm of VIP aliases that do not choose their own.
    #[serde(default)]
    pub alias_lb: Lb,
    /// VIP aliases by lowercase name: made by `alias create`, or by the first member that
    /// carries the alias on an `alias-mode=vip` network; kept until `alias rm` or the
    /// network's removal, so that the address stays stable while backends come and go.
    #[serde(default)]
    pub vips: BTreeMap<String, VipAlias>,
    #[serde(default)]
    pub origin: Origin,
    /// The netd IPAM pool (Docker's `--ipam-driver`) the network's addresses come from.
    #[serde(default)]
    pub ipam_pool: Option<String>,
    /// Addresses kept out of the pool by name (Docker's `--aux-address`).
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
    /// A macvlan network's parent and mode; its containers sit on the LAN, no bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvlan: Option<MacvlanSpec>,
    /// The host's own address on a macvlan network with `host_access`, on its shim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shim_ip: Option<Ipv4Addr>,
}

/// An alias with a virtual IP from its network's subnet (reserved in the address pool).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipAlias {
    /// Datapath key of the VIP, unique and non-zero.
    pub id: u32,
    pub ip: Ipv4Addr,
    pub lb: Lb,
    /// Made by `alias create`, and kept until `alias rm`; else made for the first member
    /// that carried the alias, and released when no container carries it any more.
    #[serde(default)]
    pub explicit: bool,
}

fn yes() -> bool {
    true
}

impl Network {
    /// The network's key in the datapath's maps: the first 32 bits of its id, which netd
    /// keeps unique and non-zero when it creates a network.
    pub fn datapath_id(&self) -> u32 {
        datapath_id(&self.id)
    }

    pub fn policy(&self) -> PolicyOptions {
        PolicyOptions {
            masquerade: self.masquerade,
            icc: self.icc,
            routed: self.routed,
        }
    }

    /// The parent a macvlan network's containers sit on: the one given, or for an internal
    /// network netd's own ([`internal_parent_name`]).
    pub fn macvlan_parent(&self) -> Option<IfName> {
        let m = self.macvlan.as_ref()?;
        Some(
            m.parent
                .clone()
                .unwrap_or_else(|| internal_parent_name(&self.id)),
        )
    }

    /// The parent netd makes for an internal macvlan network (one given no parent).
    pub fn own_parent(&self) -> Option<IfName> {
        self.macvlan
            .as_ref()
            .filter(|m| m.parent.is_none())
            .map(|_| internal_parent_name(&self.id))
    }

    pub fn set_policy(&mut self, p: PolicyOptions) {
        self.masquerade = p.masquerade;
        self.icc = p.icc;
        self.routed = p.routed;
    }
}

/// The name of the parent netd makes for an internal macvlan network `id`: a bridge with no
/// port and no address, where the containers' macvlans meet each other and nothing else (the
/// kernel here has no dummy driver, Docker's choice).
pub fn internal_parent_name(id: &str) -> IfName {
    IfName::parse(&format!("ndi-{}", &id[..11])).expect("15 ASCII bytes")
}

/// The name of the host's shim macvlan on macvlan network `id` (not `nd-` and 12 hex
/// digits, which names bridges).
pub fn shim_name(id: &str) -> IfName {
    IfName::parse(&format!("ndm-{}", &id[..11])).expect("15 ASCII bytes")
}

/// The ifindex netd gives the macvlan of endpoint `id`: one of a range of its own
/// (0x4e000000 and the id's first 24 bits), far above what the kernel hands out, so that
/// the datapath's maps, keyed by ifindex, never mix two namespaces' interfaces. netd keeps
/// it unique among its endpoints when it makes the id.
pub fn lan_ifindex(id: &str) -> u32 {
    let bits = id
        .get(..6)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    0x4e00_0000 | bits
}

pub fn datapath_id(id: &str) -> u32 {
    id.get(..8)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0)
}

/// Where a container's network stack lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Sandbox {
    /// A namespace netd created and bind-mounted at `path`; removed with the container.
    Owned { path: PathBuf },
    /// A namespace the caller brought (`--netns-path`); never removed by netd.
    External { path: PathBuf },
    /// The daemon's own namespace (`--network host`).
    Host,
    /// Another container's namespace (`--network container:OTHER`).
    Shared { container_id: String },
    /// A namespace a runtime owns and configures (Docker): netd leaves the container end of
    /// each veth pair in its own namespace for the runtime to move in; `path` is the
    /// runtime's sandbox once it joined.
    Runtime { path: Option<PathBuf> },
}

/// One interface of a container on one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub id: String,
    pub network_id: String,
    /// Name inside the container: eth0, eth1, …
    pub ifname: IfName,
    /// Host side of the veth pair, a port of the network's bridge.
    pub host_ifname: IfName,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: Mac,
    pub aliases: Vec<String>,
    /// Whether the container's default route goes through this endpoint's gateway.
    pub default_route: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub pid: i32,
    /// Start time in clock ticks since boot (/proc/PID/stat field 22), to tell a reused pid.
    pub start_ticks: u64,
    pub started: DateTime<Utc>,
    pub exit_code: Option<i32>,
    pub finished: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    pub id: String,
    pub name: Name,
    pub created: DateTime<Utc>,
    pub hostname: String,
    /// As the user gave it: a network name, `host`, `none` or `container:NAME`.
    pub network_mode: String,
    pub sandbox: Sandbox,
    pub endpoints: Vec<Endpoint>,
    pub command: Vec<String>,
    pub process: Option<Process>,
    /// Published ports, host ports resolved.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    #[serde(default)]
    pub exposed: Vec<ExposedPort>,
    /// Legacy links (default bridge): other containers in this one's /etc/hosts.
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(default)]
    pub origin: Origin,
    /// An `rm` began: recorded before anything of it goes, so that a crash midway leaves a
    /// container the restart finishes removing instead of one it puts back together.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removing: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub container_id: String,
    pub alias: String,
}

impl Container {
    pub fn endpoint_on(&self, network_id: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.network_id == network_id)
    }

    /// Its command runs, or (a runtime's container) the runtime has it attached: Docker's
    /// once joined to its sandbox, CNI's from ADD to DEL.
    pub fn is_running(&self) -> bool {
        match (&self.sandbox, &self.origin) {
            (Sandbox::Runtime { path }, _) => path.is_some(),
            (_, Origin::Cni { .. }) => true,
            _ => self.process.as_ref().is_some_and(|p| p.exit_code.is_none()),
        }
    }
}

/// An address pool that netd's IPAM driver gave a runtime (Docker's `RequestPool`), with the
/// addresses it handed out of it. A netd network made on it shares its addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamPool {
    /// Docker's PoolID: the subnet, in CIDR form.
    pub id: String,
    pub subnet: ipnetwork::Ipv4Network,
    /// Docker's SubPool: where addresses that no one asked for by value come from.
    pub ip_range: Option<ipnetwork::Ipv4Network>,
    /// Addresses handed out, with what they were asked for (gateway, an endpoint).
    pub addresses: BTreeMap<Ipv4Addr, String>,
}

/// 64 random hex digits, like Docker's ids.
pub fn new_id() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
