//! `cargo xtask bench`: performance figures, measured in throwaway namespaces. Nothing
//! touches the machine's own networking.

mod datapath;
mod host;
mod latency;
pub mod peer;
mod report;

use std::path::Path;

use anyhow::Result;

pub struct Options {
    pub containers: usize,
    pub counts: Vec<u32>,
    pub runs: usize,
    pub secs: u64,
}

pub fn run(netd: &Path, xtask: &Path, opts: &Options) -> Result<()> {
    latency::run(netd, opts.containers)?;
    println!(
        "\npublished-port datapath: direct vs netd vs iptables ({} runs of {} s each, medians)",
        opts.runs, opts.secs
    );
    let settings = datapath::Settings {
        counts: opts.counts.clone(),
        runs: opts.runs,
        secs: opts.secs,
    };
    let figures = datapath::run(netd, xtask, &settings)?;
    let table = figures.table();
    println!("\n{table}");
    let dir = crate::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("datapath.md"), &table)?;
    figures.plot(&dir)
}
