//! Several netd hosts in one cluster, for the cluster tiers: an underlay "switch" namespace
//! with a bridge, a three-member etcd cluster (TLS) in it, and hosts (labs, each with its own
//! daemon) whose `eth0` sits on the underlay at 10.88.0.1N. Everything goes with the value.

use std::time::Duration;

use labkit::etcd::{EtcdCluster, MemberAt};
use serde_json::Value;

use crate::{lan, wait_until, Lab};

pub const UNDERLAY: &str = "10.88.0";

pub struct Cluster {
    /// Dropped first: its members run in the underlay namespace, which the first host owns.
    pub etcd: EtcdCluster,
    pub hosts: Vec<Lab>,
    pub underlay: String,
    pub ttl: u32,
    dir: tempfile::TempDir,
}

/// The underlay address of host `i`.
pub fn host_ip(i: usize) -> String {
    format!("{UNDERLAY}.{}", 11 + i)
}

impl Cluster {
    /// `n` hosts, each daemon with a lease of `ttl` seconds and `extra(i)` more flags.
    pub fn start(n: usize, ttl: u32, extra: impl Fn(usize) -> Vec<String>) -> Self {
        let mut first = Lab::unstarted();
        let underlay = first.add_namespace("nund");
        lan::ip(&["-n", &underlay, "link", "add", "und0", "type", "bridge"]);
        lan::ip(&["-n", &underlay, "link", "set", "und0", "up"]);
        lan::ip(&["-n", &underlay, "link", "set", "lo", "up"]);
        let members: Vec<MemberAt> = (0..3)
            .map(|i| MemberAt {
                ip: format!("{UNDERLAY}.{}", 101 + i),
                client_port: 2379,
                peer_port: 2380,
                netns: Some(underlay.clone()),
            })
            .collect();
        for m in &members {
            let addr = format!("{}/24", m.ip);
            lan::ip(&["-n", &underlay, "addr", "add", &addr, "dev", "und0"]);
        }
        let dir = tempfile::Builder::new()
            .prefix("netd-cluster")
            .tempdir()
            .expect("tempdir");
        let etcd = EtcdCluster::start(&dir.path().join("etcd"), members).expect("etcd");
        let mut hosts = vec![first];
        hosts.extend((1..n).map(|_| Lab::unstarted()));
        for (i, host) in hosts.iter_mut().enumerate() {
            let addr = format!("{}/24", host_ip(i));
            lan::wire(
                &underlay,
                "und0",
                &host.netns,
                &addr,
                &format!("u{i}-{}", host.netns),
            );
        }
        let mut cluster = Self {
            etcd,
            hosts,
            underlay,
            ttl,
            dir,
        };
        for i in 0..n {
            cluster.hosts[i].daemon_args = cluster.daemon_args(i, &extra(i));
            cluster.hosts[i].start_daemon();
        }
        cluster
    }

    /// The cluster flags of host `i`'s daemon, then `extra`.
    pub fn daemon_args(&self, i: usize, extra: &[String]) -> Vec<String> {
        let tls = &self.etcd.tls;
        let mut args: Vec<String> = [
            "--cluster-store",
            &self.etcd.store_address(),
            "--cluster-ca",
            &tls.ca.display().to_string(),
            "--cluster-cert",
            &tls.client_cert.display().to_string(),
            "--cluster-key",
            &tls.client_key.display().to_string(),
            "--node-name",
            &format!("host{}", i + 1),
            "--node-ttl",
            &self.ttl.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend_from_slice(extra);
        args
    }

    /// `netd node ls` on host `i`, by name: (address, ready).
    pub fn nodes(&self, i: usize) -> Option<Vec<(String, String, bool)>> {
        let out = self.hosts[i].netd(&["node", "ls", "--format", "json"]);
        if !out.status.success() {
            return None;
        }
        let nodes: Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(
            nodes
                .as_array()?
                .iter()
                .map(|n| {
                    (
                        n["name"].as_str().unwrap_or_default().to_string(),
                        n["address"].as_str().unwrap_or_default().to_string(),
                        n["ready"].as_bool().unwrap_or(false),
                    )
                })
                .collect(),
        )
    }

    /// Waits (bounded) until host `i` sees exactly these nodes with these readinesses.
    pub fn wait_nodes(&self, i: usize, want: &[(&str, bool)], limit: Duration) -> bool {
        wait_until(limit, || {
            self.nodes(i).is_some_and(|nodes| {
                let got: Vec<(&str, bool)> =
                    nodes.iter().map(|(n, _, r)| (n.as_str(), *r)).collect();
                got == want
            })
        })
    }

    /// A folder of the cluster's own, removed with it.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
