//! The cost of isolation and anti-spoofing on the container-to-container path: one client and
//! one server on a netd network, measured in alternating runs with netd's programs on their
//! bridge ports and with the programs taken off (`tc qdisc del ... clsact`); a daemon restart
//! before each run puts them back (it re-adopts every port). Same containers, same veths,
//! same cores, same daemon history: only the programs differ.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result};

use super::{datapath::iperf_gbps, host::BenchHost, report::median};

const SUBNET: &str = "172.29.0.0/16";
const TCP: u16 = 5001;
const UDP: u16 = 5002;
const IPERF: u16 = 5201;

pub fn run(netd: &Path, xtask: &Path, runs: usize, secs: u64) -> Result<String> {
    let mut host = BenchHost::start(netd, false)?;
    host.netd(netd, &["network", "create", "--subnet", SUBNET, "iso"])?;
    host.start_servers(netd, xtask, "iso", &[], (TCP, UDP, IPERF))?;
    let xtask = xtask.display().to_string();
    host.netd(
        netd,
        &[
            "run",
            "-d",
            "--name",
            "cli",
            "--network",
            "iso",
            "--",
            "sleep",
            "3600",
        ],
    )?;
    let server = server_ip(&host, netd, "srv")?;
    let ports = host_ports(&host, netd, &["srv", "cli"])?;
    std::thread::sleep(std::time::Duration::from_millis(300));

    let secs = secs.to_string();
    // [with, without][throughput Gbit/s, new connections per second]
    let mut samples = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for run in 0..runs {
        // Both arms restart the daemon (which re-attaches the programs) and settle the same
        // time, and they take turns going first: only the programs differ, not the history.
        let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            host.restart_daemon(netd)?;
            // Let the start-up (program load, reconcile) finish before measuring.
            std::thread::sleep(std::time::Duration::from_secs(3));
            if i == 1 {
                for port in &ports {
                    BenchHost::run_in(
                        host.netns(),
                        &["tc", "qdisc", "del", "dev", port, "clsact"],
                    )?;
                }
            }
            let exec = |cmd: &[&str]| -> Result<String> {
                let mut args = vec!["exec", "cli", "--", "taskset", "-c", "1"];
                args.extend_from_slice(cmd);
                host.netd(netd, &args)
            };
            let to = format!("{server}:{TCP}");
            let crr: f64 = exec(&[&xtask, "bench-peer", "crr", &to, &secs])?
                .trim()
                .parse()?;
            let iperf = exec(&[
                "iperf3",
                "-c",
                &server,
                "-p",
                &IPERF.to_string(),
                "-t",
                &secs,
                "-J",
                "-O",
                "1",
            ])?;
            let gbps = iperf_gbps(&iperf)?;
            let arm = if i == 0 { "with" } else { "without" };
            eprintln!("run {run} {arm:>7} programs: {gbps:.1} Gbit/s, {crr:.0} conn/s");
            samples[i][0].push(gbps);
            samples[i][1].push(crr);
        }
    }
    Ok(table(&samples))
}

fn server_ip(host: &BenchHost, netd: &Path, name: &str) -> Result<String> {
    let inspect: serde_json::Value = serde_json::from_str(&host.netd(netd, &["inspect", name])?)?;
    inspect[0]["NetworkSettings"]["Networks"]["iso"]["IPAddress"]
        .as_str()
        .map(String::from)
        .context("server address")
}

/// Host-side veths of the containers, from `netd stats`.
fn host_ports(host: &BenchHost, netd: &Path, containers: &[&str]) -> Result<Vec<String>> {
    let stats: serde_json::Value =
        serde_json::from_str(&host.netd(netd, &["stats", "--format", "json"])?)?;
    let rows = stats.as_array().context("stats rows")?;
    containers
        .iter()
        .map(|c| {
            rows.iter()
                .find(|r| r["Container"] == *c)
                .and_then(|r| r["HostInterface"].as_str())
                .map(String::from)
                .with_context(|| format!("host interface of {c}"))
        })
        .collect()
}

fn table(samples: &[[Vec<f64>; 2]; 2]) -> String {
    let mut out = String::from(
        "| container to container, one network | with programs | without | with/without |\n| --- | --- | --- | --- |\n",
    );
    for (m, name) in ["throughput Gbit/s", "new TCP conn/s"].iter().enumerate() {
        let (on, off) = (&samples[0][m], &samples[1][m]);
        let paired: Vec<f64> = on
            .iter()
            .zip(off)
            .filter(|(_, b)| **b > 0.0)
            .map(|(a, b)| a / b)
            .collect();
        let _ = writeln!(
            out,
            "| {name} | {:.1} | {:.1} | {:.3} |",
            median(on.clone()),
            median(off.clone()),
            median(paired)
        );
    }
    out
}
