//! `network create` input: the wire request and the validated spec it becomes.

use std::{collections::BTreeMap, net::Ipv4Addr};

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};

use super::{
    alias::AliasOptions,
    names::{IfName, Name},
    origin::Origin,
    ConfigError,
};

/// The only driver that creates networks today; `host` and `null` exist once each.
pub const DRIVER_BRIDGE: &str = "bridge";
pub const DEFAULT_MTU: u32 = 1500;

/// Body of `POST /v1/networks`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNetwork {
    pub name: String,
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub ip_range: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options, Docker's names (`-o com.docker.network.bridge.name=br0`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Bridge device name option, as Docker spells it.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// MTU option, as Docker spells it.
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
/// Masquerade option, as Docker spells it (`false` for networks routed as they are).
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
/// Inter-container communication, as Docker spells it, and netd's short name.
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const OPT_ICC_SHORT: &str = "icc";
/// `nat` (default: the outside reaches members only through published ports) or `routed`.
pub const OPT_GATEWAY_MODE: &str = "com.docker.network.bridge.gateway_mode_ipv4";
pub const OPT_GATEWAY_MODE_SHORT: &str = "gateway-mode";

/// The options the datapath applies; they may change on a live network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyOptions {
    /// Connections to the outside leave with the uplink's address (Docker's default).
    pub masquerade: bool,
    /// Members may talk to each other.
    pub icc: bool,
    /// The outside may reach members' addresses by routing, without a published port.
    pub routed: bool,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        Self {
            masquerade: true,
            icc: true,
            routed: false,
        }
    }
}

impl PolicyOptions {
    pub const KNOWN: [&'static str; 5] = [
        OPT_MASQUERADE,
        OPT_ICC,
        OPT_ICC_SHORT,
        OPT_GATEWAY_MODE,
        OPT_GATEWAY_MODE_SHORT,
    ];

    /// Applies `key=value` when `key` is one of these options; `Ok(false)` for other keys.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let boolean = || {
            value.parse::<bool>().map_err(|_| {
                ConfigError::invalid(
                    "network option",
                    format!("{key}={value}"),
                    "expected true or false",
                )
            })
        };
        match key {
            OPT_MASQUERADE => self.masquerade = boolean()?,
            OPT_ICC | OPT_ICC_SHORT => self.icc = boolean()?,
            OPT_GATEWAY_MODE | OPT_GATEWAY_MODE_SHORT => {
                self.routed = match value {
                    "nat" => false,
                    "routed" => true,
                    _ => {
                        return Err(ConfigError::invalid(
                            "network option",
                            format!("{key}={value}"),
                            "expected nat or routed",
                        ))
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A validated bridge network request. The subnet is chosen from the default pools when the
/// user gave none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: Name,
    pub subnet: Option<SubnetSpec>,
    pub internal: bool,
    pub mtu: u32,
    pub labels: BTreeMap<String, String>,
    /// A bridge device name chosen by the user instead of `nd-<id>`.
    pub bridge_name: Option<IfName>,
    pub policy: PolicyOptions,
    pub aliases: AliasOptions,
    /// Who asks: netd's API, or a runtime's plugin.
    pub origin: Origin,
    /// Addresses come from this pool of netd's IPAM driver (Docker's `--ipam-driver`).
    pub ipam_pool: Option<String>,
    /// Addresses kept out of the pool, by name (Docker's `--aux-address`).
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
}

/// A subnet with its dynamic range and gateway, all consistent with each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetSpec {
    pub subnet: Ipv4Network,
    pub ip_range: Option<Ipv4Network>,
    pub gateway: Ipv4Addr,
}

impl TryFrom<CreateNetwork> for NetworkSpec {
    type Error = ConfigError;

    fn try_from(req: CreateNetwork) -> Result<Self, ConfigError> {
        let name = Name::parse("network name", &req.name)?;
        if let Some(driver) = req.driver.as_deref() {
            if driver != DRIVER_BRIDGE {
                return Err(ConfigError::invalid(
                    "driver",
                    driver,
                    "only the bridge driver creates networks",
                ));
            }
        }
        let subnet = match req.subnet.as_deref() {
            Some(subnet) => Some(SubnetSpec::parse(
                subnet,
                req.ip_range.as_deref(),
                req.gateway.as_deref(),
            )?),
            None if req.ip_range.is_some() || req.gateway.is_some() => {
                return Err(ConfigError::RangeWithoutSubnet)
            }
            None => None,
        };
        let mut bridge_name = None;
        let mut mtu = req.mtu;
        let mut policy = PolicyOptions::default();
        let mut aliases = AliasOptions::default();
        for (key, value) in &req.options {
            if policy.apply(key, value)? || aliases.apply(key, value)? {
                continue;
            }
            match key.as_str() {
                OPT_BRIDGE_NAME => bridge_name = Some(IfName::parse(value)?),
                OPT_MTU => {
                    let parsed = value
                        .parse()
                        .map_err(|_| ConfigError::invalid("MTU", value, "not a number"))?;
                    mtu = Some(parsed);
                }
                _ => {
                    return Err(ConfigError::invalid(
                        "network option",
                        key,
                        format!(
                            "unknown; known options are {OPT_BRIDGE_NAME}, {OPT_MTU}, {}, {}",
                            PolicyOptions::KNOWN.join(", "),
                            AliasOptions::KNOWN.join(", ")
                        ),
                    ))
                }
            }
        }
        if req.internal && policy.routed {
            return Err(ConfigError::invalid(
                "network option",
                format!("{OPT_GATEWAY_MODE_SHORT}=routed"),
                "an internal network cannot be routed",
            ));
        }
        if aliases.vip && !policy.icc {
            return Err(ConfigError::invalid(
                "network option",
                "alias-mode=vip",
                "members of an icc=false network may not reach each other, through a virtual IP neither",
            ));
        }
        let mtu = match mtu {
            None => DEFAULT_MTU,
            Some(mtu @ 68..=65535) => mtu,
            Some(mtu) => {
                return Err(ConfigError::invalid(
                    "MTU",
                    mtu.to_string(),
                    "must be between 68 and 65535",
                ))
            }
        };
        for key in req.labels.keys() {
            if key.is_empty() {
                return Err(ConfigError::invalid("label", "", "a label needs a key"));
            }
        }
        Ok(Self {
            name,
            subnet,
            internal: req.internal,
            mtu,
            labels: req.labels,
            bridge_name,
            policy,
            aliases,
            origin: Origin::Netd,
            ipam_pool: None,
            aux_addresses: BTreeMap::new(),
        })
    }
}

impl SubnetSpec {
    pub fn parse(
        subnet: &str,
        ip_range: Option<&str>,
        gateway: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let subnet = parse_subnet(subnet)?;
        let ip_range = ip_range.map(|r| parse_range(r, subnet)).transpose()?;
        let gateway = match gateway {
            Some(gw) => parse_gateway(gw, subnet)?,
            None => first_host(subnet),
        };
        Ok(Self {
            subnet,
            ip_range,
            gateway,
        })
    }

    /// The default layout of a subnet: first host address as gateway, no range.
    pub fn with_default_gateway(subnet: Ipv4Network) -> Self {
        Self {
            subnet,
            ip_range: None,
            gateway: first_host(subnet),
        }
    }
}

pub fn first_host(subnet: Ipv4Network) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

pub fn parse_cidr(what: &'static str, value: &str) -> Result<Ipv4Network, ConfigError> {
    let (addr, prefix) = value.split_once('/').ok_or_else(|| {
        ConfigError::invalid(what, value, "expected ADDRESS/PREFIX, e.g. 10.1.0.0/24")
    })?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| {
        ConfigError::invalid(what, value, format!("{addr:?} is not an IPv4 address"))
    })?;
    let prefix: u8 =
        prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| {
            ConfigError::invalid(what, value, "the prefix length must be 0 to 32")
        })?;
    Ok(Ipv4Network::new(addr, prefix).expect("prefix checked"))
}

fn parse_subnet(value: &str) -> Result<Ipv4Network, ConfigError> {
    let subnet = parse_cidr("subnet", value)?;
    reject_host_bits(value, subnet)?;
    if subnet.prefix() > 30 {
        return Err(ConfigError::SubnetTooSmall(subnet));
    }
    if subnet.prefix() < 8 {
        return Err(ConfigError::invalid(
            "subnet",
            value,
            "larger than a /8; use /8 to /30",
        ));
    }
    // A /8 or smaller lies inside one first octet, so that octet tells a reserved block.
    let why = match subnet.network().octets()[0] {
        0 => Some("0.0.0.0/8 means \"this network\" and is never routed"),
        127 => Some("127.0.0.0/8 is loopback"),
        224..=239 => Some("224.0.0.0/4 is multicast"),
        240..=255 => Some("240.0.0.0/4 is reserved (and holds the broadcast address)"),
        _ => None,
    };
    if let Some(why) = why {
        return Err(ConfigError::invalid("subnet", value, why));
    }
    Ok(subnet)
}

fn reject_host_bits(value: &str, net: Ipv4Network) -> Result<(), ConfigError> {
    let network = Ipv4Network::new(net.network(), net.prefix()).expect("same prefix");
    if net.ip() != net.network() {
        return Err(ConfigError::HostBitsSet {
            subnet: value.to_string(),
            network,
        });
    }
    Ok(())
}

fn parse_range(value: &str, subnet: Ipv4Network) -> Result<Ipv4Network, ConfigError> {
    let range = parse_cidr("ip-range", value)?;
    reject_host_bits(value, range)?;
    if range.prefix() < subnet.prefix() || !subnet.contains(range.network()) {
        return Err(ConfigError::RangeOutsideSubnet { range, subnet });
    }
    Ok(range)
}

pub fn parse_ipv4(what: &'static str, value: &str) -> Result<Ipv4Addr, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::invalid(what, value, "not an IPv4 address"))
}

fn parse_gateway(value: &str, subnet: Ipv4Network) -> Result<Ipv4Addr, ConfigError> {
    let gateway = parse_ipv4("gateway", value)?;
    if !subnet.contains(gateway) {
        return Err(ConfigError::GatewayOutsideSubnet { gateway, subnet });
    }
    let which = if gateway == subnet.network() {
        "network"
    } else if gateway == subnet.broadcast() {
        "broadcast"
    } else {
        return Ok(gateway);
    };
    Err(ConfigError::GatewayReserved {
        gateway,
        subnet,
        which,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        subnet: &str,
        range: Option<&str>,
        gw: Option<&str>,
    ) -> Result<SubnetSpec, ConfigError> {
        SubnetSpec::parse(subnet, range, gw)
    }

    fn err(r: Result<SubnetSpec, ConfigError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn gateway_defaults_to_first_host() {
        let s = spec("192.168.100.0/24", None, None).unwrap();
        assert_eq!(s.gateway, Ipv4Addr::new(192, 168, 100, 1));
        let s = spec(
            "192.168.100.0/24",
            Some("192.168.100.128/25"),
            Some("192.168.100.254"),
        )
        .unwrap();
        assert_eq!(s.gateway, Ipv4Addr::new(192, 168, 100, 254));
        assert_eq!(s.ip_range.unwrap().to_string(), "192.168.100.128/25");
    }

    #[test]
    fn every_bad_subnet_is_named() {
        assert!(err(spec("10.1.0.0", None, None)).contains("\"10.1.0.0\""));
        assert!(err(spec("10.1.0.0/33", None, None)).contains("10.1.0.0/33"));
        assert!(err(spec("10.1.x.0/24", None, None)).contains("10.1.x.0"));
        let e = err(spec("10.1.0.5/24", None, None));
        assert!(
            e.contains("10.1.0.5/24") && e.contains("10.1.0.0/24"),
            "{e}"
        );
        assert!(err(spec("10.1.0.0/31", None, None)).contains("10.1.0.0/31"));
        assert!(err(spec("10.1.0.0/32", None, None)).contains("10.1.0.0/32"));
    }

    #[test]
    fn reserved_blocks_are_no_subnets() {
        for (subnet, why) in [
            ("0.0.0.0/8", "this network"),
            ("0.1.0.0/16", "this network"),
            ("127.0.0.0/8", "loopback"),
            ("127.5.0.0/24", "loopback"),
            ("224.0.0.0/24", "multicast"),
            ("239.255.0.0/16", "multicast"),
            ("240.0.0.0/8", "reserved"),
            ("255.255.255.0/24", "reserved"),
        ] {
            let e = err(spec(subnet, None, None));
            assert!(e.contains(subnet) && e.contains(why), "{subnet}: {e}");
        }
        assert!(spec("223.255.255.0/24", None, None).is_ok());
        assert!(spec("1.0.0.0/8", None, None).is_ok());
    }

    #[test]
    fn every_bad_gateway_is_named() {
        let e = err(spec("10.1.0.0/24", None, Some("10.2.0.1")));
        assert!(e.contains("10.2.0.1") && e.contains("outside"), "{e}");
        assert!(err(spec("10.1.0.0/24", None, Some("10.1.0.0"))).contains("network address"));
        assert!(err(spec("10.1.0.0/24", None, Some("10.1.0.255"))).contains("broadcast address"));
        assert!(err(spec("10.1.0.0/24", None, Some("nope"))).contains("\"nope\""));
    }

    #[test]
    fn range_must_sit_inside_subnet() {
        let e = err(spec("10.1.0.0/24", Some("10.1.1.0/25"), None));
        assert!(
            e.contains("10.1.1.0/25") && e.contains("10.1.0.0/24"),
            "{e}"
        );
        assert!(spec("10.1.0.0/24", Some("10.1.0.0/16"), None).is_err());
        assert!(spec("10.1.0.0/24", Some("10.1.0.0/24"), None).is_ok());
    }

    #[test]
    fn request_validation() {
        let req = |f: fn(&mut CreateNetwork)| {
            let mut r = CreateNetwork {
                name: "net1".into(),
                ..Default::default()
            };
            f(&mut r);
            NetworkSpec::try_from(r)
        };
        assert!(req(|_| {}).is_ok());
        assert!(req(|r| r.name = "bad name".into())
            .unwrap_err()
            .to_string()
            .contains("bad name"));
        assert!(req(|r| r.driver = Some("overlay".into()))
            .unwrap_err()
            .to_string()
            .contains("overlay"));
        assert_eq!(
            req(|r| r.gateway = Some("10.0.0.1".into())).unwrap_err(),
            ConfigError::RangeWithoutSubnet
        );
        assert!(req(|r| r.mtu = Some(10))
            .unwrap_err()
            .to_string()
            .contains("\"10\""));
        assert_eq!(req(|r| r.mtu = Some(9000)).unwrap().mtu, 9000);
        let long = req(|r| {
            r.options
                .insert(OPT_BRIDGE_NAME.into(), "averyveryverylongname".into());
        });
        assert!(long
            .unwrap_err()
            .to_string()
            .contains("averyveryverylongname"));
        let named = req(|r| {
            r.options.insert(OPT_BRIDGE_NAME.into(), "br-web".into());
            r.options.insert(OPT_MTU.into(), "1450".into());
        });
        let named = named.unwrap();
        assert_eq!(
            (named.bridge_name.unwrap().as_str(), named.mtu),
            ("br-web", 1450)
        );
        let unknown = req(|r| {
            r.options
                .insert("com.docker.network.bridge.enable_ipv6".into(), "1".into());
        });
        assert!(unknown.unwrap_err().to_string().contains("enable_ipv6"));
        let policy = req(|r| {
            r.options.insert(OPT_ICC_SHORT.into(), "false".into());
            r.options.insert(OPT_GATEWAY_MODE.into(), "routed".into());
        });
        assert_eq!(
            policy.unwrap().policy,
            PolicyOptions {
                masquerade: true,
                icc: false,
                routed: true
            }
        );
        let bad = req(|r| {
            r.options
                .insert(OPT_GATEWAY_MODE_SHORT.into(), "bridged".into());
        });
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("gateway-mode=bridged"));
        let bad = req(|r| {
            r.options.insert(OPT_ICC.into(), "no".into());
        });
        assert!(bad.unwrap_err().to_string().contains("enable_icc=no"));
    }
}
