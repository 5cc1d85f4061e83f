//! `cargo xtask bench`: performance figures, measured in a throwaway host namespace with its
//! own daemon (release build). Nothing touches the machine's own networking.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// A host namespace with a daemon in it; everything is removed on drop.
struct BenchHost {
    netns: String,
    dir: PathBuf,
    bpffs: PathBuf,
    daemon: Option<Child>,
}

impl BenchHost {
    fn start(netd: &Path) -> Result<Self> {
        let netns = format!("netd-bench-{}", std::process::id());
        let dir = std::env::temp_dir().join(&netns);
        let host = Self {
            bpffs: PathBuf::from("/sys/fs/bpf").join(&netns),
            dir,
            netns,
            daemon: None,
        };
        std::fs::create_dir_all(&host.dir)?;
        sh("ip", &["netns", "add", &host.netns])?;
        sh("ip", &["-n", &host.netns, "link", "set", "lo", "up"])?;
        let mut host = host;
        let log = std::fs::File::create(host.dir.join("daemon.log"))?;
        host.daemon = Some(
            Command::new(netd)
                .arg("--socket")
                .arg(host.socket())
                .args(["daemon", "--netns", &host.netns])
                .arg("--state-dir")
                .arg(host.dir.join("state"))
                .arg("--bpffs")
                .arg(&host.bpffs)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting netd daemon")?,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while api(&host.socket(), "GET", "/v1/version", "").is_err() {
            if Instant::now() > deadline {
                bail!(
                    "the daemon did not answer; see {}",
                    host.dir.join("daemon.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(host)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("netd.sock")
    }
}

impl Drop for BenchHost {
    fn drop(&mut self) {
        // Remove every container through the daemon, so that their processes stop too.
        let socket = self.socket();
        if let Ok(out) = api_body(&socket, "GET", "/v1/containers", "") {
            for id in out.split("\"Id\":\"").skip(1).filter_map(|s| s.get(..64)) {
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
        let _ = std::fs::remove_dir_all(&self.bpffs);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sh(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program).args(args).status()?;
    if !status.success() {
        bail!("{program} {} failed", args.join(" "));
    }
    Ok(())
}

/// One HTTP/1.1 request on the API socket; returns the status code.
fn api(socket: &Path, method: &str, path: &str, body: &str) -> Result<u16> {
    api_exchange(socket, method, path, body).map(|(status, _)| status)
}

/// One HTTP/1.1 request on the API socket; returns the reply body.
fn api_body(socket: &Path, method: &str, path: &str, body: &str) -> Result<String> {
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {what:<48} | {:>5} | {:>8.2} | {:>8.2} | {:>8.2} |",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().expect("samples")),
    );
}

pub fn run(netd: &Path, containers: usize) -> Result<()> {
    let host = BenchHost::start(netd)?;
    let socket = host.socket();
    println!(
        "\nnetd run / rm latency, {containers} containers on the default bridge (release build)\n"
    );
    println!("| operation                                        |     n |  p50 ms  |  p99 ms  |  max ms  |");
    println!("|--------------------------------------------------|-------|----------|----------|----------|");
    let mut run_api = Vec::with_capacity(containers);
    for i in 0..containers {
        let body = format!(r#"{{"name":"b{i}","command":["sleep","3600"],"start":true}}"#);
        let t = Instant::now();
        api(&socket, "POST", "/v1/containers", &body)?;
        run_api.push(t.elapsed());
    }
    let mut rm_api = Vec::with_capacity(containers);
    for i in 0..containers {
        let t = Instant::now();
        api(
            &socket,
            "DELETE",
            &format!("/v1/containers/b{i}?force=true"),
            "",
        )?;
        rm_api.push(t.elapsed());
    }
    report("run -d via API (netns+veth+addr+route+attach)", run_api);
    report("rm -f (API)", rm_api);

    // The same through the CLI, process start included, as a user sees it.
    let cli_runs = containers.min(50);
    let mut run_cli = Vec::with_capacity(cli_runs);
    for i in 0..cli_runs {
        let t = Instant::now();
        let status = Command::new(netd)
            .env("NETD_SOCKET", &socket)
            .args([
                "run",
                "-d",
                "--name",
                &format!("c{i}"),
                "--",
                "sleep",
                "3600",
            ])
            .stdout(Stdio::null())
            .status()?;
        run_cli.push(t.elapsed());
        if !status.success() {
            bail!("netd run failed");
        }
    }
    report("netd run -d (CLI)", run_cli);
    println!();
    Ok(())
}
