//! Overlay networks as the cluster decides them: a network's name and VNI are claimed
//! together in one transaction, so both are unique cluster-wide, and it is removed only when
//! no host has an address on it.

use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    addresses::{self, AddressClaim},
    store::{ClusterError, ClusterStore},
};
use crate::config::subnet::SubnetSpec;

const NAMES: &str = "/netd/v1/overlay/networks/";
const VNIS: &str = "/netd/v1/overlay/vnis/";
/// VNIs netd gives out: above the 12-bit VLAN ids that operators often map VNIs to.
pub const FIRST_VNI: u32 = 4097;
pub const LAST_VNI: u32 = (1 << 24) - 1;

/// What every host knows of an overlay network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayNetwork {
    pub id: String,
    pub name: String,
    pub vni: u32,
    pub subnet: SubnetSpec,
    pub internal: bool,
    pub icc: bool,
    pub vip_aliases: bool,
    /// 0: the underlay MTU less the encapsulation, as each host sees it.
    pub mtu: u32,
    pub labels: BTreeMap<String, String>,
    pub created: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error(transparent)]
    Store(#[from] ClusterError),
    #[error("an overlay network named {0} already exists in the cluster")]
    NameTaken(String),
    #[error("VNI {vni} is taken by overlay network {holder}")]
    VniTaken { vni: u32, holder: String },
    #[error("no overlay network {0} in the cluster")]
    NotFound(String),
    #[error("overlay network {name} has endpoints on {hosts}: remove them first")]
    InUse { name: String, hosts: String },
    #[error("every VNI from {FIRST_VNI} to {LAST_VNI} is taken")]
    NoVni,
}

fn decode<T: serde::de::DeserializeOwned>(
    store: &dyn ClusterStore,
    key: &str,
    value: &[u8],
) -> Result<T, ClusterError> {
    serde_json::from_slice(value).map_err(|e| ClusterError::Corrupt {
        store: store.describe(),
        key: key.into(),
        reason: e.to_string(),
    })
}

/// The cluster's overlay networks.
pub struct Overlays {
    store: Arc<dyn ClusterStore>,
}

impl Overlays {
    pub fn new(store: Arc<dyn ClusterStore>) -> Self {
        Self { store }
    }

    /// Claims `net`'s name and a VNI (`net.vni`, or the lowest free when 0) in one step.
    pub async fn create(&self, mut net: OverlayNetwork) -> Result<OverlayNetwork, OverlayError> {
        let asked = net.vni != 0;
        let name_key = format!("{NAMES}{}", net.name);
        loop {
            if !asked {
                net.vni = self.free_vni().await?;
            }
            let vni_key = format!("{VNIS}{}", net.vni);
            let value = serde_json::to_vec(&net).expect("serializes");
            let claims = [
                (name_key.as_str(), &value[..]),
                (vni_key.as_str(), net.id.as_bytes()),
            ];
            if self.store.create_all(&claims).await? {
                return Ok(net);
            }
            if self.store.get(&name_key).await?.is_some() {
                return Err(OverlayError::NameTaken(net.name));
            }
            if asked {
                let holder = self.store.get(&vni_key).await?.map(|e| e.value);
                let holder = String::from_utf8_lossy(&holder.unwrap_or_default()).into_owned();
                return Err(OverlayError::VniTaken {
                    vni: net.vni,
                    holder,
                });
            }
            // Another host took that VNI meanwhile: the next free one.
        }
    }

    async fn free_vni(&self) -> Result<u32, OverlayError> {
        let (taken, _) = self.store.list(VNIS).await?;
        let taken: std::collections::BTreeSet<u32> = taken
            .iter()
            .filter_map(|e| e.key.strip_prefix(VNIS)?.parse().ok())
            .collect();
        (FIRST_VNI..=LAST_VNI)
            .find(|v| !taken.contains(v))
            .ok_or(OverlayError::NoVni)
    }

    pub async fn list(&self) -> Result<Vec<OverlayNetwork>, OverlayError> {
        let (entries, _) = self.store.list(NAMES).await?;
        let store = self.store.as_ref();
        let nets = entries.iter().map(|e| decode(store, &e.key, &e.value));
        Ok(nets.collect::<Result<_, _>>()?)
    }

    pub async fn get(&self, name: &str) -> Result<OverlayNetwork, OverlayError> {
        let key = format!("{NAMES}{name}");
        match self.store.get(&key).await? {
            Some(e) => Ok(decode(self.store.as_ref(), &key, &e.value)?),
            None => Err(OverlayError::NotFound(name.into())),
        }
    }

    /// Removes the network, refused (naming the hosts) while any host holds an address on
    /// it. The VNI goes last: a crash between leaves a claim that names a missing network,
    /// which only blocks that VNI.
    pub async fn remove(&self, name: &str) -> Result<(), OverlayError> {
        let net = self.get(name).await?;
        let claims = addresses::claims(self.store.as_ref(), &net.id).await?;
        if !claims.is_empty() {
            let mut hosts: Vec<&str> = claims.values().map(|c| c.node.as_str()).collect();
            hosts.sort();
            hosts.dedup();
            return Err(OverlayError::InUse {
                name: net.name,
                hosts: hosts.join(", "),
            });
        }
        let key = format!("{NAMES}{name}");
        let value = serde_json::to_vec(&net).expect("serializes");
        if !self.store.delete_if(&key, &value).await? {
            return Err(OverlayError::NotFound(name.into()));
        }
        let vni_key = format!("{VNIS}{}", net.vni);
        self.store.delete_if(&vni_key, net.id.as_bytes()).await?;
        Ok(())
    }

    /// The address claims of a network, by address.
    pub async fn claims(
        &self,
        net: &OverlayNetwork,
    ) -> Result<BTreeMap<std::net::Ipv4Addr, AddressClaim>, OverlayError> {
        Ok(addresses::claims(self.store.as_ref(), &net.id).await?)
    }
}
