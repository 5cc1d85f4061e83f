//! The cost of a Prometheus scrape: the time of one `GET /metrics` on a host with 1,000
//! containers (each interface's counters and series) and 10,000 published ports (one of them
//! publishing a range), over repeated scrapes, and the size of the page.

use std::path::Path;

use anyhow::{Context, Result};

use super::{
    host::{api, BenchHost},
    report::{raw, spread},
};

const SUBNET: &str = "172.31.0.0/16";
const CONTAINERS: usize = 1_000;
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
    let socket = host.socket();
    for i in 1..CONTAINERS {
        let body =
            format!(r#"{{"name":"c{i}","network":"m","command":["sleep","3600"],"start":true}}"#);
        api(&socket, "POST", "/v1/containers", &body)?;
    }
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
        "| scrape of /metrics | containers | published ports | ms, median (min-max) | page KiB |\n| --- | --- | --- | --- | --- |\n| {SCRAPES} scrapes | {CONTAINERS} | {PORTS} | {} | {} |\n\nraw samples (ms): {}\n",
        spread(&times, 1),
        size / 1024,
        raw(&times, 1)
    ))
}
