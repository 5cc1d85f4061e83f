//! Published-port datapath, four arms on the same path in the same run: the external client
//! reaching the container directly (routed, no translation, netd's programs attached), through
//! netd's published port, and through Docker's iptables rules or one nftables map in labs
//! with nothing of netd in them; each with N other published ports installed.

use std::path::Path;

use anyhow::{Context, Result};

use super::{
    host::{BenchHost, UPLINK_IP},
    netfilter::{NetfilterLab, Rules},
    report::{Figures, Mode, MODES},
};

/// Container ports of the servers, and the host ports every arm publishes them on (each lab
/// is its own namespace, so all use the same addresses and ports).
const TCP: u16 = 5001;
const UDP: u16 = 5002;
const IPERF: u16 = 5201;
const HOST_OFFSET: u16 = 3000; // 8001, 8002, 8201
const SERVER_IP: &str = "172.30.0.2";
const FILLER_BASE: u32 = 10_000;
/// Client and servers on different cores (servers on 0: `BenchHost::start_servers`), so
/// that they do not take turns on one.
const CLIENT_CPU: [&str; 3] = ["taskset", "-c", "1"];

pub struct Settings {
    pub counts: Vec<u32>,
    pub runs: usize,
    pub secs: u64,
}

/// The three labs and where each arm's client runs.
struct Labs {
    netd: BenchHost,
    iptables: NetfilterLab,
    nftables: NetfilterLab,
}

impl Labs {
    fn client_ns(&self, mode: Mode) -> &str {
        match mode {
            Mode::Direct | Mode::Netd => self.netd.external.as_deref().expect("uplink"),
            Mode::Iptables => &self.iptables.external,
            Mode::Nftables => &self.nftables.external,
        }
    }
}

pub fn run(netd: &Path, xtask: &Path, settings: &Settings) -> Result<Figures> {
    let host = BenchHost::start(netd, true)?;
    let ext = host.external.clone().context("uplink topology")?;
    // Routed, masquerade off: the direct case routes the client to the container as it is.
    host.netd(
        netd,
        &[
            "network",
            "create",
            "--subnet",
            "172.30.0.0/16",
            "-o",
            "com.docker.network.bridge.enable_ip_masquerade=false",
            "-o",
            "gateway-mode=routed",
            "bench",
        ],
    )?;
    let publish = |p: u16, proto: &str| format!("{}:{p}/{proto}", p + HOST_OFFSET);
    let (tcp, udp, iperf) = (
        publish(TCP, "tcp"),
        publish(UDP, "udp"),
        publish(IPERF, "tcp"),
    );
    host.start_servers(
        netd,
        xtask,
        "bench",
        &["--ip", SERVER_IP, "-p", &tcp, "-p", &udp, "-p", &iperf],
        (TCP, UDP, IPERF),
    )?;
    BenchHost::run_in(
        &ext,
        &["ip", "route", "add", "172.30.0.0/16", "via", UPLINK_IP],
    )?;
    let ports = (TCP, UDP, IPERF);
    let labs = Labs {
        netd: host,
        iptables: NetfilterLab::start(Rules::Iptables, xtask, SERVER_IP, ports)?,
        nftables: NetfilterLab::start(Rules::Nftables, xtask, SERVER_IP, ports)?,
    };

    let mut figures = Figures::default();
    for &n in &settings.counts {
        if n > 0 {
            let range = format!(
                "{FILLER_BASE}-{}:{FILLER_BASE}-{}",
                FILLER_BASE + n - 1,
                FILLER_BASE + n - 1
            );
            labs.netd.netd(
                netd,
                &[
                    "create",
                    "--name",
                    "filler",
                    "--network",
                    "bench",
                    "-p",
                    &range,
                ],
            )?;
        }
        for lab in [&labs.iptables, &labs.nftables] {
            lab.clear()?;
            let fillers: Vec<(&str, u32, u32)> = (FILLER_BASE..FILLER_BASE + n)
                .map(|p| ("tcp", p, p))
                .collect();
            lab.publish(&fillers)?;
            // The measured ports come after the others, as a container started last does.
            let measured = [("tcp", TCP), ("udp", UDP), ("tcp", IPERF)]
                .map(|(proto, p)| (proto, u32::from(p + HOST_OFFSET), u32::from(p)));
            lab.publish(&measured)?;
        }
        wait_for_servers(&labs, xtask)?;
        measure(&labs, xtask, n, settings, &mut figures)?;
        if n > 0 {
            labs.netd.netd(netd, &["rm", "-f", "filler"])?;
        }
    }
    Ok(figures)
}

fn target(mode: Mode, port: u16) -> String {
    match mode {
        Mode::Direct => format!("{SERVER_IP}:{port}"),
        _ => format!("{UPLINK_IP}:{}", port + HOST_OFFSET),
    }
}

/// Waits until every arm's TCP server answers (a few request/response rounds each).
fn wait_for_servers(labs: &Labs, xtask: &Path) -> Result<()> {
    let xtask = xtask.display().to_string();
    for mode in MODES {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let to = target(mode, TCP);
        while BenchHost::run_in(
            labs.client_ns(mode),
            &[&xtask, "bench-peer", "rr", &to, "1"],
        )
        .is_err()
        {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the {mode:?} server at {to} never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Each round runs every arm once, back to back, so that drift of the machine hits them
/// alike and the ratios of one round are paired.
fn measure(labs: &Labs, xtask: &Path, n: u32, s: &Settings, figures: &mut Figures) -> Result<()> {
    let xtask = xtask.display().to_string();
    let secs = s.secs.to_string();
    for (round, mode) in (0..s.runs).flat_map(|r| MODES.map(|m| (r, m))) {
        let ext = labs.client_ns(mode);
        let peer = |what: &str, port: u16| -> Result<String> {
            BenchHost::run_in(
                ext,
                &[
                    CLIENT_CPU[0],
                    CLIENT_CPU[1],
                    CLIENT_CPU[2],
                    &xtask,
                    "bench-peer",
                    what,
                    &target(mode, port),
                    &secs,
                ],
            )
        };
        let crr: f64 = peer("crr", TCP)?.trim().parse()?;
        let rr = peer("rr", TCP)?;
        let rr: Vec<f64> = rr
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let udp: f64 = peer("udp-flows", UDP)?.trim().parse()?;
        let (ip, port) = target(mode, IPERF)
            .split_once(':')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .expect("ip:port");
        let iperf = BenchHost::run_in(
            ext,
            &[
                CLIENT_CPU[0],
                CLIENT_CPU[1],
                CLIENT_CPU[2],
                "iperf3",
                "-c",
                &ip,
                "-p",
                &port,
                "-t",
                &secs,
                "-J",
                // Leave TCP slow start out of the figure.
                "-O",
                "1",
            ],
        )?;
        let gbps = iperf_gbps(&iperf)?;
        let values = [gbps, rr[0], rr[1], rr[2], crr, udp];
        println!("  N={n} round {round} {mode:?}: {values:.1?}");
        figures.add(mode, n, values);
    }
    Ok(())
}

pub fn iperf_gbps(json: &str) -> Result<f64> {
    let at = json
        .find("\"sum_received\"")
        .context("iperf3 printed no sum_received")?;
    let rest = &json[at..];
    let bps = rest
        .split("\"bits_per_second\":")
        .nth(1)
        .and_then(|v| v.split([',', '}']).next())
        .context("no bits_per_second")?;
    Ok(bps.trim().parse::<f64>()? / 1e9)
}
