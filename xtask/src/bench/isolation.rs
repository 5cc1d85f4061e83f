//! The cost of isolation and anti-spoofing on the container-to-container path, measured side
//! by side: two client/server pairs on one netd network load the machine at the same time,
//! one pair with netd's programs on its bridge ports (its rules, counters and the direct path
//! between members) and the other with them taken off (`tc qdisc del ... clsact`: the plain
//! bridge), then the other way round. Both pairs see the same moment of
//! this shared, noisy machine (single runs swing by ±20 % here), so the ratio of the two is
//! the programs' cost. All four processes share one core: the kernel's work for a pair's
//! packets runs in that pair's processes' time, which the scheduler splits evenly, so the
//! pair whose packets cost more moves less (and no flow is spread over two cores, which
//! reorders its segments on veths). A round with both pairs' programs off shows what the
//! method reads when there is no difference.

use std::{cell::Cell, fmt::Write as _, path::Path, time::Duration};

use anyhow::{Context, Result};

use super::{
    host::{sh, BenchHost},
    report::{raw, spread},
};

const SUBNET: &str = "172.29.0.0/16";
const TCP: u16 = 5001;
const UDP: u16 = 5002;
const SINK: u16 = 5003;

/// The core every process of the benchmark runs on.
const CORE: &str = "1";
/// What is measured, each with both pairs at once.
const LOADS: [(&str, u16); 2] = [("stream", SINK), ("crr", TCP)];

pub fn run(netd: &Path, xtask: &Path, runs: usize, secs: u64) -> Result<String> {
    let host = BenchHost::start(netd, false)?;
    host.netd(netd, &["network", "create", "--subnet", SUBNET, "iso"])?;
    let pairs = [
        Pair::start(&host, netd, xtask, 1)?,
        Pair::start(&host, netd, xtask, 2)?,
    ];
    std::thread::sleep(Duration::from_millis(300));

    // [throughput, new connections][with, without, with/without, control ratio]
    let mut samples: [[Vec<f64>; 4]; 2] = Default::default();
    for round in 0..runs {
        // (programs on pair 0, programs on pair 1): each pair with them once, then neither.
        for arms in [(true, false), (false, true), (false, false)] {
            pairs[0].set_programs(&host, arms.0)?;
            pairs[1].set_programs(&host, arms.1)?;
            std::thread::sleep(Duration::from_millis(100));
            for (m, (load, port)) in LOADS.iter().enumerate() {
                let [a, b] = side_by_side(&host, netd, xtask, &pairs, load, *port, secs)?;
                let row = &mut samples[m];
                match arms {
                    (true, false) | (false, true) => {
                        let (with, without) = if arms.0 { (a, b) } else { (b, a) };
                        eprintln!("round {round} {load:>6}: with {with:.2}, without {without:.2}");
                        row[0].push(with);
                        row[1].push(without);
                        row[2].push(with / without);
                    }
                    _ => {
                        // Alternating which pair is on top, as the measured arms do.
                        let ratio = if round % 2 == 0 { a / b } else { b / a };
                        eprintln!("round {round} {load:>6}: neither, {a:.2} and {b:.2}");
                        row[3].push(ratio);
                    }
                }
            }
        }
    }
    Ok(table(&samples))
}

/// Runs `load` from both pairs' clients at once over one window; their rates, pair by pair.
fn side_by_side(
    host: &BenchHost,
    netd: &Path,
    xtask: &Path,
    pairs: &[Pair; 2],
    load: &str,
    port: u16,
    secs: u64,
) -> Result<[f64; 2]> {
    let clients: Vec<(&str, String)> = pairs
        .iter()
        .map(|p| (p.client.as_str(), format!("{}:{port}", p.server_ip)))
        .collect();
    let rates = super::side::side_by_side(host, netd, xtask, &clients, load, secs, CORE)?;
    Ok([rates[0], rates[1]])
}

/// A client container and a server container (TCP request/response and a sink),
/// with the programs of their two bridge ports pinned.
struct Pair {
    client: String,
    server_ip: String,
    ports: Vec<Port>,
}

impl Pair {
    fn start(host: &BenchHost, netd: &Path, xtask: &Path, n: usize) -> Result<Self> {
        let (server, client) = (format!("srv{n}"), format!("cli{n}"));
        let xtask = xtask.display().to_string();
        let (tcp, udp, sink) = (TCP.to_string(), UDP.to_string(), SINK.to_string());
        host.netd(
            netd,
            &[
                "run",
                "-d",
                "--name",
                &server,
                "--network",
                "iso",
                "--",
                "taskset",
                "-c",
                CORE,
                &xtask,
                "bench-peer",
                "serve",
                &tcp,
                &udp,
                "3600",
                "--sink",
                &sink,
            ],
        )?;
        host.netd(
            netd,
            &[
                "run",
                "-d",
                "--name",
                &client,
                "--network",
                "iso",
                "--",
                "sleep",
                "3600",
            ],
        )?;
        let server_ip = server_ip(host, netd, &server)?;
        let ports = host_ports(host, netd, &[&server, &client])?
            .into_iter()
            .map(|name| Port::pin(host, name))
            .collect::<Result<_>>()?;
        Ok(Self {
            client,
            server_ip,
            ports,
        })
    }

    fn set_programs(&self, host: &BenchHost, on: bool) -> Result<()> {
        self.ports.iter().try_for_each(|p| p.set(host, on))
    }
}

/// Where netd's filters sit on a port (see netd/src/datapath/ports.rs).
const FILTER: [&str; 4] = ["prio", "1", "handle", "0x4e44"];

/// A bridge port with netd's two programs pinned, so that the benchmark takes them off and
/// puts them back in milliseconds, exactly where the daemon attaches them, without a restart.
struct Port {
    name: String,
    /// (direction, pinned program)
    programs: Vec<(&'static str, String)>,
    attached: Cell<bool>,
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
        Ok(Self {
            name,
            programs,
            attached: Cell::new(true),
        })
    }

    /// Attaches the programs (`on`) or removes them with their qdisc.
    fn set(&self, host: &BenchHost, on: bool) -> Result<()> {
        if self.attached.get() == on {
            return Ok(());
        }
        // nsenter, not `ip netns exec`: tc must see the host's bpffs to find the pins.
        let net = format!("--net=/run/netns/{}", host.netns());
        let tc = |args: &[&str]| {
            let mut cmd = vec![net.as_str(), "tc"];
            cmd.extend_from_slice(args);
            sh("nsenter", &cmd)
        };
        if !on {
            tc(&["qdisc", "del", "dev", &self.name, "clsact"])?;
            self.attached.set(false);
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
        self.attached.set(true);
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

fn table(samples: &[[Vec<f64>; 4]; 2]) -> String {
    let mut out = String::from(
        "| container to container, one network, per pair | with programs | without | with/without | neither: pair/pair |\n| --- | --- | --- | --- | --- |\n",
    );
    for (m, name) in ["throughput Gbit/s", "new TCP conn/s"].iter().enumerate() {
        let [with, without, ratios, control] = &samples[m];
        let _ = writeln!(
            out,
            "| {name}, median (min-max) | {} | {} | {} | {} |",
            spread(with, 2),
            spread(without, 2),
            spread(ratios, 3),
            spread(control, 3),
        );
    }
    out.push_str("\nraw samples:\n");
    for (m, name) in ["throughput Gbit/s", "new TCP conn/s"].iter().enumerate() {
        let [with, without, ratios, control] = &samples[m];
        let _ = writeln!(
            out,
            "{name}: with {}; without {}; with/without {}; neither {}",
            raw(with, 2),
            raw(without, 2),
            raw(ratios, 3),
            raw(control, 3)
        );
    }
    out
}
