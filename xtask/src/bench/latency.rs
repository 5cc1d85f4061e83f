//! Control-plane latency: `netd run` and `netd rm` over many containers.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Result};

use super::host::{api, BenchHost};

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
    let host = BenchHost::start(netd, false)?;
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
