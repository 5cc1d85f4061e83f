//! The cost of a Prometheus scrape: the time of one `GET /metrics` with 10,000 published ports
//! (one container publishing a range), median of repeated scrapes, and the size of the page.

use std::path::Path;

use anyhow::{Context, Result};

use super::{host::BenchHost, report::median};

const SUBNET: &str = "172.31.0.0/16";
const PORTS: u32 = 10_000;
const FIRST_PORT: u32 = 20_000;
const SCRAPES: usize = 21;

pub fn run(netd: &Path) -> Result<String> {
    let host = BenchHost::start(netd, false)?;
    host.netd(netd, &["network", "create", "--subnet", SUBNET, "m"])?;
    let range = format!(
        "{FIRST_PORT}-{}:{FIRST_PORT}-{}",
        FIRST_PORT + PORTS - 1,
        FIRST_PORT + PORTS - 1
    );
    host.netd(
        netd,
        &["create", "--name", "many", "--network", "m", "-p", &range],
    )?;
    let mut times = Vec::new();
    let mut size = 0usize;
    for _ in 0..SCRAPES {
        let out = BenchHost::run_in(
            host.netns(),
            &[
                "curl",
                "-sf",
                "-o",
                "/dev/null",
                "-w",
                "%{time_total} %{size_download}",
                "http://127.0.0.1:9640/metrics",
            ],
        )?;
        let (secs, bytes) = out.trim().split_once(' ').context("curl's figures")?;
        times.push(secs.parse::<f64>()? * 1e3);
        size = bytes.parse()?;
    }
    Ok(format!(
        "| scrape of /metrics | published ports | p50 ms | max ms | page KiB |\n| --- | --- | --- | --- | --- |\n| {SCRAPES} scrapes | {PORTS} | {:.1} | {:.1} | {} |\n",
        median(times.clone()),
        times.iter().copied().fold(0.0, f64::max),
        size / 1024
    ))
}
