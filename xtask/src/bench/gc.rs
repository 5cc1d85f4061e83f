//! What a conntrack collection of a full table does to the API: container-inspect latency
//! over a window that holds a collection (one every 10 s), with the pending table filled by
//! a flood of spoofed datagrams to a published UDP port, beside the same window with the
//! table empty. The collection reads the table on a blocking thread through descriptors of
//! its own, so the API should not wait for it.

use std::{path::Path, process::Command, time::Instant};

use anyhow::{Context, Result};

use super::{
    host::{api, api_body, BenchHost, UPLINK_IP},
    report::percentile as pct,
};

const SUBNET: &str = "172.28.0.0/16";
/// A window holds at least one collection.
const WINDOW_SECS: u64 = 12;
const FLOOD: u32 = 200_000;

pub fn run(netd: &Path, xtask: &Path) -> Result<String> {
    let host = BenchHost::start(netd, true)?;
    host.netd(netd, &["network", "create", "--subnet", SUBNET, "g"])?;
    host.netd(
        netd,
        &[
            "run",
            "-d",
            "--name",
            "sink",
            "--network",
            "g",
            "-p",
            "5353:53/udp",
            "-p",
            "8081:80",
            "--",
            "sleep",
            "3600",
        ],
    )?;
    let socket = host.socket();
    let empty = latencies(&socket)?;
    let empty_entries = pending_entries(&host)?;
    let ext = host.external.clone().context("the bench host's client")?;
    let flooded = Command::new("ip")
        .args(["netns", "exec", &ext])
        .arg(xtask)
        .args([
            "bench-peer",
            "flood",
            &format!("{UPLINK_IP}:5353"),
            &format!("{UPLINK_IP}:8081"),
            &FLOOD.to_string(),
            "5",
        ])
        .status()?;
    anyhow::ensure!(flooded.success(), "the flood failed");
    let full_entries = pending_entries(&host)?;
    let full = latencies(&socket)?;
    Ok(format!(
        "| `GET /v1/containers/sink` for {WINDOW_SECS} s (a collection every 10 s) | entries collected | calls | p50 ms | p99 ms | max ms |\n\
         | --- | --- | --- | --- | --- | --- |\n\
         | empty table | {empty_entries} | {} | {:.2} | {:.2} | {:.2} |\n\
         | pending table full after a flood | {full_entries} | {} | {:.2} | {:.2} | {:.2} |\n\
         | ratio | | | {:.2}x | {:.2}x | |\n",
        empty.len(),
        pct(&empty, 0.5),
        pct(&empty, 0.99),
        pct(&empty, 1.0),
        full.len(),
        pct(&full, 0.5),
        pct(&full, 0.99),
        pct(&full, 1.0),
        pct(&full, 0.5) / pct(&empty, 0.5),
        pct(&full, 0.99) / pct(&empty, 0.99),
    ))
}

/// Latencies (ms) of container inspects one after another for a window.
fn latencies(socket: &Path) -> Result<Vec<f64>> {
    let start = Instant::now();
    let mut times = Vec::new();
    while start.elapsed().as_secs() < WINDOW_SECS {
        let t = Instant::now();
        api(socket, "GET", "/v1/containers/sink", "")?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}

/// Entries of both conntrack tables, from the maps view.
fn pending_entries(host: &BenchHost) -> Result<u64> {
    let maps = api_body(&host.socket(), "GET", "/v1/stats/maps", "")?;
    let maps: serde_json::Value = serde_json::from_str(&maps).context("the maps view")?;
    Ok(maps
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["Map"] == "NETD_CT" || m["Map"] == "NETD_CT_NEW")
        .filter_map(|m| m["Entries"].as_u64())
        .sum())
}
