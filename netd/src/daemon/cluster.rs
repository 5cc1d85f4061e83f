//! `--cluster-store`: this host joins the cluster, or works on its own without the flag.

use std::{net::Ipv4Addr, sync::Arc};

#[cfg(feature = "etcd")]
use anyhow::Context;
use anyhow::{bail, Result};

#[cfg(feature = "etcd")]
use crate::cluster::{etcd::EtcdStore, heartbeat::ProcessKeeper, nodes::NodeRecord, ClusterStore};
use crate::{
    cluster::{joining::ClusterNode, StoreAddress},
    engine::linux::LinuxHost,
};

/// The daemon's cluster flags, checked.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub store: StoreAddress,
    pub node_name: String,
    /// The underlay address; default: the first uplink's.
    pub advertise: Option<Ipv4Addr>,
    pub vxlan_port: u16,
    /// Seconds a node stays ready without renewing its lease.
    pub ttl_secs: i64,
}

#[cfg(not(feature = "etcd"))]
pub async fn join(
    _: &ClusterOptions,
    _: &LinuxHost,
    _: &std::path::Path,
) -> Result<Arc<ClusterNode>> {
    bail!("this netd was built without etcd (feature etcd)")
}

#[cfg(feature = "etcd")]
pub async fn join(
    options: &ClusterOptions,
    host: &LinuxHost,
    state_dir: &std::path::Path,
) -> Result<Arc<ClusterNode>> {
    let address = match options.advertise {
        Some(ip) => ip,
        None => match host.uplink_addresses().first() {
            Some(ip) => *ip,
            None => bail!(
                "no --advertise-addr, and no uplink with an address to take it from: give --advertise-addr"
            ),
        },
    };
    let store: Arc<dyn ClusterStore> = Arc::new(
        EtcdStore::connect(&options.store)
            .await
            .with_context(|| format!("connecting to {}", options.store))?,
    );
    let record = NodeRecord {
        name: options.node_name.clone(),
        address,
        vxlan_port: options.vxlan_port,
        joined: chrono::Utc::now(),
    };
    let exe = std::env::current_exe().context("finding netd's own executable")?;
    let keeper = Arc::new(ProcessKeeper::new(state_dir, &exe, options.store.flags()));
    ClusterNode::start(store, record, options.ttl_secs, keeper)
        .await
        .context("joining the cluster")
}
