//! `network create` input: the wire request and the validated spec it becomes.

use std::{collections::BTreeMap, net::Ipv4Addr};

use serde::{Deserialize, Serialize};

pub use super::subnet::{first_host, parse_cidr, parse_ipv4, SubnetSpec};
use super::{
    alias::AliasOptions,
    macvlan::{
        MacvlanMode, MacvlanSpec, DRIVER_MACVLAN, OPT_HOST_ACCESS, OPT_MACVLAN_MODE, OPT_PARENT,
    },
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
    /// A macvlan network (`-d macvlan`): no bridge, the containers sit on this parent.
    pub macvlan: Option<MacvlanSpec>,
    pub policy: PolicyOptions,
    pub aliases: AliasOptions,
    /// Who asks: netd's API, or a runtime's plugin.
    pub origin: Origin,
    /// Addresses come from this pool of netd's IPAM driver (Docker's `--ipam-driver`).
    pub ipam_pool: Option<String>,
    /// Addresses kept out of the pool, by name (Docker's `--aux-address`).
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
}

impl TryFrom<CreateNetwork> for NetworkSpec {
    type Error = ConfigError;

    fn try_from(req: CreateNetwork) -> Result<Self, ConfigError> {
        let name = Name::parse("network name", &req.name)?;
        let macvlan = match req.driver.as_deref() {
            None | Some(DRIVER_BRIDGE) => false,
            Some(DRIVER_MACVLAN) => true,
            Some(driver) => {
                return Err(ConfigError::invalid(
                    "driver",
                    driver,
                    "netd creates bridge and macvlan networks (ipvlan needs a kernel with CONFIG_IPVLAN, which netd does not drive yet)",
                ))
            }
        };
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
        let (mut parent, mut mode, mut host_access) = (None, MacvlanMode::default(), false);
        for (key, value) in &req.options {
            if macvlan && MacvlanSpec::apply(&mut parent, &mut mode, &mut host_access, key, value)?
            {
                continue;
            }
            if macvlan && key != OPT_MTU {
                return Err(ConfigError::invalid(
                    "network option",
                    key,
                    format!("unknown for macvlan networks; known options are {OPT_PARENT}, {OPT_MACVLAN_MODE}, {OPT_HOST_ACCESS}, {OPT_MTU}"),
                ));
            }
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
        let macvlan = match macvlan {
            false => None,
            true => Some(macvlan_spec(&req, parent, mode, host_access, subnet)?),
        };
        // Without a parent, a macvlan network is internal, as in Docker.
        let internal = req.internal || macvlan.as_ref().is_some_and(|m| m.parent.is_none());
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
            internal,
            mtu,
            labels: req.labels,
            bridge_name,
            macvlan,
            policy,
            aliases,
            origin: Origin::Netd,
            ipam_pool: None,
            aux_addresses: BTreeMap::new(),
        })
    }
}

/// What a macvlan network needs that a bridge does not: a parent on the LAN and the LAN's
/// subnet.
fn macvlan_spec(
    req: &CreateNetwork,
    parent: Option<IfName>,
    mode: MacvlanMode,
    host_access: bool,
    subnet: Option<SubnetSpec>,
) -> Result<MacvlanSpec, ConfigError> {
    if req.internal && parent.is_some() {
        return Err(ConfigError::invalid(
            "network option",
            format!(
                "{OPT_PARENT}={}",
                parent.as_ref().map(|p| p.to_string()).unwrap_or_default()
            ),
            "an internal macvlan network sits on a parent of netd's own: leave out -o parent",
        ));
    }
    if host_access && parent.is_none() {
        return Err(ConfigError::invalid(
            "network option",
            format!("{OPT_HOST_ACCESS}=true"),
            "an internal macvlan network (no -o parent) reaches nothing outside, the host neither",
        ));
    }
    let Some(subnet) = subnet else {
        return Err(ConfigError::invalid(
            "subnet",
            "",
            "a macvlan network shares its LAN's subnet: give --subnet (and --ip-range for the part this host hands out)",
        ));
    };
    if host_access && subnet.ip_range.is_none() {
        return Err(ConfigError::invalid(
            "network option",
            format!("{OPT_HOST_ACCESS}=true"),
            "needs --ip-range: the host routes that range through its shim",
        ));
    }
    if host_access && mode != MacvlanMode::Bridge {
        return Err(ConfigError::invalid(
            "network option",
            format!("{OPT_HOST_ACCESS}=true"),
            format!("needs macvlan_mode=bridge (not {}): only bridge mode lets the shim reach its siblings", mode.as_str()),
        ));
    }
    Ok(MacvlanSpec {
        parent,
        mode,
        host_access,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
