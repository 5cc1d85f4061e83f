//! Real dockerd on netd against Docker's own bridge driver, side by side in one run: two
//! labs with the same uplink topology, one dockerd each (netd's with `--iptables=false` and
//! netd's plugin network; the other with its iptables rules and no userland proxy, the
//! fastest Docker setup). Measured with N other published ports (one container's range):
//! - `docker run -d -p 8080:80` until the CLI returns (container started, port published);
//! - new TCP connections per second from the external client to a published port
//!   (connect, one byte there and back, close), the server the benchmark's own peer, started
//!   after the N others (Docker's rules are walked in order: its port's come last).
//!
//! Rounds alternate the arms' order, so that drift of the machine hits both alike; the
//! ratios are paired by round.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result};
use labkit::docker::Dockerd;

use super::{
    host::{BenchHost, UPLINK_IP},
    report::{raw, spread},
};

const IMAGE: &str = "bench";
const SUBNET: &str = "172.30.0.0/16";
const PEER_TCP: u16 = 5001;
const FILLER_BASE: u32 = 10_000;

struct Arm {
    name: &'static str,
    docker: Dockerd,
    host: BenchHost,
    /// The Docker network the containers join.
    network: String,
}

impl Arm {
    fn docker(&self, args: &[&str]) -> Result<String> {
        self.docker.ok(args).map_err(Into::into)
    }

    /// `docker run -d -p 8080:80` of a sleeping container, timed; then removed.
    fn time_run(&self, round: usize) -> Result<f64> {
        let name = format!("probe{round}");
        let t = Instant::now();
        self.docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &self.network,
            "-p",
            "8080:80",
            IMAGE,
            "sleep",
            "3600",
        ])?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        self.docker(&["rm", "-f", &name])?;
        Ok(ms)
    }

    /// Publishes `n` other ports on one container (removing an earlier filler).
    fn fill(&self, n: u32) -> Result<()> {
        let _ = self.docker(&["rm", "-f", "filler"]);
        if n == 0 {
            return Ok(());
        }
        let range = format!(
            "{FILLER_BASE}-{last}:{FILLER_BASE}-{last}",
            last = FILLER_BASE + n - 1
        );
        self.docker(&[
            "run",
            "-d",
            "--name",
            "filler",
            "--network",
            &self.network,
            "-p",
            &range,
            IMAGE,
            "sleep",
            "3600",
        ])
        .map(drop)
    }

    /// The server, started after the other ports as a container started last is: Docker's
    /// rules for its port come after theirs. On core 0, the client on core 1, as in the other
    /// suites.
    fn start_server(&self, xtask: &Path) -> Result<()> {
        let _ = self.docker(&["rm", "-f", "srv"]);
        self.docker(&[
            "run",
            "-d",
            "--name",
            "srv",
            "--cpuset-cpus",
            "0",
            "--network",
            &self.network,
            "-p",
            &format!("{PEER_TCP}:{PEER_TCP}"),
            IMAGE,
            &xtask.display().to_string(),
            "bench-peer",
            "serve",
            &PEER_TCP.to_string(),
            "5002",
            "3600",
        ])
        .map(drop)
    }

    fn crr(&self, xtask: &Path, secs: u64) -> Result<f64> {
        let ext = self
            .host
            .external
            .as_deref()
            .context("a lab with an uplink")?;
        let to = format!("{UPLINK_IP}:{PEER_TCP}");
        let out = BenchHost::run_in(
            ext,
            &[
                "taskset",
                "-c",
                "1",
                &xtask.display().to_string(),
                "bench-peer",
                "crr",
                &to,
                &secs.to_string(),
            ],
        )?;
        Ok(out.trim().parse()?)
    }
}

pub fn run(netd: &Path, xtask: &Path, counts: &[u32], runs: usize, secs: u64) -> Result<String> {
    let plugin = format!("netd-bench-{}", std::process::id());
    let result = measure(netd, xtask, &plugin, counts, runs, secs);
    let _ = std::fs::remove_file(format!("/run/docker/plugins/{plugin}.sock"));
    result
}

fn measure(
    netd: &Path,
    xtask: &Path,
    plugin: &str,
    counts: &[u32],
    runs: usize,
    secs: u64,
) -> Result<String> {
    let netd_host = BenchHost::start_with_args(netd, "-rtn", &["--docker-plugin", plugin])?;
    let bridge_host = BenchHost::bare(true, "-rtb")?;
    let arms = [
        arm(
            "netd",
            netd_host,
            &["--iptables=false", "--bridge=none"],
            &["-d", plugin],
            xtask,
        )?,
        arm(
            "bridge",
            bridge_host,
            &["--iptables=true", "--userland-proxy=false", "--bridge=none"],
            &[],
            xtask,
        )?,
    ];
    let mut out = String::new();
    writeln!(out, "| other published ports | docker run -d -p, ms (netd) | (bridge) | netd/bridge | new connections/s (netd) | (bridge) | netd/bridge |")?;
    writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |")?;
    let mut samples = String::new();
    for &n in counts {
        for a in &arms {
            let t = Instant::now();
            a.fill(n)?;
            println!(
                "  {}: {n} other ports published in {:.1} s",
                a.name,
                t.elapsed().as_secs_f64()
            );
            a.start_server(xtask)?;
            // Untimed: a fresh dockerd's first containers are slower (caches, first mounts).
            a.time_run(usize::MAX)?;
        }
        let (mut run_ms, mut cps) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
        for round in 0..runs {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                run_ms[i].push(arms[i].time_run(round)?);
                cps[i].push(arms[i].crr(xtask, secs)?);
            }
            println!(
                "  N={n} round {round}: run {:.0} / {:.0} ms, {:.0} / {:.0} conn/s (netd / bridge)",
                run_ms[0][round], run_ms[1][round], cps[0][round], cps[1][round]
            );
        }
        let ratio = |v: &[Vec<f64>; 2]| -> Vec<f64> {
            v[0].iter().zip(&v[1]).map(|(a, b)| a / b).collect()
        };
        writeln!(
            out,
            "| {n} | {} | {} | {} | {} | {} | {} |",
            spread(&run_ms[0], 0),
            spread(&run_ms[1], 0),
            spread(&ratio(&run_ms), 2),
            spread(&cps[0], 0),
            spread(&cps[1], 0),
            spread(&ratio(&cps), 2),
        )?;
        for (i, a) in arms.iter().enumerate() {
            writeln!(
                samples,
                "N={n} {}: docker run ms {}; conn/s {}",
                a.name,
                raw(&run_ms[i], 0),
                raw(&cps[i], 0)
            )?;
        }
    }
    Ok(format!("{out}\nraw samples:\n{samples}"))
}

/// One arm: its dockerd (in the host's namespace), the image with the benchmark's peer, and
/// the network its containers join (`-d plugin` for netd's).
fn arm(
    name: &'static str,
    host: BenchHost,
    dockerd_args: &[&str],
    driver: &[&str],
    xtask: &Path,
) -> Result<Arm> {
    let root: PathBuf = host.dir().join("docker");
    let cgroup = format!("{}-docker", host.netns());
    let docker = Dockerd::start(host.netns(), &root, &cgroup, dockerd_args)?;
    let tar = labkit::busybox_rootfs(&root, &[xtask])?;
    docker.import(IMAGE, &tar)?;
    let mut create = vec!["network", "create"];
    create.extend_from_slice(driver);
    create.extend(["--subnet", SUBNET, "benchnet"]);
    docker.ok(&create)?;
    Ok(Arm {
        name,
        docker,
        host,
        network: "benchnet".into(),
    })
}
