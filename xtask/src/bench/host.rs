//! The benchmark's throwaway host: a network namespace with its own daemon (release build),
//! optionally with an uplink to an external client namespace. Everything is removed on drop,
//! containers (and their processes) included.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// Addresses of the uplink topology.
pub const UPLINK_IP: &str = "10.98.0.1";
pub const CLIENT_IP: &str = "10.98.0.2";

/// A host namespace with a daemon in it; everything is removed on drop.
pub struct BenchHost {
    pub external: Option<String>,
    netns: String,
    dir: PathBuf,
    bpffs: PathBuf,
    daemon: Option<Child>,
    /// More `netd daemon` flags.
    daemon_args: Vec<String>,
}

impl BenchHost {
    pub fn start(netd: &Path, with_uplink: bool) -> Result<Self> {
        Self::start_named(netd, with_uplink, "")
    }

    /// [`BenchHost::start`] for one of several hosts of a benchmark: `tag` tells them apart.
    pub fn start_named(netd: &Path, with_uplink: bool, tag: &str) -> Result<Self> {
        let mut host = Self::bare(with_uplink, tag)?;
        host.start_daemon(netd)?;
        Ok(host)
    }

    /// [`BenchHost::start_named`] with more `netd daemon` flags.
    pub fn start_with_args(netd: &Path, tag: &str, args: &[&str]) -> Result<Self> {
        let mut host = Self::bare(true, tag)?;
        host.daemon_args = args.iter().map(|a| a.to_string()).collect();
        host.start_daemon(netd)?;
        Ok(host)
    }

    /// The host and its uplink without netd (for another runtime's arm of a benchmark).
    pub fn bare(with_uplink: bool, tag: &str) -> Result<Self> {
        let netns = format!("netd-bench-{}{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&netns);
        let host = Self {
            external: None,
            bpffs: PathBuf::from("/sys/fs/bpf").join(&netns),
            dir,
            netns,
            daemon: None,
            daemon_args: Vec::new(),
        };
        std::fs::create_dir_all(&host.dir)?;
        sh("ip", &["netns", "add", &host.netns])?;
        sh("ip", &["-n", &host.netns, "link", "set", "lo", "up"])?;
        let mut host = host;
        if with_uplink {
            host.add_uplink()?;
        }
        Ok(host)
    }

    /// Where the host keeps its files (removed with it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn start_daemon(&mut self, netd: &Path) -> Result<()> {
        self.spawn_daemon(netd)?;
        self.wait_for_api(Duration::from_millis(50))
    }

    fn spawn_daemon(&mut self, netd: &Path) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))?;
        self.daemon = Some(
            Command::new(netd)
                .arg("--socket")
                .arg(self.socket())
                .args(["daemon", "--netns", &self.netns])
                .arg("--state-dir")
                .arg(self.dir.join("state"))
                .arg("--bpffs")
                .arg(&self.bpffs)
                .args(&self.daemon_args)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting netd daemon")?,
        );
        Ok(())
    }

    /// Waits until the daemon's API answers, looking every `poll`.
    fn wait_for_api(&self, poll: Duration) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while api(&self.socket(), "GET", "/v1/version", "").is_err() {
            if Instant::now() > deadline {
                bail!(
                    "the daemon did not answer; see {}",
                    self.dir.join("daemon.log").display()
                );
            }
            std::thread::sleep(poll);
        }
        Ok(())
    }

    /// SIGKILLs the daemon and starts `netd` again: the time from the kill until the old
    /// process is gone, and until the new one's API answers (looked at every 2 ms),
    /// reconcile done.
    pub fn kill_and_restart(&mut self, netd: &Path) -> Result<(Duration, Duration)> {
        let mut d = self.daemon.take().context("no daemon to kill")?;
        let start = Instant::now();
        d.kill()?;
        d.wait()?;
        let gone = start.elapsed();
        self.spawn_daemon(netd)?;
        self.wait_for_api(Duration::from_millis(2))?;
        Ok((gone, start.elapsed()))
    }

    /// Stops the daemon and starts it again: it re-adopts every port, putting back the
    /// programs of a port they were taken off.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("netd.sock")
    }

    /// Stops the daemon and starts `netd` (maybe another build) on the same state: it adopts
    /// every port and swaps its own programs in.
    pub fn restart_daemon(&mut self, netd: &Path) -> Result<()> {
        if let Some(mut d) = self.daemon.take() {
            d.kill()?;
            d.wait()?;
        }
        self.start_daemon(netd)
    }

    /// The daemon's bpffs dir (removed with the host).
    pub fn bpffs(&self) -> &Path {
        &self.bpffs
    }

    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// `up0` (10.98.0.1/24, the default route) to an external client namespace (10.98.0.2/24)
    /// that also routes the default bridge subnet through the host, for the direct case.
    fn add_uplink(&mut self) -> Result<()> {
        let ext = format!("{}-ext", self.netns);
        sh("ip", &["netns", "add", &ext])?;
        self.external = Some(ext.clone());
        let h = self.netns.clone();
        sh(
            "ip",
            &[
                "-n", &h, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns",
                &ext,
            ],
        )?;
        sh(
            "ip",
            &["-n", &h, "addr", "add", "10.98.0.1/24", "dev", "up0"],
        )?;
        sh("ip", &["-n", &h, "link", "set", "up0", "up"])?;
        sh(
            "ip",
            &["-n", &ext, "addr", "add", "10.98.0.2/24", "dev", "eth0"],
        )?;
        sh("ip", &["-n", &ext, "link", "set", "eth0", "up"])?;
        sh("ip", &["-n", &ext, "link", "set", "lo", "up"])?;
        sh(
            "ip",
            &["-n", &ext, "route", "add", "default", "via", UPLINK_IP],
        )?;
        sh(
            "ip",
            &["-n", &h, "route", "add", "default", "via", CLIENT_IP],
        )
    }

    /// The netd CLI against this host's daemon.
    pub fn netd(&self, netd: &Path, args: &[&str]) -> Result<String> {
        let out = Command::new(netd)
            .env("NETD_SOCKET", self.socket())
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "netd {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Container `srv` on `network` running the benchmark's TCP/UDP peer servers, and
    /// `srv-iperf` in its namespace running iperf3, both on core 0. `run_args` go to
    /// `netd run` for `srv` (its address, published ports).
    pub fn start_servers(
        &self,
        netd: &Path,
        xtask: &Path,
        network: &str,
        run_args: &[&str],
        ports: (u16, u16, u16),
    ) -> Result<()> {
        let (tcp, udp, iperf) = (
            ports.0.to_string(),
            ports.1.to_string(),
            ports.2.to_string(),
        );
        let xtask = xtask.display().to_string();
        let mut srv = vec!["run", "-d", "--name", "srv", "--network", network];
        srv.extend_from_slice(run_args);
        srv.extend_from_slice(&["--", "taskset", "-c", "0", &xtask, "bench-peer", "serve"]);
        srv.extend_from_slice(&[&tcp, &udp, "3600"]);
        self.netd(netd, &srv)?;
        self.netd(
            netd,
            &[
                "run",
                "-d",
                "--name",
                "srv-iperf",
                "--network",
                "container:srv",
                "--",
                "taskset",
                "-c",
                "0",
                "iperf3",
                "-s",
                "-p",
                &iperf,
            ],
        )?;
        Ok(())
    }

    /// Runs a command in namespace `ns` and returns its stdout.
    pub fn run_in(ns: &str, cmd: &[&str]) -> Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .output()?;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                cmd.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for BenchHost {
    fn drop(&mut self) {
        // Remove every container through the daemon, so that their processes stop too. A
        // container whose namespace another shares goes only after that one: a few passes.
        let socket = self.socket();
        for _ in 0..3 {
            let Ok(out) = api_body(&socket, "GET", "/v1/containers", "") else {
                break;
            };
            let ids: Vec<&str> = out
                .split("\"Id\":\"")
                .skip(1)
                .filter_map(|s| s.get(..64))
                .collect();
            if ids.is_empty() {
                break;
            }
            for id in ids {
                let _ = api(
                    &socket,
                    "DELETE",
                    &format!("/v1/containers/{id}?force=true"),
                    "",
                );
            }
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let netns_dir = self.dir.join("state/netns");
        for entry in std::fs::read_dir(&netns_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = Command::new("umount").arg("-l").arg(entry.path()).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        if let Some(ext) = &self.external {
            let _ = Command::new("ip").args(["netns", "del", ext]).status();
        }
        let _ = std::fs::remove_dir_all(&self.bpffs);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn sh(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program).args(args).status()?;
    if !status.success() {
        bail!("{program} {} failed", args.join(" "));
    }
    Ok(())
}

/// One HTTP/1.1 request on the API socket; returns the status code.
pub fn api(socket: &Path, method: &str, path: &str, body: &str) -> Result<u16> {
    api_exchange(socket, method, path, body).map(|(status, _)| status)
}

/// One HTTP/1.1 request on the API socket; returns the reply body.
pub fn api_body(socket: &Path, method: &str, path: &str, body: &str) -> Result<String> {
    api_exchange(socket, method, path, body).map(|(_, reply)| reply)
}

fn api_exchange(socket: &Path, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let mut stream = UnixStream::connect(socket)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: netd\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP reply")?;
    if status >= 300 {
        bail!("{method} {path}: {reply}");
    }
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
