use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

/// A value a user gave that netd cannot accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: String,
    },
    #[error("invalid subnet {subnet}: host bits are set; did you mean {network}?")]
    HostBitsSet {
        subnet: String,
        network: Ipv4Network,
    },
    #[error("invalid subnet {0}: a /{prefix} has no room for a gateway and containers; use /30 or larger", prefix = .0.prefix())]
    SubnetTooSmall(Ipv4Network),
    #[error("gateway {gateway} is outside subnet {subnet}")]
    GatewayOutsideSubnet {
        gateway: Ipv4Addr,
        subnet: Ipv4Network,
    },
    #[error("gateway {gateway} is the {which} address of subnet {subnet}; pick a host address")]
    GatewayReserved {
        gateway: Ipv4Addr,
        subnet: Ipv4Network,
        which: &'static str,
    },
    #[error("ip-range {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet {
        range: Ipv4Network,
        subnet: Ipv4Network,
    },
    #[error("--ip-range and --gateway need --subnet")]
    RangeWithoutSubnet,
}

impl ConfigError {
    pub fn invalid(what: &'static str, value: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            value: value.into(),
            why: why.into(),
        }
    }
}
