//! macvlan against a netd bridge network in routed gateway mode: a container's throughput
//! and new TCP connections per second to a machine on the LAN (the uplink's external
//! namespace, the LAN host here), one container of each kind side by side over the same
//! window. The macvlan container's frames leave straight through its parent (`up0`); the
//! bridge container's cross its port programs, the bridge and the host's routing first.
//! A control pair (two macvlan containers) shows what the method reads when both paths are
//! the same. Every process runs on one core, the LAN host's server too, so that the path
//! whose packets cost more moves less.

use std::{
    fmt::Write as _,
    path::Path,
    process::{Child, Command, Stdio},
};

use anyhow::{Context, Result};

use super::{
    host::{BenchHost, CLIENT_IP},
    report::{raw, spread},
    side::side_by_side,
};

const LAN: &str = "10.98.0.0/24";
const RANGE: &str = "10.98.0.64/28";
const ROUTED: &str = "172.29.77.0/24";
const TCP: u16 = 5001;
const UDP: u16 = 5002;
const SINK: u16 = 5003;
const CORE: &str = "1";
const LOADS: [(&str, u16); 2] = [("stream", SINK), ("crr", TCP)];

/// The LAN host's peer server, stopped on drop.
struct LanServer(Child);

impl Drop for LanServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(netd: &Path, xtask: &Path, runs: usize, secs: u64) -> Result<String> {
    let host = BenchHost::start(netd, true)?;
    let lan_host = host
        .external
        .clone()
        .context("the uplink's external namespace")?;
    let (tcp, udp, sink) = (TCP.to_string(), UDP.to_string(), SINK.to_string());
    let _server = LanServer(
        Command::new("ip")
            .args(["netns", "exec", &lan_host, "taskset", "-c", CORE])
            .arg(xtask)
            .args(["bench-peer", "serve", &tcp, &udp, "3600", "--sink", &sink])
            .stdout(Stdio::null())
            .spawn()
            .context("the LAN host's server")?,
    );
    let create = |args: &[&str]| host.netd(netd, &[&["network", "create"], args].concat());
    create(&[
        "-d",
        "macvlan",
        "--subnet",
        LAN,
        "--ip-range",
        RANGE,
        "--gateway",
        CLIENT_IP,
        "-o",
        "parent=up0",
        "lan",
    ])?;
    create(&[
        "--subnet",
        ROUTED,
        "-o",
        "gateway-mode=routed",
        "-o",
        "com.docker.network.bridge.enable_ip_masquerade=false",
        "routed",
    ])?;
    for (name, network) in [("mv", "lan"), ("mv2", "lan"), ("br", "routed")] {
        host.netd(
            netd,
            &[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                network,
                "--",
                "sleep",
                "3600",
            ],
        )?;
    }
    let to = |port: u16| format!("{CLIENT_IP}:{port}");
    // A first short window: ARP, the server's accept loop and the caches warm up.
    for (load, port) in LOADS {
        let warm = [("mv", to(port)), ("br", to(port))];
        side_by_side(&host, netd, xtask, &warm, load, 1, CORE)?;
    }
    // [throughput, new connections][macvlan, bridge, macvlan/bridge, control]
    let mut samples: [[Vec<f64>; 4]; 2] = Default::default();
    for round in 0..runs {
        for (m, (load, port)) in LOADS.iter().enumerate() {
            let pair = [("mv", to(*port)), ("br", to(*port))];
            let rates = side_by_side(&host, netd, xtask, &pair, load, secs, CORE)?;
            let (mv, br) = (rates[0], rates[1]);
            eprintln!("round {round} {load:>6}: macvlan {mv:.2}, bridge {br:.2}");
            let row = &mut samples[m];
            row[0].push(mv);
            row[1].push(br);
            row[2].push(mv / br);
            let control = [("mv", to(*port)), ("mv2", to(*port))];
            let rates = side_by_side(&host, netd, xtask, &control, load, secs, CORE)?;
            eprintln!(
                "round {round} {load:>6}: control {:.2} and {:.2}",
                rates[0], rates[1]
            );
            row[3].push(rates[0] / rates[1]);
        }
    }
    Ok(table(&samples))
}

fn table(samples: &[[Vec<f64>; 4]; 2]) -> String {
    let mut out = String::from(
        "| container to LAN host, side by side | macvlan | bridge, routed | macvlan/bridge | control: macvlan/macvlan |\n| --- | --- | --- | --- | --- |\n",
    );
    let names = ["throughput Gbit/s", "new TCP conn/s"];
    for (m, name) in names.iter().enumerate() {
        let [mv, br, ratio, control] = &samples[m];
        let _ = writeln!(
            out,
            "| {name}, median (min-max) | {} | {} | {} | {} |",
            spread(mv, 2),
            spread(br, 2),
            spread(ratio, 3),
            spread(control, 3),
        );
    }
    out.push_str("\nraw samples:\n");
    for (m, name) in names.iter().enumerate() {
        let [mv, br, ratio, control] = &samples[m];
        let _ = writeln!(
            out,
            "{name}: macvlan {}; bridge {}; macvlan/bridge {}; control {}",
            raw(mv, 2),
            raw(br, 2),
            raw(ratio, 3),
            raw(control, 3)
        );
    }
    out
}
