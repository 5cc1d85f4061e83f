//! Virtual IPs and the embedded DNS: new TCP connections per second from one container to a
//! VIP alias over three backends vs to one backend's address directly (alternating runs,
//! same client, same servers), and A queries per second to the network's DNS server.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result};

use super::{
    host::BenchHost,
    report::{raw, spread},
};

const SUBNET: &str = "172.30.0.0/16";
const GATEWAY: &str = "172.30.0.1";
const TCP: u16 = 5001;
const UDP: u16 = 5002;
const BACKENDS: [&str; 3] = ["web1", "web2", "web3"];
/// Closed-loop DNS clients in the one client container.
const DNS_THREADS: &str = "4";

pub fn run(netd: &Path, xtask: &Path, runs: usize, secs: u64) -> Result<String> {
    let host = BenchHost::start(netd, false)?;
    host.netd(
        netd,
        &[
            "network",
            "create",
            "--subnet",
            SUBNET,
            "--alias-mode",
            "vip",
            "svc",
        ],
    )?;
    let xtask = xtask.display().to_string();
    let (tcp, udp) = (TCP.to_string(), UDP.to_string());
    for name in BACKENDS {
        host.netd(
            netd,
            &[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "svc",
                "--alias",
                "web",
                "--",
                "taskset",
                "-c",
                "0",
                &xtask,
                "bench-peer",
                "serve",
                &tcp,
                &udp,
                "3600",
            ],
        )?;
    }
    host.netd(
        netd,
        &[
            "run",
            "-d",
            "--name",
            "cli",
            "--network",
            "svc",
            "--",
            "sleep",
            "3600",
        ],
    )?;
    let alias: serde_json::Value =
        serde_json::from_str(&host.netd(netd, &["alias", "inspect", "--network", "svc", "web"])?)?;
    let vip = alias["VIP"].as_str().context("VIP of web")?.to_string();
    let inspect: serde_json::Value =
        serde_json::from_str(&host.netd(netd, &["inspect", BACKENDS[0]])?)?;
    let direct = inspect[0]["NetworkSettings"]["Networks"]["svc"]["IPAddress"]
        .as_str()
        .context("backend address")?
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(500));

    let secs = secs.to_string();
    let exec = |cmd: &[&str]| -> Result<f64> {
        let mut args = vec!["exec", "cli", "--", "taskset", "-c", "1", xtask.as_str()];
        args.push("bench-peer");
        args.extend_from_slice(cmd);
        Ok(host.netd(netd, &args)?.trim().parse()?)
    };
    // [vip, direct]
    let mut crr = [Vec::new(), Vec::new()];
    let mut dns = Vec::new();
    for run in 0..runs {
        let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let to = format!("{}:{TCP}", if i == 0 { &vip } else { &direct });
            crr[i].push(exec(&["crr", &to, &secs])?);
        }
        let server = format!("{GATEWAY}:53");
        dns.push(exec(&["dns-qps", &server, "web1.svc", DNS_THREADS, &secs])?);
    }
    let paired: Vec<f64> = crr[0].iter().zip(&crr[1]).map(|(v, d)| v / d).collect();
    let mut out = String::from("| metric | VIP alias (3 backends) | one backend directly | VIP/direct |\n| --- | --- | --- | --- |\n");
    let _ = writeln!(
        out,
        "| new TCP conn/s, median (min-max) | {} | {} | {} |",
        spread(&crr[0], 1),
        spread(&crr[1], 1),
        spread(&paired, 3)
    );
    let _ = writeln!(
        out,
        "\n| embedded DNS, one container, {DNS_THREADS} closed-loop clients | A queries/s, median (min-max) |\n| --- | --- |\n| `web1.svc` | {} |",
        spread(&dns, 0)
    );
    let _ = writeln!(
        out,
        "\nraw samples: VIP {}; direct {}; VIP/direct {}; DNS {}",
        raw(&crr[0], 1),
        raw(&crr[1], 1),
        raw(&paired, 3),
        raw(&dns, 0)
    );
    Ok(out)
}
