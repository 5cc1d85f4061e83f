//! Subnets as users give them: a subnet, its dynamic range and its gateway, each checked
//! against the others.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// A subnet with its dynamic range and gateway, all consistent with each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetSpec {
    pub subnet: Ipv4Network,
    pub ip_range: Option<Ipv4Network>,
    pub gateway: Ipv4Addr,
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
}
