//! Published-port datapath: the external client reaching a container directly (routed, no
//! translation), through netd's published port, and through Docker-style iptables DNAT, with
//! N other published ports installed, on the same path in the same run.

use std::{path::Path, time::Instant};

use anyhow::{bail, Context, Result};

use super::{
    host::{BenchHost, UPLINK_IP},
    report::{Figures, Mode},
};

/// Container ports of the servers, and the host ports netd and iptables publish them on.
const TCP: u16 = 5001;
const UDP: u16 = 5002;
const IPERF: u16 = 5201;
const NETD_OFFSET: u16 = 3000; // 8001, 8002, 8201
const IPT_OFFSET: u16 = 4000; // 9001, 9002, 9201
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
    let publish = |p: u16, proto: &str| format!("{}:{p}/{proto}", p + NETD_OFFSET);
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
    std::thread::sleep(std::time::Duration::from_millis(300));

    let mut figures = Figures::default();
    for &n in &settings.counts {
        let t = Instant::now();
        if n > 0 {
            let range = format!(
                "{FILLER_BASE}-{}:{FILLER_BASE}-{}",
                FILLER_BASE + n - 1,
                FILLER_BASE + n - 1
            );
            host.netd(
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
        figures.publish_ms(Mode::Netd, n, t.elapsed().as_secs_f64() * 1e3);
        measure(
            &ext,
            xtask,
            &[Mode::Direct, Mode::Netd],
            n,
            settings,
            &mut figures,
        )?;
        if n > 0 {
            host.netd(netd, &["rm", "-f", "filler"])?;
        }
    }
    for &n in &settings.counts {
        let ms = iptables_publish(host.netns(), n)?;
        figures.publish_ms(Mode::Iptables, n, ms);
        measure(&ext, xtask, &[Mode::Iptables], n, settings, &mut figures)?;
    }
    BenchHost::run_in(host.netns(), &["iptables", "-t", "nat", "-F"])?;
    BenchHost::run_in(host.netns(), &["iptables", "-t", "nat", "-X"])?;
    Ok(figures)
}

fn target(mode: Mode, port: u16) -> String {
    match mode {
        Mode::Direct => format!("{SERVER_IP}:{port}"),
        Mode::Netd => format!("{UPLINK_IP}:{}", port + NETD_OFFSET),
        Mode::Iptables => format!("{UPLINK_IP}:{}", port + IPT_OFFSET),
    }
}

/// Runs of the modes alternate, so that drift of the machine hits them alike.
fn measure(
    ext: &str,
    xtask: &Path,
    modes: &[Mode],
    n: u32,
    s: &Settings,
    figures: &mut Figures,
) -> Result<()> {
    let xtask = xtask.display().to_string();
    let secs = s.secs.to_string();
    for mode in (0..s.runs).flat_map(|_| modes.iter().copied()) {
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
        figures.add(mode, n, [gbps, rr[0], rr[1], rr[2], crr, udp]);
    }
    println!("  {modes:?} at N={n}: done");
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

/// Docker's way: DNAT rules in a chain jumped to from PREROUTING (for local destinations),
/// MASQUERADE in POSTROUTING, with `n` other published ports ahead of the measured ones.
/// Returns how long iptables-restore took.
fn iptables_publish(netns: &str, n: u32) -> Result<f64> {
    let mut rules = String::from("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:NETD-BENCH - [0:0]\n");
    rules.push_str("-A PREROUTING -m addrtype --dst-type LOCAL -j NETD-BENCH\n");
    rules.push_str("-A POSTROUTING -s 172.30.0.0/16 ! -o nd-bench -j MASQUERADE\n");
    for i in 0..n {
        let port = FILLER_BASE + i;
        rules.push_str(&format!("-A NETD-BENCH -p tcp -m tcp --dport {port} -j DNAT --to-destination 172.30.0.3:{port}\n"));
    }
    for (proto, port) in [("tcp", TCP), ("udp", UDP), ("tcp", IPERF)] {
        rules.push_str(&format!(
            "-A NETD-BENCH -p {proto} -m {proto} --dport {} -j DNAT --to-destination {SERVER_IP}:{port}\n",
            port + IPT_OFFSET
        ));
    }
    rules.push_str("COMMIT\n");
    let t = Instant::now();
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "iptables-restore"])
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(rules.as_bytes())?;
    if !child.wait()?.success() {
        bail!("iptables-restore failed");
    }
    Ok(t.elapsed().as_secs_f64() * 1e3)
}
