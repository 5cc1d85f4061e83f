//! Restart after SIGKILL on a busy host: 1,000 containers (one publishing a range, 10,000
//! published ports in all) and an established connection through a published port. Each
//! round SIGKILLs the daemon and starts it again, timing the wait until its API answers
//! (state loaded, every port adopted, reconcile done), beside the same restart of an empty
//! daemon; and the longest time between two answers on the connection across the restart,
//! beside a window of the same length without one.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result};

use super::{
    host::{api, BenchHost, UPLINK_IP},
    report::{median, raw, spread},
};

const SUBNET: &str = "172.30.0.0/16";
const CONTAINERS: usize = 1_000;
const PORTS: u32 = 10_000;
const FIRST_PORT: u32 = 20_000;
const PUBLISHED: &str = "18080";
/// Seconds of each connection window; the kill falls one second in.
const WINDOW: u64 = 4;

pub fn run(netd: &Path, xtask: &Path, rounds: usize) -> Result<String> {
    let mut busy = BenchHost::start_named(netd, true, "-busy")?;
    let mut empty = BenchHost::start_named(netd, false, "-empty")?;
    busy.netd(netd, &["network", "create", "--subnet", SUBNET, "r"])?;
    busy.start_servers(
        netd,
        xtask,
        "r",
        &["-p", &format!("{PUBLISHED}:7000")],
        (7000, 7001, 7002),
    )?;
    let range = format!(
        "{FIRST_PORT}-{}:{FIRST_PORT}-{}",
        FIRST_PORT + PORTS - 1,
        FIRST_PORT + PORTS - 1
    );
    busy.netd(
        netd,
        &["create", "--name", "many", "--network", "r", "-p", &range],
    )?;
    let socket = busy.socket();
    // srv, srv-iperf and many are three of them.
    for i in 3..CONTAINERS {
        let body =
            format!(r#"{{"name":"c{i}","network":"r","command":["sleep","3600"],"start":true}}"#);
        api(&socket, "POST", "/v1/containers", &body)?;
    }
    let ext = busy.external.clone().context("the busy host's client")?;
    let to = format!("{UPLINK_IP}:{PUBLISHED}");
    let (mut busy_ms, mut empty_ms, mut stall_ms, mut calm_ms) = (vec![], vec![], vec![], vec![]);
    let (mut busy_exit_ms, mut empty_exit_ms) = (vec![], vec![]);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for _ in 0..rounds {
        calm_ms.push(longest_gap(gaps_client(xtask, &ext, &to)?)?);
        let client = gaps_client(xtask, &ext, &to)?;
        std::thread::sleep(Duration::from_secs(1));
        let (gone, serving) = busy.kill_and_restart(netd)?;
        busy_exit_ms.push(ms(gone));
        busy_ms.push(ms(serving));
        stall_ms.push(longest_gap(client)?);
        let (gone, serving) = empty.kill_and_restart(netd)?;
        empty_exit_ms.push(ms(gone));
        empty_ms.push(ms(serving));
    }
    let ratio = |a: &[f64], b: &[f64]| {
        let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
        median(r)
    };
    Ok(format!(
        "| after SIGKILL | {CONTAINERS} containers, {PORTS} published ports | no container | ratio (paired by round) |\n\
         | --- | --- | --- | --- |\n\
         | API answering again, ms | {} | {} | {:.1}x |\n\
         | of which the killed daemon's exit, ms | {} | {} | |\n\
         | longest gap of an established connection, ms | {} (restart in the window) | {} (no restart) | {:.2}x |\n\n\
         raw samples (ms): busy restart {}; empty restart {}; gap with restart {}; gap without {}\n",
        spread(&busy_ms, 0),
        spread(&empty_ms, 0),
        ratio(&busy_ms, &empty_ms),
        spread(&busy_exit_ms, 0),
        spread(&empty_exit_ms, 0),
        spread(&stall_ms, 2),
        spread(&calm_ms, 2),
        ratio(&stall_ms, &calm_ms),
        raw(&busy_ms, 0),
        raw(&empty_ms, 0),
        raw(&stall_ms, 2),
        raw(&calm_ms, 2),
    ))
}

/// A request/response client through the published port for one window, in the busy
/// host's external namespace.
fn gaps_client(xtask: &Path, ext: &str, to: &str) -> Result<std::process::Child> {
    Command::new("ip")
        .args(["netns", "exec", ext, "taskset", "-c", "1"])
        .arg(xtask)
        .args(["bench-peer", "gaps", to, &WINDOW.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the gaps client")
}

/// The longest gap (ms) a finished client reports.
fn longest_gap(client: std::process::Child) -> Result<f64> {
    let out = client.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "the connection broke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let longest = text
        .split_whitespace()
        .nth(1)
        .context("the client's figures")?;
    Ok(longest.parse()?)
}
