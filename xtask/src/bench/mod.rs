//! `cargo xtask bench`: performance figures, measured in throwaway namespaces. Nothing
//! touches the machine's own networking.

mod counters;
mod datapath;
mod flood;
pub mod flood_peer;
mod gc;
mod host;
mod isolation;
mod latency;
mod macvlan;
mod metrics;
mod netfilter;
pub mod peer;
mod publish;
mod report;
mod restart;
mod runtimes;
mod side;
mod vip;

use std::path::Path;

use anyhow::Result;

pub struct Options {
    pub suites: Vec<Suite>,
    pub containers: usize,
    pub counts: Vec<u32>,
    pub runs: usize,
    pub secs: u64,
}

/// The parts of the benchmark, run in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// `netd run` / `rm` latency.
    Latency,
    /// Published ports: direct vs netd vs iptables vs nftables at N other ports.
    Datapath,
    /// The time to publish ports: N at once on an existing container, and one more
    /// container with a port while N are published; netd vs iptables vs nftables.
    Publish,
    /// Container to container with and without the isolation programs.
    Isolation,
    /// New connections to a VIP alias vs to a backend directly, and DNS queries per second.
    Vip,
    /// The time of a Prometheus scrape with 1,000 containers and 10,000 published ports,
    /// the API's latency during scrapes, and during a collection of a full conntrack table.
    Metrics,
    /// Small-packet rate through a published port with the datapath's counters and without.
    Counters,
    /// The bridge-port programs' own time per packet, by BPF_PROG_TEST_RUN.
    Programs,
    /// Real dockerd: `docker run -p` and published-port connections on a netd network vs
    /// Docker's bridge driver (iptables), at 0 and 1,000 other published ports.
    Runtimes,
    /// Conntrack under a flood of new flows from spoofed sources: idle established
    /// connections kept and new connections per second, netd vs iptables' conntrack.
    Flood,
    /// SIGKILL and restart with 1,000 containers and 10,000 published ports: the time to
    /// serve the API again and the longest stall of an established flow, against an empty
    /// daemon's restart and a window without one.
    Restart,
    /// A container's throughput and new connections to a LAN host: macvlan vs a netd
    /// bridge network in routed gateway mode, side by side.
    Macvlan,
    /// One host's view of a simulated cluster (1,000 nodes, 100,000 overlay endpoints in
    /// etcd): convergence from a list and through a watch, memory, etcd traffic.
    Cluster,
}

pub fn run(netd: &Path, xtask: &Path, opts: &Options) -> Result<()> {
    let dir = crate::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    if opts.suites.contains(&Suite::Latency) {
        latency::run(netd, opts.containers)?;
    }
    if opts.suites.contains(&Suite::Datapath) {
        published_ports(netd, xtask, opts, &dir)?;
    }
    if opts.suites.contains(&Suite::Publish) {
        println!(
            "\npublishing ports: netd vs iptables vs nftables ({} runs each, median (min-max))",
            opts.runs
        );
        let table = publish::run(netd, xtask, &opts.counts, opts.runs)?;
        println!("\n{table}");
        std::fs::write(dir.join("publish.md"), &table)?;
    }
    if opts.suites.contains(&Suite::Isolation) {
        println!(
            "\nisolation and anti-spoofing, container to container, two pairs side by side ({} rounds of {} s windows, medians)",
            opts.runs, opts.secs
        );
        let table = isolation::run(netd, xtask, opts.runs, opts.secs)?;
        println!("\n{table}");
        std::fs::write(dir.join("isolation.md"), &table)?;
    }
    if opts.suites.contains(&Suite::Vip) {
        println!(
            "\nvirtual IPs and the embedded DNS ({} runs of {} s each, medians)",
            opts.runs, opts.secs
        );
        let table = vip::run(netd, xtask, opts.runs, opts.secs)?;
        println!("\n{table}");
        std::fs::write(dir.join("vip.md"), &table)?;
    }
    if opts.suites.contains(&Suite::Counters) {
        println!(
            "\ncounters on vs compiled out, 64-byte UDP datagrams through a published port, two labs side by side ({} rounds of {} s windows)",
            opts.runs, opts.secs
        );
        let without = build_without_counters()?;
        let table = counters::run(netd, &without, xtask, opts.runs, opts.secs)?;
        println!("\n{table}");
        std::fs::write(dir.join("counters.md"), &table)?;
    }
    if opts.suites.contains(&Suite::Programs) {
        println!(
            "\nprograms, ns per packet (BPF_PROG_TEST_RUN: mean of 1,000,000 repeats where the program leaves its packet as it is, median of 20,000 single runs for every case; best of 5 tries)"
        );
        let table = programs()?;
        println!("\n{table}");
        std::fs::write(dir.join("programs.md"), &table)?;
    }
    if opts.suites.contains(&Suite::Cluster) {
        let table = bench_table("cluster_scale")?;
        println!("\n{table}");
        std::fs::write(dir.join("cluster.md"), &table)?;
    }
    if opts.suites.contains(&Suite::Runtimes) {
        println!(
            "\nreal dockerd: netd's plugin network vs Docker's bridge driver ({} rounds, {} s connection windows, median (min-max); ratios paired by round)",
            opts.runs, opts.secs
        );
        let table = runtimes::run(netd, xtask, &[0, 1000], opts.runs, opts.secs)?;
        println!("\n{table}");
        std::fs::write(dir.join("runtimes.md"), &table)?;
    }
    if opts.suites.contains(&Suite::Flood) {
        println!(
            "\nconntrack under a flood: netd vs iptables' conntrack ({} rounds, arms alternating)",
            opts.runs
        );
        let table = flood::run(netd, xtask, opts.runs)?;
        println!("\n{table}");
        std::fs::write(dir.join("flood.md"), &table)?;
    }
    if opts.suites.contains(&Suite::Restart) {
        println!(
            "\nrestart after SIGKILL: 1,000 containers and 10,000 published ports vs none ({} rounds, median (min-max))",
            opts.runs
        );
        let table = restart::run(netd, xtask, opts.runs)?;
        println!("\n{table}");
        std::fs::write(dir.join("restart.md"), &table)?;
    }
    if opts.suites.contains(&Suite::Macvlan) {
        println!(
            "\nmacvlan vs a routed bridge network, container to LAN host ({} rounds of {} s windows, side by side, median (min-max); ratios paired by round)",
            opts.runs, opts.secs
        );
        let table = macvlan::run(netd, xtask, opts.runs, opts.secs)?;
        println!("\n{table}");
        std::fs::write(dir.join("macvlan.md"), &table)?;
    }
    if opts.suites.contains(&Suite::Metrics) {
        println!("\nPrometheus scrape with 1,000 containers and 10,000 published ports");
        let table = metrics::run(netd)?;
        println!("\n{table}");
        println!("\nthe API while conntrack is collected: a full pending table vs an empty one");
        let gc = gc::run(netd, xtask)?;
        println!("\n{gc}");
        std::fs::write(dir.join("metrics.md"), format!("{table}\n{gc}"))?;
    }
    Ok(())
}

fn published_ports(netd: &Path, xtask: &Path, opts: &Options, dir: &Path) -> Result<()> {
    println!(
        "\npublished-port datapath: direct vs netd vs iptables vs nftables ({} rounds of {} s runs, median (min-max); ratios paired by round)",
        opts.runs, opts.secs
    );
    let settings = datapath::Settings {
        counts: opts.counts.clone(),
        runs: opts.runs,
        secs: opts.secs,
    };
    let figures = datapath::run(netd, xtask, &settings)?;
    let table = figures.table();
    let raw = figures.raw_samples();
    println!("\n{table}\nraw samples:\n{raw}");
    std::fs::write(dir.join("datapath.md"), format!("{table}\n{raw}"))?;
    figures.plot(dir)
}

/// The table of `tests/benches/programs.rs` (it loads the object into a namespace of its own).
fn programs() -> Result<String> {
    bench_table("programs")
}

/// The markdown table a bench of `tests/benches/` prints.
fn bench_table(name: &str) -> Result<String> {
    let mut cargo = crate::cmd::cargo();
    cargo
        .args(["bench", "-p", "integration-tests", "--bench", name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    let out = cargo.output()?;
    anyhow::ensure!(out.status.success(), "the {name} benchmark failed");
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// The release daemon built with the counters compiled out of its programs, in a target dir of
/// its own (`target/no-counters`).
fn build_without_counters() -> Result<std::path::PathBuf> {
    let dir = crate::workspace_root().join("target/no-counters");
    let mut cargo = crate::cmd::cargo();
    cargo
        .args(["build", "--release", "-p", "netd", "--target-dir"])
        .arg(&dir)
        .env("NETD_EBPF_FEATURES", "no-counters");
    crate::cmd::run(cargo)?;
    Ok(dir.join("release/netd"))
}
