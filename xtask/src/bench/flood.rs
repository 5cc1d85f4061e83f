//! Conntrack under a flood: netd against iptables' conntrack, with tables that hold the same
//! number of connections (the kernel's `nf_conntrack_max`, which a namespace cannot change,
//! and netd's `--conntrack-max` at two entries per connection). Idle established
//! connections through a published port, masqueraded to the external client and to a
//! virtual IP are held while the external client sends, from spoofed sources, twice the
//! table's capacity of UDP datagrams to a published UDP port (which the server answers) and
//! as many SYNs to the published TCP port (which nobody acknowledges). The figures are the
//! connections kept and the new connections per second before, during and after the flood.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use anyhow::{bail, Context, Result};

use super::{
    host::{BenchHost, CLIENT_IP, UPLINK_IP},
    netfilter::{NetfilterLab, Rules},
    report::{raw, spread},
};

const SUBNET: &str = "10.77.0.0/16";
const SERVER: &str = "10.77.0.10";
/// The iptables lab's client container and virtual IP.
const CLIENT: &str = "10.77.0.20";
const IPTABLES_VIP: &str = "10.96.0.10";
const TCP: u16 = 5001;
const UDP: u16 = 5002;
const PUBLISHED_TCP: u16 = 8080;
const PUBLISHED_UDP: u16 = 5353;
/// The external client's own server, for the masqueraded connections.
const EXTERNAL_TCP: u16 = 9100;
/// Connections held of each kind.
const HELD: usize = 100;
/// How long they stay idle, and how long the flood lasts within that.
const IDLE_SECS: u64 = 60;
const FLOOD_SECS: u64 = 40;
/// New connections are counted for this long before and after the flood.
const CALM_SECS: u64 = 5;

const KINDS: [&str; 3] = ["published", "masqueraded", "VIP"];

/// One arm's figures of one run.
struct Sample {
    /// Connections of each kind (of [`HELD`]) that still answered after the flood.
    kept: [f64; 3],
    before: f64,
    during: f64,
    failed: f64,
    after: f64,
    /// Conntrack entries right after the flood.
    entries: f64,
}

/// Namespaces of one arm, as paths for nsenter.
struct Arm {
    external: String,
    client: String,
    vip: String,
    /// The table's entries, read in its host namespace.
    entries: Box<dyn Fn() -> Result<f64>>,
}

pub fn run(netd: &Path, xtask: &Path, runs: usize) -> Result<String> {
    let connections: u32 = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .context("reading nf_conntrack_max")?
        .trim()
        .parse()?;
    let flood = 2 * connections;
    println!(
        "tables of {connections} connections (netd --conntrack-max {}); flood: {flood} UDP datagrams and {flood} SYNs over {FLOOD_SECS} s; {HELD} connections of each kind idle for {IDLE_SECS} s",
        2 * connections
    );
    let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    for round in 0..runs {
        // Alternate which arm goes first, so that neither always runs on a warmer machine.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for arm in order {
            let sample = if arm == 0 {
                netd_arm(netd, xtask, connections, flood)?
            } else {
                iptables_arm(xtask, flood)?
            };
            println!(
                "  round {}, {}: kept {:?} of {HELD}; new conn/s {:.0} before, {:.0} during ({} failed), {:.0} after; {} entries",
                round + 1,
                ["netd", "iptables"][arm],
                sample.kept,
                sample.before,
                sample.during,
                sample.failed,
                sample.after,
                sample.entries
            );
            samples[arm].push(sample);
        }
    }
    Ok(table(&samples))
}

fn netd_arm(netd: &Path, xtask: &Path, connections: u32, flood: u32) -> Result<Sample> {
    let max = (2 * connections).to_string();
    let host = BenchHost::start_with_args(netd, "-ct", &["--conntrack-max", &max])?;
    let cli = |args: &[&str]| host.netd(netd, args);
    cli(&[
        "network",
        "create",
        "--subnet",
        SUBNET,
        "--alias-mode",
        "vip",
        "svc",
    ])?;
    let (published_tcp, published_udp) = (
        format!("{PUBLISHED_TCP}:{TCP}"),
        format!("{PUBLISHED_UDP}:{UDP}/udp"),
    );
    host.start_servers(
        netd,
        xtask,
        "svc",
        &[
            "--ip",
            SERVER,
            "--alias",
            "api",
            "-p",
            &published_tcp,
            "-p",
            &published_udp,
        ],
        (TCP, UDP, 5201),
    )?;
    cli(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "svc",
        "--",
        "sleep",
        "3600",
    ])?;
    let alias: serde_json::Value =
        serde_json::from_str(&cli(&["alias", "inspect", "--network", "svc", "api"])?)?;
    let inspect: serde_json::Value = serde_json::from_str(&cli(&["inspect", "cli"])?)?;
    let netns = host.netns().to_string();
    let arm = Arm {
        external: format!("/run/netns/{}", host.external.as_deref().context("uplink")?),
        client: inspect[0]["NetworkSettings"]["SandboxKey"]
            .as_str()
            .context("client namespace")?
            .to_string(),
        vip: alias["VIP"].as_str().context("VIP of api")?.to_string(),
        entries: Box::new(move || {
            let scrape =
                BenchHost::run_in(&netns, &["curl", "-sf", "http://127.0.0.1:9640/metrics"])?;
            Ok(scrape
                .lines()
                .filter(|l| l.starts_with("netd_map_entries{map=\"NETD_CT"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum())
        }),
    };
    measure(&arm, xtask, flood)
}

fn iptables_arm(xtask: &Path, flood: u32) -> Result<Sample> {
    let mut lab = NetfilterLab::start(Rules::Iptables, xtask, SERVER, (TCP, UDP, 5201))?;
    lab.publish(&[
        ("tcp", u32::from(PUBLISHED_TCP), u32::from(TCP)),
        ("udp", u32::from(PUBLISHED_UDP), u32::from(UDP)),
    ])?;
    let client = lab.add_client(CLIENT)?;
    lab.add_vip(IPTABLES_VIP, TCP)?;
    let host = lab.host.clone();
    let arm = Arm {
        external: format!("/run/netns/{}", lab.external),
        client: format!("/run/netns/{client}"),
        vip: IPTABLES_VIP.to_string(),
        // Two entries per connection, as netd counts them.
        entries: Box::new(move || {
            let count = BenchHost::run_in(
                &host,
                &["cat", "/proc/sys/net/netfilter/nf_conntrack_count"],
            )?;
            Ok(2.0 * count.trim().parse::<f64>()?)
        }),
    };
    measure(&arm, xtask, flood)
}

/// Runs `xtask bench-peer ARGS` in the namespace at `netns`, stdout piped.
fn peer(netns: &str, xtask: &Path, args: &[&str]) -> Result<Child> {
    Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .arg(xtask)
        .arg("bench-peer")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a bench peer")
}

/// The lines a peer printed, once it has exited successfully.
fn lines_of(child: Child) -> Result<Vec<String>> {
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("a bench peer failed");
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_string)
        .collect())
}

/// A `hold` peer once its connections are up.
fn hold(
    netns: &str,
    xtask: &Path,
    to: &str,
) -> Result<(Child, BufReader<std::process::ChildStdout>)> {
    let (held, idle) = (HELD.to_string(), IDLE_SECS.to_string());
    let mut child = peer(netns, xtask, &["hold", to, &held, &idle])?;
    let mut out = BufReader::new(child.stdout.take().context("piped")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "ready" {
        let _ = child.kill();
        bail!("holding connections to {to} failed");
    }
    Ok((child, out))
}

fn crr(netns: &str, xtask: &Path, secs: u64) -> Result<(f64, f64)> {
    let to = format!("{UPLINK_IP}:{PUBLISHED_TCP}");
    let lines = lines_of(peer(
        netns,
        xtask,
        &["crr-counted", &to, &secs.to_string()],
    )?)?;
    let mut fields = lines.first().context("no crr figures")?.split(' ');
    let rate = fields.next().context("rate")?.parse()?;
    let failed = fields.next().context("failures")?.parse()?;
    Ok((rate, failed))
}

fn measure(arm: &Arm, xtask: &Path, flood: u32) -> Result<Sample> {
    let ext = arm.external.as_str();
    let echo_port = EXTERNAL_TCP.to_string();
    let mut echo = peer(ext, xtask, &["serve", &echo_port, "9101", "3600"])?;
    let result = (|| {
        let (before, _) = crr(ext, xtask, CALM_SECS)?;
        let targets = [
            (ext, format!("{UPLINK_IP}:{PUBLISHED_TCP}")),
            (arm.client.as_str(), format!("{CLIENT_IP}:{EXTERNAL_TCP}")),
            (arm.client.as_str(), format!("{}:{TCP}", arm.vip)),
        ];
        let mut held = Vec::new();
        for (netns, to) in &targets {
            held.push(hold(netns, xtask, to)?);
        }
        let (udp, tcp) = (
            format!("{UPLINK_IP}:{PUBLISHED_UDP}"),
            format!("{UPLINK_IP}:{PUBLISHED_TCP}"),
        );
        let flooding = peer(
            ext,
            xtask,
            &[
                "flood",
                &udp,
                &tcp,
                &flood.to_string(),
                &FLOOD_SECS.to_string(),
            ],
        )?;
        let (during, failed) = crr(ext, xtask, FLOOD_SECS)?;
        lines_of(flooding)?;
        let entries = (arm.entries)()?;
        let mut kept = [0.0; 3];
        for (i, (child, out)) in held.into_iter().enumerate() {
            let mut child = child;
            let mut rest = String::new();
            std::io::Read::read_to_string(&mut out.into_inner(), &mut rest)?;
            if !child.wait()?.success() {
                bail!("the held {} connections' peer failed", KINDS[i]);
            }
            kept[i] = rest.trim().parse()?;
        }
        let (after, _) = crr(ext, xtask, CALM_SECS)?;
        Ok(Sample {
            kept,
            before,
            during,
            failed,
            after,
            entries,
        })
    })();
    let _ = echo.kill();
    let _ = echo.wait();
    result
}

/// One row of the table: how a sample gives it.
type Figure = Box<dyn Fn(&Sample) -> f64>;

fn table(samples: &[Vec<Sample>; 2]) -> String {
    let mut rows: Vec<(String, Figure)> = Vec::new();
    for (i, kind) in KINDS.iter().enumerate() {
        rows.push((
            format!("{kind} connections kept (of {HELD})"),
            Box::new(move |s: &Sample| s.kept[i]),
        ));
    }
    rows.push(("new conn/s before the flood".into(), Box::new(|s| s.before)));
    rows.push(("new conn/s during the flood".into(), Box::new(|s| s.during)));
    rows.push((
        "failed connection attempts during the flood (1 s timeout)".into(),
        Box::new(|s| s.failed),
    ));
    rows.push(("new conn/s after the flood".into(), Box::new(|s| s.after)));
    rows.push((
        "conntrack entries after the flood (2 per connection)".into(),
        Box::new(|s| s.entries),
    ));
    let mut out = String::from(
        "| figure, median (min-max) | netd | iptables (Docker's rules) |\n| --- | --- | --- |\n",
    );
    let mut raws = String::from("\nraw samples:\n");
    for (name, figure) in &rows {
        let [netd, ipt]: [Vec<f64>; 2] =
            [0, 1].map(|arm| samples[arm].iter().map(figure.as_ref()).collect());
        let _ = writeln!(
            out,
            "| {name} | {} | {} |",
            spread(&netd, 0),
            spread(&ipt, 0)
        );
        let _ = writeln!(
            raws,
            "- {name}: netd {}; iptables {}",
            raw(&netd, 0),
            raw(&ipt, 0)
        );
    }
    out + &raws
}
