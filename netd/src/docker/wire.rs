//! Docker's plugin protocol, as JSON: libnetwork's `drivers/remote/api` and
//! `ipams/remote/api`. Unknown fields are ignored, not refused: each Docker release may add
//! some, and a plugin must keep working with it.

use std::{collections::BTreeMap, net::Ipv4Addr};

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A protocol field that is missing or malformed: the caller answers with its name.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {why}")]
pub struct FieldError {
    pub field: &'static str,
    pub why: String,
}

/// Docker writes `null` for an empty map or list (Go's nil).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub fn required<'a>(field: &'static str, value: &'a str) -> Result<&'a str, FieldError> {
    if value.is_empty() {
        return Err(FieldError {
            field,
            why: "is missing".into(),
        });
    }
    Ok(value)
}

/// `A.B.C.D/N` (Docker writes addresses with their prefix length), or `A.B.C.D`.
pub fn address(field: &'static str, value: &str) -> Result<(Ipv4Addr, Option<u8>), FieldError> {
    let bad = |why: &str| FieldError {
        field,
        why: format!("{value:?} {why}"),
    };
    match value.split_once('/') {
        Some((ip, len)) => {
            let ip = ip.parse().map_err(|_| bad("is not an IPv4 address"))?;
            let len = len
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= 32)
                .ok_or_else(|| bad("has no prefix length of 0-32"))?;
            Ok((ip, Some(len)))
        }
        None => Ok((
            value.parse().map_err(|_| bad("is not an IPv4 address"))?,
            None,
        )),
    }
}

pub fn subnet(field: &'static str, value: &str) -> Result<Ipv4Network, FieldError> {
    let net: Ipv4Network = value.parse().map_err(|_| FieldError {
        field,
        why: format!("{value:?} is not an IPv4 subnet (A.B.C.D/N)"),
    })?;
    if net.network() != net.ip() {
        return Err(FieldError {
            field,
            why: format!(
                "{value:?} has host bits set; the subnet is {}/{}",
                net.network(),
                net.prefix()
            ),
        });
    }
    Ok(net)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, Value>,
    #[serde(rename = "IPv4Data", deserialize_with = "nullable")]
    pub ipv4_data: Vec<IpamData>,
    #[serde(rename = "IPv6Data", deserialize_with = "nullable")]
    pub ipv6_data: Vec<IpamData>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamData {
    pub address_space: String,
    pub pool: String,
    pub gateway: String,
    #[serde(deserialize_with = "nullable")]
    pub aux_addresses: BTreeMap<String, String>,
}

/// Requests that name a network only, or a network and an endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Join's sandbox (a namespace path).
    pub sandbox_key: String,
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, Value>,
    pub interface: Option<Interface>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Interface {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(rename = "AddressIPv6", skip_serializing_if = "String::is_empty")]
    pub address_ipv6: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
}

/// One entry of `com.docker.network.portmap` (libnetwork's types.PortBinding).
#[derive(Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    pub proto: u8,
    #[serde(rename = "IP")]
    pub ip: String,
    pub port: u16,
    #[serde(rename = "HostIP")]
    pub host_ip: String,
    pub host_port: u16,
    pub host_port_end: u16,
}

/// One entry of `com.docker.network.endpoint.exposedports` (libnetwork's TransportPort).
#[derive(Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct TransportPort {
    pub proto: u8,
    pub port: u16,
}

pub const OPT_GENERIC: &str = "com.docker.network.generic";
pub const OPT_INTERNAL: &str = "com.docker.network.internal";
pub const OPT_IPV6: &str = "com.docker.network.enable_ipv6";
pub const OPT_PORTMAP: &str = "com.docker.network.portmap";
pub const OPT_EXPOSED: &str = "com.docker.network.endpoint.exposedports";
/// netd's endpoint driver option: the endpoint's names on the network, comma-separated
/// (`docker run --network name=N,driver-opt=netd.aliases=web`), for VIP aliases and netd's DNS.
pub const OPT_ALIASES: &str = "netd.aliases";
/// IPAM RequestAddress option saying what the address is for.
pub const OPT_ADDRESS_TYPE: &str = "RequestAddressType";
pub const ADDRESS_TYPE_GATEWAY: &str = "com.docker.network.gateway";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RequestPool {
    pub address_space: String,
    pub pool: String,
    pub sub_pool: String,
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "V6")]
    pub v6: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AddressRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub address: String,
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
}
