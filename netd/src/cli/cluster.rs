//! The cluster on the command line: `netd daemon`'s cluster flags, and `netd node ls|rm`.

use std::{net::Ipv4Addr, path::PathBuf};

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::Value;

use super::{
    network::as_array,
    output::{self, str_of, FormatArg},
    seg,
};
use crate::{
    api::client::{Client, ClientError},
    cluster::{nodes::check_name, StoreAddress, TlsFiles},
    daemon::ClusterOptions,
};

/// The VXLAN port of netd's tunnels: neither Docker Swarm's 4789 nor flannel's and Cilium's
/// 8472, since only one collect_md device can own a port (4790 is VXLAN-GPE's IANA port,
/// which container hosts rarely run).
pub const DEFAULT_VXLAN_PORT: u16 = 4790;

#[derive(Args, Clone, Debug)]
pub struct ClusterArgs {
    /// Join the cluster whose state lives in these etcd members: etcd://H1:2379,H2:2379.
    #[arg(long, value_name = "etcd://HOST:PORT,...")]
    pub cluster_store: Option<String>,
    /// The CA that signed the etcd members' certificates (TLS clusters).
    #[arg(long, requires = "cluster_store")]
    pub cluster_ca: Option<PathBuf>,
    /// This host's client certificate for etcd.
    #[arg(long, requires = "cluster_store")]
    pub cluster_cert: Option<PathBuf>,
    /// The key of --cluster-cert.
    #[arg(long, requires = "cluster_store")]
    pub cluster_key: Option<PathBuf>,
    /// This host's name in the cluster. Default: the hostname.
    #[arg(long, requires = "cluster_store")]
    pub node_name: Option<String>,
    /// The underlay address other hosts reach this one at. Default: the first uplink's.
    #[arg(long, requires = "cluster_store")]
    pub advertise_addr: Option<Ipv4Addr>,
    /// The UDP port of the overlay's VXLAN tunnels.
    #[arg(long, default_value_t = DEFAULT_VXLAN_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub vxlan_port: u16,
    /// Seconds a host stays ready without renewing its lease: how soon peers stop sending
    /// to a dead host (this, plus up to 2 s).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(2..=60))]
    pub node_ttl: i64,
}

impl ClusterArgs {
    pub fn options(&self) -> anyhow::Result<Option<ClusterOptions>> {
        let Some(store) = &self.cluster_store else {
            return Ok(None);
        };
        let tls = TlsFiles {
            ca: self.cluster_ca.clone(),
            cert: self.cluster_cert.clone(),
            key: self.cluster_key.clone(),
        };
        let node_name = match &self.node_name {
            Some(name) => name.clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")?
                .trim()
                .to_string(),
        };
        check_name(&node_name).map_err(|e| anyhow::anyhow!("--node-name: {e}"))?;
        Ok(Some(ClusterOptions {
            store: StoreAddress::parse(store, tls)?,
            node_name,
            advertise: self.advertise_addr,
            vxlan_port: self.vxlan_port,
            ttl_secs: self.node_ttl,
        }))
    }
}

/// `netd cluster-heartbeat`: what the daemon starts to keep its node's lease alive.
#[derive(Args, Clone, Debug)]
pub struct HeartbeatArgs {
    #[arg(long)]
    pub cluster_store: String,
    #[arg(long)]
    pub cluster_ca: Option<PathBuf>,
    #[arg(long)]
    pub cluster_cert: Option<PathBuf>,
    #[arg(long)]
    pub cluster_key: Option<PathBuf>,
    #[arg(long)]
    pub lease: i64,
    #[arg(long, value_parser = clap::value_parser!(i64).range(2..=60))]
    pub node_ttl: i64,
}

/// Renews the lease until it is gone; the exit code says why it ended.
#[cfg(feature = "etcd")]
pub async fn heartbeat(args: HeartbeatArgs) -> anyhow::Result<i32> {
    let tls = TlsFiles {
        ca: args.cluster_ca,
        cert: args.cluster_cert,
        key: args.cluster_key,
    };
    let address = StoreAddress::parse(&args.cluster_store, tls)?;
    let store = crate::cluster::etcd::EtcdStore::connect(&address).await?;
    log::info!("heartbeat of lease {:x} on {address}", args.lease);
    crate::cluster::heartbeat::renew(&store, args.lease, args.node_ttl).await;
    Ok(0)
}

#[cfg(not(feature = "etcd"))]
pub async fn heartbeat(_: HeartbeatArgs) -> anyhow::Result<i32> {
    anyhow::bail!("this netd was built without etcd (feature etcd)")
}

#[derive(Subcommand)]
pub enum NodeCommand {
    /// List the cluster's hosts: name, underlay address, ready or unreachable.
    #[command(alias = "list")]
    Ls(FormatArg),
    /// Forget a host that is gone for good (refused while it is alive).
    #[command(alias = "remove")]
    Rm { name: String },
}

pub async fn run(client: &Client, cmd: NodeCommand) -> Result<i32, ClientError> {
    match cmd {
        NodeCommand::Ls(format) => {
            let nodes = client.call(Method::GET, "/v1/nodes", None).await?;
            match format.format {
                output::Format::Json => output::json(&nodes),
                output::Format::Table => {
                    let rows: Vec<Vec<String>> = as_array(&nodes).iter().map(row).collect();
                    output::table(&["NAME", "ADDRESS", "STATUS", "SINCE", "VXLAN PORT"], &rows);
                }
            }
        }
        NodeCommand::Rm { name } => {
            let path = format!("/v1/nodes/{}", seg(&name));
            client.call(Method::DELETE, &path, None).await?;
            println!("{name}");
        }
    }
    Ok(0)
}

fn row(n: &Value) -> Vec<String> {
    let ready = n["ready"].as_bool().unwrap_or(false);
    vec![
        str_of(n, "/name"),
        str_of(n, "/address"),
        if ready { "ready" } else { "unreachable" }.into(),
        match ready {
            // To the second: 2026-12-07T23:27:36Z.
            true => str_of(n, "/alive_since")
                .split('.')
                .next()
                .map(|s| format!("{}Z", s.trim_end_matches('Z')))
                .unwrap_or_default(),
            false => "-".into(),
        },
        str_of(n, "/vxlan_port"),
    ]
}
