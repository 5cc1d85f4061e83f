//! Loads run side by side: several clients start at one moment (a shared `--at`) and run
//! for the same window, so that their rates see the same moment of this noisy machine and
//! their ratio is the difference between their paths.

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Result;

use super::host::BenchHost;

/// Time for every `netd exec` client to be up before their shared start.
const LEAD: Duration = Duration::from_millis(700);

/// Runs `xtask bench-peer LOAD TARGET` from each `(container, target)` at once, all on
/// `core`, over a window of `secs`; the rate each measured, in order.
pub fn side_by_side(
    host: &BenchHost,
    netd: &Path,
    xtask: &Path,
    clients: &[(&str, String)],
    load: &str,
    secs: u64,
    core: &str,
) -> Result<Vec<f64>> {
    let start = SystemTime::now().duration_since(UNIX_EPOCH)? + LEAD;
    let at = start.as_millis().to_string();
    let secs = secs.to_string();
    let xtask = xtask.display().to_string();
    std::thread::scope(|s| {
        let running: Vec<_> = clients
            .iter()
            .map(|(client, to)| {
                let (xtask, at, secs) = (&xtask, &at, &secs);
                s.spawn(move || -> Result<f64> {
                    let args = [
                        "exec",
                        client,
                        "--",
                        "taskset",
                        "-c",
                        core,
                        xtask,
                        "bench-peer",
                        load,
                        to,
                        secs,
                        "--at",
                        at,
                    ];
                    Ok(host.netd(netd, &args)?.trim().parse()?)
                })
            })
            .collect();
        running
            .into_iter()
            .map(|c| {
                c.join()
                    .map_err(|_| anyhow::anyhow!("benchmark client panicked"))?
            })
            .collect()
    })
}
