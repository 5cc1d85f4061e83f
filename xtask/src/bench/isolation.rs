//! The cost of isolation and anti-spoofing on the container-to-container path: one client and
//! one server on a netd network, measured in alternating one-second slices with netd's
//! programs on their bridge ports and with the programs taken off (`tc qdisc del ...
//! clsact`); the benchmark pins the daemon's programs and puts them back itself, where the
//! daemon attaches them. Same containers, same veths, same cores, same daemon: only the
//! programs differ.

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::{Context, Result};

use super::{
    datapath::iperf_gbps,
    host::{sh, BenchHost},
    report::median,
};

const SUBNET: &str = "172.29.0.0/16";
const TCP: u16 = 5001;
const UDP: u16 = 5002;
const IPERF: u16 = 5201;

pub fn run(netd: &Path, xtask: &Path, runs: usize, secs: u64) -> Result<String> {
    let host = BenchHost::start(netd, false)?;
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
    let ports: Vec<Port> = host_ports(&host, netd, &["srv", "cli"])?
        .into_iter()
        .map(|name| Port::pin(&host, name))
        .collect::<Result<_>>()?;
    std::thread::sleep(Duration::from_millis(300));

    let slice = SLICE_SECS.to_string();
    // [with, without][throughput Gbit/s, new connections per second]
    let mut samples = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for round in 0..runs * secs as usize {
        // The arms take turns going first; a slice is short, so that the machine's slow
        // drifts (other tenants, frequency) hit both arms of a round alike.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            for port in &ports {
                port.set(&host, i == 0)?;
            }
            std::thread::sleep(Duration::from_millis(100));
            let exec = |cmd: &[&str]| -> Result<String> {
                let mut args = vec!["exec", "cli", "--", "taskset", "-c", "1"];
                args.extend_from_slice(cmd);
                host.netd(netd, &args)
            };
            let to = format!("{server}:{TCP}");
            let crr: f64 = exec(&[&xtask, "bench-peer", "crr", &to, &slice])?
                .trim()
                .parse()?;
            let iperf = exec(&[
                "iperf3",
                "-c",
                &server,
                "-p",
                &IPERF.to_string(),
                "-t",
                &slice,
                "-J",
            ])?;
            let gbps = iperf_gbps(&iperf)?;
            let arm = if i == 0 { "with" } else { "without" };
            eprintln!("round {round} {arm:>7} programs: {gbps:.1} Gbit/s, {crr:.0} conn/s");
            samples[i][0].push(gbps);
            samples[i][1].push(crr);
        }
    }
    Ok(table(&samples))
}

/// Length of one measurement: short, so that the arms alternate faster than the machine's
/// load drifts.
const SLICE_SECS: u64 = 1;
/// Where netd's filters sit on a port (see netd/src/datapath/ports.rs).
const FILTER: [&str; 4] = ["prio", "1", "handle", "0x4e44"];

/// A bridge port with netd's two programs pinned, so that the benchmark takes them off and
/// puts them back in milliseconds, exactly where the daemon attaches them, without a restart.
struct Port {
    name: String,
    /// (direction, pinned program)
    programs: Vec<(&'static str, String)>,
}

impl Port {
    fn pin(host: &BenchHost, name: String) -> Result<Self> {
        let mut programs = Vec::new();
        for direction in ["ingress", "egress"] {
            let shown = BenchHost::run_in(
                host.netns(),
                &["tc", "filter", "show", "dev", &name, direction],
            )?;
            let id = shown
                .split_whitespace()
                .skip_while(|w| *w != "id")
                .nth(1)
                .with_context(|| format!("netd's {direction} program on {name}: {shown}"))?
                .to_string();
            let pin = host.bpffs().join(format!("bench-{name}-{direction}"));
            let pin = pin.display().to_string();
            // From here: `ip netns exec` mounts a /sys of its own, without the bpffs.
            sh("bpftool", &["prog", "pin", "id", &id, &pin])?;
            programs.push((direction, pin));
        }
        Ok(Self { name, programs })
    }

    /// Attaches the programs (`on`) or removes them with their qdisc.
    fn set(&self, host: &BenchHost, on: bool) -> Result<()> {
        // nsenter, not `ip netns exec`: tc must see the host's bpffs to find the pins.
        let net = format!("--net=/run/netns/{}", host.netns());
        let tc = |args: &[&str]| {
            let mut cmd = vec![net.as_str(), "tc"];
            cmd.extend_from_slice(args);
            sh("nsenter", &cmd)
        };
        let _ = tc(&["qdisc", "del", "dev", &self.name, "clsact"]);
        if !on {
            return Ok(());
        }
        tc(&["qdisc", "add", "dev", &self.name, "clsact"])?;
        for (direction, pin) in &self.programs {
            let mut args = vec![
                "filter", "add", "dev", &self.name, direction, "protocol", "all",
            ];
            args.extend_from_slice(&FILTER);
            args.extend_from_slice(&["bpf", "direct-action", "pinned", pin]);
            tc(&args)?;
        }
        Ok(())
    }
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
