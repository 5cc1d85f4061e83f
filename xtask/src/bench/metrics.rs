//! The cost of a Prometheus scrape: the time of one `GET /metrics` on a host with 1,000
//! containers (each interface's counters and series) and 10,000 published ports (one of them
//! publishing a range), over repeated scrapes, and the size of the page; and what scrapes do
//! to the API: the latency of container inspects while scrapes run back to back, beside the
//! same inspects with no scrape.

use std::path::Path;

use anyhow::{Context, Result};

use super::{
    host::{api, BenchHost},
    report::{percentile as pct, raw, spread},
};

const SUBNET: &str = "172.31.0.0/16";
const CONTAINERS: usize = 1_000;
const PORTS: u32 = 10_000;
const FIRST_PORT: u32 = 20_000;
const SCRAPES: usize = 21;
/// API calls per latency sample set.
const CALLS: usize = 2_000;

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
    let idle = inspect_latencies(&socket)?;
    let scraping = std::sync::atomic::AtomicBool::new(true);
    let during = std::thread::scope(|s| {
        let scraper = s.spawn(|| {
            let mut n = 0;
            while scraping.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = BenchHost::run_in(
                    host.netns(),
                    &[
                        "curl",
                        "-sf",
                        "-o",
                        "/dev/null",
                        "http://127.0.0.1:9640/metrics",
                    ],
                );
                n += 1;
            }
            n
        });
        let during = inspect_latencies(&socket);
        scraping.store(false, std::sync::atomic::Ordering::Relaxed);
        let scrapes = scraper.join().unwrap_or(0);
        during.map(|d| (d, scrapes))
    });
    let (during, scrapes_meanwhile) = during?;
    Ok(format!(
        "| scrape of /metrics | containers | published ports | ms, median (min-max) | page KiB |\n| --- | --- | --- | --- | --- |\n| {SCRAPES} scrapes | {CONTAINERS} | {PORTS} | {} | {} |\n\nraw samples (ms): {}\n\n\
         | `GET /v1/containers/c1`, {CALLS} calls | p50 ms | p99 ms | max ms |\n| --- | --- | --- | --- |\n\
         | no scrape | {:.2} | {:.2} | {:.2} |\n\
         | scrapes back to back ({scrapes_meanwhile} meanwhile) | {:.2} | {:.2} | {:.2} |\n\
         | ratio | {:.2}x | {:.2}x | |\n",
        spread(&times, 1),
        size / 1024,
        raw(&times, 1),
        pct(&idle, 0.5),
        pct(&idle, 0.99),
        pct(&idle, 1.0),
        pct(&during, 0.5),
        pct(&during, 0.99),
        pct(&during, 1.0),
        pct(&during, 0.5) / pct(&idle, 0.5),
        pct(&during, 0.99) / pct(&idle, 0.99),
    ))
}

/// Latencies (ms) of `CALLS` container inspects, one after another.
fn inspect_latencies(socket: &Path) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = std::time::Instant::now();
        api(socket, "GET", "/v1/containers/c1", "")?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}
