//! `cargo xtask`: bootstrap the machine, build, run the daemon, run every test tier, benchmark.

mod bench;
mod bootstrap;
mod cmd;
mod fuzz;
mod test;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build, run, test and benchmark netd")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing (apt packages, nightly rust-src, bpf-linker, bpffs). Idempotent.
    Setup,
    /// Build the daemon (and the embedded eBPF object).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Set up, build and run the daemon in the foreground; extra arguments go to `netd daemon`.
    Run {
        #[arg(long)]
        release: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then run fmt, clippy and every test tier (unit, program test-runs, end-to-end).
    Test {
        /// Only run tests whose name contains this filter.
        filter: Option<String>,
    },
    /// Set up, then run the fuzz targets of the front doors (fuzz/) from their seeds.
    Fuzz {
        /// Which targets (all when none is named).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(fuzz::TARGETS))]
        targets: Vec<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 600)]
        secs: u64,
    },
    /// Set up, then run the benchmarks in throwaway namespaces and print the figures.
    Bench {
        /// Which parts to run.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "latency,datapath,publish,isolation,programs,vip,metrics,counters,runtimes,flood,macvlan"
        )]
        suites: Vec<bench::Suite>,
        /// Containers to create for the run/rm latency benchmark.
        #[arg(long, default_value_t = 200)]
        containers: usize,
        /// Numbers of other published ports to measure the datapath at.
        #[arg(long, value_delimiter = ',', default_value = "0,100,1000,10000")]
        ports: Vec<u32>,
        /// Runs per measurement (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Seconds per run.
        #[arg(long, default_value_t = 3)]
        secs: u64,
    },
    /// Benchmark traffic (used by `bench` inside its namespaces).
    #[command(hide = true)]
    BenchPeer {
        #[command(subcommand)]
        role: Peer,
    },
}

#[derive(Subcommand)]
enum Peer {
    Serve {
        tcp: u16,
        udp: u16,
        secs: u64,
        /// A TCP port that reads and discards, for `stream`.
        #[arg(long)]
        sink: Option<u16>,
    },
    /// New TCP connections per second.
    Crr {
        to: std::net::SocketAddr,
        secs: u64,
        /// Start at this time (ms since the Unix epoch), with a warm-up, so that clients
        /// measured side by side count over the same window.
        #[arg(long)]
        at: Option<u64>,
    },
    /// Throughput of one TCP connection to a `serve --sink` port, Gbit/s.
    Stream {
        to: std::net::SocketAddr,
        secs: u64,
        #[arg(long)]
        at: Option<u64>,
    },
    Rr {
        to: std::net::SocketAddr,
        secs: u64,
    },
    /// Small UDP datagrams as fast as they go (sendmmsg), datagrams sent per second.
    UdpFlood {
        to: std::net::SocketAddr,
        secs: u64,
        #[arg(long)]
        at: Option<u64>,
    },
    UdpFlows {
        to: std::net::SocketAddr,
        secs: u64,
    },
    /// Request/response on one connection: exchanges and the longest gap between answers.
    Gaps {
        to: std::net::SocketAddr,
        secs: u64,
    },
    DnsQps {
        server: std::net::SocketAddr,
        name: String,
        threads: usize,
        secs: u64,
    },
    /// COUNT connections held idle for SECS: prints "ready", then how many still answer.
    Hold {
        to: std::net::SocketAddr,
        count: usize,
        secs: u64,
    },
    /// New TCP connections per second and failed attempts, failures allowed.
    CrrCounted {
        to: std::net::SocketAddr,
        secs: u64,
    },
    /// COUNT UDP datagrams and COUNT SYNs from spoofed sources over SECS (raw socket).
    Flood {
        udp: std::net::SocketAddrV4,
        tcp: std::net::SocketAddrV4,
        count: u32,
        secs: u64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => bootstrap::setup(),
        Task::Build { release } => {
            bootstrap::setup()?;
            build(release)
        }
        Task::Run { release, args } => {
            bootstrap::setup()?;
            build(release)?;
            let mut daemon = cmd::new(netd_binary(release));
            daemon.arg("daemon").args(args);
            cmd::exec(daemon)
        }
        Task::Test { filter } => {
            bootstrap::setup()?;
            test::all(filter.as_deref())
        }
        Task::Fuzz { targets, secs } => {
            bootstrap::setup()?;
            let targets = match targets.is_empty() {
                true => fuzz::TARGETS.iter().map(|t| t.to_string()).collect(),
                false => targets,
            };
            fuzz::run(&targets, secs)
        }
        Task::Bench {
            suites,
            containers,
            ports,
            runs,
            secs,
        } => {
            bootstrap::setup()?;
            build(true)?;
            let xtask = std::env::current_exe()?;
            let opts = bench::Options {
                suites,
                containers,
                counts: ports,
                runs,
                secs,
            };
            bench::run(&netd_binary(true), &xtask, &opts)
        }
        Task::BenchPeer { role } => bench_peer(role),
    }
}

fn bench_peer(role: Peer) -> Result<()> {
    match role {
        Peer::Serve {
            tcp,
            udp,
            secs,
            sink,
        } => return bench::peer::serve(tcp, udp, secs, sink),
        Peer::Crr { to, secs, at } => {
            println!("{:.1}", bench::peer::crr(to, &window(at, secs)?)?)
        }
        Peer::Stream { to, secs, at } => {
            println!("{:.3}", bench::peer::stream(to, &window(at, secs)?)?)
        }
        Peer::Rr { to, secs } => {
            let (rate, p50, p99) = bench::peer::rr(to, secs)?;
            println!("{rate:.1} {p50:.1} {p99:.1}");
        }
        Peer::UdpFlood { to, secs, at } => {
            println!("{:.1}", bench::peer::udp_flood(to, &window(at, secs)?)?)
        }
        Peer::UdpFlows { to, secs } => println!("{:.1}", bench::peer::udp_flows(to, secs)?),
        Peer::Gaps { to, secs } => {
            let (count, longest_ms) = bench::peer::gaps(to, secs)?;
            println!("{count} {longest_ms:.2}");
        }
        Peer::DnsQps {
            server,
            name,
            threads,
            secs,
        } => println!("{:.1}", bench::peer::dns_qps(server, &name, threads, secs)?),
        Peer::Hold { to, count, secs } => bench::flood_peer::hold(to, count, secs)?,
        Peer::CrrCounted { to, secs } => {
            let (rate, failed) = bench::flood_peer::crr_counted(to, secs)?;
            println!("{rate:.1} {failed}");
        }
        Peer::Flood {
            udp,
            tcp,
            count,
            secs,
        } => println!("sent {}", bench::flood_peer::flood(udp, tcp, count, secs)?),
    }
    Ok(())
}

fn window(at: Option<u64>, secs: u64) -> Result<bench::peer::Window> {
    match at {
        Some(ms) => bench::peer::Window::at(ms, secs),
        None => Ok(bench::peer::Window::now(secs)),
    }
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

pub fn netd_binary(release: bool) -> PathBuf {
    let profile = if release { "release" } else { "debug" };
    workspace_root().join("target").join(profile).join("netd")
}

fn build(release: bool) -> Result<()> {
    let mut cargo = cmd::cargo();
    cargo.args(["build", "-p", "netd"]);
    if release {
        cargo.arg("--release");
    }
    cmd::run(cargo)
}
