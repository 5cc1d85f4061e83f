//! What counting costs: published-port throughput from the external client with netd's
//! normal build and with a build whose programs count nothing (interface and published-port
//! counters compiled out), alternating: the daemon is restarted with the other binary, which
//! swaps its programs into the same filters.

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::{Context, Result};

use super::{
    datapath::iperf_gbps,
    host::{BenchHost, UPLINK_IP},
    report::median,
};

const SUBNET: &str = "172.28.0.0/16";
const PORT: &str = "5201";

pub fn run(netd: &Path, without_counters: &Path, runs: usize, secs: u64) -> Result<String> {
    let mut host = BenchHost::start(netd, true)?;
    let ext = host.external.clone().context("uplink topology")?;
    host.netd(netd, &["network", "create", "--subnet", SUBNET, "c"])?;
    host.netd(
        netd,
        &[
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            "c",
            "-p",
            "5201:5201",
            "--",
            "taskset",
            "-c",
            "0",
            "iperf3",
            "-s",
            "-p",
            PORT,
        ],
    )?;
    let secs = secs.to_string();
    // [with counters, without]
    let mut gbps = [Vec::new(), Vec::new()];
    for run in 0..runs {
        let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            host.restart_daemon(if i == 0 { netd } else { without_counters })?;
            std::thread::sleep(Duration::from_secs(2));
            let out = BenchHost::run_in(
                &ext,
                &[
                    "taskset", "-c", "1", "iperf3", "-c", UPLINK_IP, "-p", PORT, "-t", &secs, "-J",
                    "-O", "1",
                ],
            )?;
            gbps[i].push(iperf_gbps(&out)?);
        }
    }
    let paired: Vec<f64> = gbps[0].iter().zip(&gbps[1]).map(|(a, b)| a / b).collect();
    let mut table = String::from(
        "| published port, external client | counters on | counters compiled out | on/off |\n| --- | --- | --- | --- |\n",
    );
    let _ = writeln!(
        table,
        "| throughput Gbit/s | {:.1} | {:.1} | {:.3} |",
        median(gbps[0].clone()),
        median(gbps[1].clone()),
        median(paired)
    );
    Ok(table)
}
