//! What counting costs, where a few nanoseconds per packet would show: small UDP datagrams
//! (64-byte payload, sendmmsg) through a published port at the highest rate one core takes,
//! netd's normal build against a build whose programs count nothing (interface and
//! published-port counters compiled out), side by side. Two labs run at once, each with its
//! own daemon, external client and sink container, every process on one core: the kernel's
//! work for a lab's packets is charged to that lab's sender, so the lab whose packets cost
//! more gets fewer through. The builds swap labs every round (a daemon restart swaps its
//! programs into the same filters), and a control round runs the same build in both.

use std::{
    fmt::Write as _,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};

use super::{
    host::{BenchHost, UPLINK_IP},
    report::{raw, spread},
};

const SUBNET: &str = "172.28.0.0/16";
const PORT: &str = "9000";
const CORE: &str = "1";
/// Time for both clients to be up before their shared start.
const LEAD: Duration = Duration::from_millis(700);
/// The clients' warm-up and tail around their window (`peer::Window`): the sinks count those
/// too, the same span for both labs.
const AROUND: f64 = 0.6;

pub fn run(
    netd: &Path,
    without_counters: &Path,
    xtask: &Path,
    runs: usize,
    secs: u64,
) -> Result<String> {
    let mut labs = [
        BenchHost::start_named(netd, true, "-a")?,
        BenchHost::start_named(netd, true, "-b")?,
    ];
    for lab in &labs {
        start_sink(lab, netd)?;
    }
    // [on, off, on/off, control a/b]
    let mut samples: [Vec<f64>; 4] = Default::default();
    for round in 0..runs {
        for arms in [[true, false], [false, true], [true, true]] {
            for (lab, on) in labs.iter_mut().zip(arms) {
                lab.restart_daemon(if on { netd } else { without_counters })?;
            }
            let [a, b] = side_by_side(&labs, xtask, secs)?;
            match arms {
                [true, true] => {
                    eprintln!("round {round}: both counting, {a:.0} and {b:.0} pps");
                    samples[3].push(a / b);
                }
                _ => {
                    let (on, off) = if arms[0] { (a, b) } else { (b, a) };
                    eprintln!("round {round}: counting {on:.0} pps, not counting {off:.0} pps");
                    samples[0].push(on);
                    samples[1].push(off);
                    samples[2].push(on / off);
                }
            }
        }
    }
    Ok(table(&samples))
}

/// `sink`: a socket bound to the published port that never reads, so that the datagrams
/// that came through cost the container nothing and are counted by the kernel.
fn start_sink(lab: &BenchHost, netd: &Path) -> Result<()> {
    lab.netd(netd, &["network", "create", "--subnet", SUBNET, "c"])?;
    let sink = format!(
        "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',{PORT}))\ntime.sleep(3600)"
    );
    let publish = format!("{PORT}:{PORT}/udp");
    lab.netd(
        netd,
        &[
            "run",
            "-d",
            "--name",
            "sink",
            "--network",
            "c",
            "-p",
            &publish,
            "--",
            "python3",
            "-c",
            &sink,
        ],
    )?;
    Ok(())
}

/// Both labs' floods over one window; the datagrams per second each sink received.
fn side_by_side(labs: &[BenchHost; 2], xtask: &Path, secs: u64) -> Result<[f64; 2]> {
    let xtask = xtask.display().to_string();
    let before = [arrived(&labs[0])?, arrived(&labs[1])?];
    let at = (SystemTime::now().duration_since(UNIX_EPOCH)? + LEAD)
        .as_millis()
        .to_string();
    let secs_arg = secs.to_string();
    let to = format!("{UPLINK_IP}:{PORT}");
    std::thread::scope(|s| -> Result<()> {
        let floods: Vec<_> = labs
            .iter()
            .map(|lab| {
                let ext = lab.external.as_deref().expect("uplink");
                let args = [
                    "taskset",
                    "-c",
                    CORE,
                    &xtask,
                    "bench-peer",
                    "udp-flood",
                    &to,
                    &secs_arg,
                    "--at",
                    &at,
                ];
                s.spawn(move || BenchHost::run_in(ext, &args))
            })
            .collect();
        for flood in floods {
            flood.join().expect("flood thread")?;
        }
        Ok(())
    })?;
    let after = [arrived(&labs[0])?, arrived(&labs[1])?];
    let span = secs as f64 + AROUND;
    Ok([0, 1].map(|i| (after[i] - before[i]) as f64 / span))
}

/// UDP datagrams that reached the sink's namespace (delivered or dropped at its full socket),
/// from the kernel's own counters there.
fn arrived(lab: &BenchHost) -> Result<u64> {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", sandbox_of(lab)?))
        .args(["cat", "/proc/net/snmp"])
        .output()?;
    let snmp = String::from_utf8_lossy(&out.stdout);
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    let [names, values] = udp[..] else {
        anyhow::bail!("no Udp lines in /proc/net/snmp: {snmp}");
    };
    let field = |name: &str| -> Result<u64> {
        let i = names
            .split_whitespace()
            .position(|n| n == name)
            .with_context(|| format!("no {name} in {names}"))?;
        Ok(values
            .split_whitespace()
            .nth(i)
            .context("short line")?
            .parse()?)
    };
    Ok(field("InDatagrams")? + field("InErrors")?)
}

/// The sink container's namespace path, from the API.
fn sandbox_of(lab: &BenchHost) -> Result<String> {
    let body = super::host::api_body(&lab.socket(), "GET", "/v1/containers/sink", "")?;
    let v: serde_json::Value = serde_json::from_str(&body)?;
    v["NetworkSettings"]["SandboxKey"]
        .as_str()
        .map(str::to_string)
        .context("the sink has no namespace")
}

fn table(s: &[Vec<f64>; 4]) -> String {
    let mut out = String::from(
        "| published UDP port, 64-byte datagrams, two labs on one core | counters on | counters compiled out | on/off (paired) | control: same build in both |\n| --- | --- | --- | --- | --- |\n",
    );
    let _ = writeln!(
        out,
        "| datagrams/s delivered, median (min-max) | {} | {} | {} | {} |",
        spread(&s[0], 0),
        spread(&s[1], 0),
        spread(&s[2], 3),
        spread(&s[3], 3)
    );
    let _ = writeln!(
        out,
        "\nraw samples: on {}; off {}; on/off {}; control {}",
        raw(&s[0], 0),
        raw(&s[1], 0),
        raw(&s[2], 3),
        raw(&s[3], 3)
    );
    out
}
