//! Addresses of overlay networks, unique in the cluster: each is a create-only key naming the
//! node and endpoint that hold it, decided by the store, never by a local guess. Claims have
//! no lease: a dead host keeps its addresses until it releases them or an operator removes
//! the node, so a partition never hands one out twice.

use std::{collections::BTreeMap, net::Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::{
    overlay::OverlayNetwork,
    store::{ClusterError, ClusterStore},
};

const ADDRESSES: &str = "/netd/v1/overlay/addresses/";

/// Who holds an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressClaim {
    pub node: String,
    pub endpoint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error(transparent)]
    Store(#[from] ClusterError),
    #[error("IP address {ip} is in use on host {node} (endpoint {endpoint})")]
    InUse {
        ip: Ipv4Addr,
        node: String,
        endpoint: String,
    },
    #[error("IP address {ip} is not in {range} of overlay network {network}")]
    Outside {
        ip: Ipv4Addr,
        range: String,
        network: String,
    },
    #[error("overlay network {0} has no free address left")]
    Exhausted(String),
}

fn key(network_id: &str, ip: Ipv4Addr) -> String {
    format!("{ADDRESSES}{network_id}/{ip}")
}

/// Every claim on a network, by address.
pub async fn claims(
    store: &dyn ClusterStore,
    network_id: &str,
) -> Result<BTreeMap<Ipv4Addr, AddressClaim>, ClusterError> {
    let prefix = format!("{ADDRESSES}{network_id}/");
    let (entries, _) = store.list(&prefix).await?;
    let mut claims = BTreeMap::new();
    for e in entries {
        let ip = e.key.strip_prefix(&prefix).and_then(|ip| ip.parse().ok());
        let claim = serde_json::from_slice(&e.value).ok();
        match (ip, claim) {
            (Some(ip), Some(claim)) => {
                claims.insert(ip, claim);
            }
            _ => {
                return Err(ClusterError::Corrupt {
                    store: store.describe(),
                    key: e.key,
                    reason: "not an address claim".into(),
                })
            }
        }
    }
    Ok(claims)
}

/// The addresses containers may have: the range (or subnet) but its network and broadcast
/// addresses and the gateway.
fn candidates(net: &OverlayNetwork) -> impl Iterator<Item = Ipv4Addr> + '_ {
    let range = net.subnet.ip_range.unwrap_or(net.subnet.subnet);
    let (first, last) = (u32::from(range.network()), u32::from(range.broadcast()));
    let subnet = net.subnet.subnet;
    (first..=last)
        .map(Ipv4Addr::from)
        .filter(move |ip| *ip != subnet.network() && *ip != subnet.broadcast())
        .filter(move |ip| *ip != net.subnet.gateway)
}

/// Claims `wanted` (refused, naming its holder, when another has it) or a free address for
/// `claim`. Concurrent claimers on other hosts each get a different one.
pub async fn claim(
    store: &dyn ClusterStore,
    net: &OverlayNetwork,
    claim: &AddressClaim,
    wanted: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, AddressError> {
    let value = serde_json::to_vec(claim).expect("serializes");
    if let Some(ip) = wanted {
        if !candidates(net).any(|c| c == ip) {
            let range = net.subnet.ip_range.unwrap_or(net.subnet.subnet);
            return Err(AddressError::Outside {
                ip,
                range: range.to_string(),
                network: net.name.clone(),
            });
        }
        if store.create(&key(&net.id, ip), &value, None).await? {
            return Ok(ip);
        }
        return Err(held_by(store, net, ip).await?);
    }
    let taken = claims(store, &net.id).await?;
    let free: Vec<Ipv4Addr> = candidates(net)
        .filter(|ip| !taken.contains_key(ip))
        .collect();
    if free.is_empty() {
        return Err(AddressError::Exhausted(net.name.clone()));
    }
    // From a random place, so that hosts claiming at once rarely try the same address.
    let start = rand::random_range(0..free.len());
    for ip in free[start..].iter().chain(&free[..start]) {
        if store.create(&key(&net.id, *ip), &value, None).await? {
            return Ok(*ip);
        }
    }
    Err(AddressError::Exhausted(net.name.clone()))
}

async fn held_by(
    store: &dyn ClusterStore,
    net: &OverlayNetwork,
    ip: Ipv4Addr,
) -> Result<AddressError, ClusterError> {
    let holder = store.get(&key(&net.id, ip)).await?;
    let holder: Option<AddressClaim> = holder.and_then(|e| serde_json::from_slice(&e.value).ok());
    let holder = holder.unwrap_or(AddressClaim {
        node: "?".into(),
        endpoint: "?".into(),
    });
    Ok(AddressError::InUse {
        ip,
        node: holder.node,
        endpoint: holder.endpoint,
    })
}

/// Gives `ip` back, if `claim` still holds it.
pub async fn release(
    store: &dyn ClusterStore,
    network_id: &str,
    ip: Ipv4Addr,
    claim: &AddressClaim,
) -> Result<bool, ClusterError> {
    let value = serde_json::to_vec(claim).expect("serializes");
    store.delete_if(&key(network_id, ip), &value).await
}
