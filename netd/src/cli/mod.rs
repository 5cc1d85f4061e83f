//! The command line: `netd daemon` and a `docker network`/`docker run`-like client of the API.

mod alias;
mod cluster;
mod container;
mod network;
mod output;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::api::client::{Client, ClientError};

pub const DEFAULT_SOCKET: &str = "/run/netd/netd.sock";

#[derive(Parser)]
#[command(
    name = "netd",
    version,
    about = "Container networking with an eBPF datapath"
)]
pub struct Cli {
    /// The daemon's API socket.
    #[arg(long, global = true, env = "NETD_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground.
    Daemon(DaemonArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Manage aliases with virtual IPs.
    #[command(subcommand)]
    Alias(alias::AliasCommand),
    /// The hosts of the cluster (`netd daemon --cluster-store`).
    #[command(subcommand)]
    Node(cluster::NodeCommand),
    /// Keeps a cluster node's lease alive (started by the daemon).
    #[command(hide = true)]
    ClusterHeartbeat(cluster::HeartbeatArgs),
    /// Create a container and start its command.
    Run(container::RunArgs),
    /// Create a container (a network sandbox) without starting anything.
    Create(container::CreateArgs),
    /// Start the command of a created or exited container.
    Start { container: String },
    /// Stop containers' commands: SIGTERM, then SIGKILL after the timeout.
    Stop {
        /// Seconds to wait before SIGKILL.
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command inside a container's namespace.
    Exec(container::ExecArgs),
    /// List containers.
    #[command(alias = "ls")]
    Ps(output::FormatArg),
    /// Show containers as JSON.
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers, their interfaces and addresses.
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List a container's published ports (like `docker port`), after publishing more with
    /// `-p` (all or none).
    Port {
        container: String,
        /// Only this container port: PORT[/PROTO].
        port: Option<String>,
        /// Publish one more port first: [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO];
        /// repeatable.
        #[arg(short = 'p', long = "publish")]
        publish: Vec<String>,
    },
    /// Print what a container's command wrote.
    Logs { container: String },
    /// Stream sampled datapath events: drops with their reason and 5-tuple, new connections
    /// through published ports and virtual IPs. Until interrupted.
    Monitor {
        /// Only events involving this container's addresses.
        #[arg(long)]
        container: Option<String>,
        /// Only events of this network.
        #[arg(long)]
        network: Option<String>,
        /// Only drops for this reason (e.g. other_network, spoofed_ip).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        format: output::FormatArg,
    },
    /// Packet and byte counters of container interfaces, read from the datapath.
    Stats {
        #[command(flatten)]
        format: output::FormatArg,
        /// Show what the datapath dropped, by network, reason and direction, instead.
        #[arg(long)]
        drops: bool,
        /// Show another view of the metrics instead: ports (published-port traffic), maps
        /// (entries, capacity, pressure), aliases (VIP backends), dns, api (operations).
        #[arg(long, conflicts_with = "drops")]
        view: Option<String>,
    },
}

#[derive(Args, Clone, Debug)]
pub struct DaemonArgs {
    #[arg(long, default_value = "/var/lib/netd")]
    pub state_dir: PathBuf,
    #[arg(long, default_value = "/sys/fs/bpf/netd")]
    pub bpffs: PathBuf,
    /// Live in this existing named network namespace (/run/netns/NAME, or a path).
    #[arg(long)]
    pub netns: Option<String>,
    /// Interface external clients arrive on and masqueraded traffic leaves by; repeatable.
    /// Default: the interfaces of the default route.
    #[arg(long = "uplink")]
    pub uplinks: Vec<String>,
    /// Resolver the embedded DNS forwards other names to, IP or IP:PORT; repeatable.
    /// Default: the name servers of /etc/resolv.conf.
    #[arg(long = "dns-upstream", value_parser = parse_upstream)]
    pub dns_upstreams: Vec<std::net::SocketAddr>,
    /// Where Prometheus scrapes `/metrics`, IP:PORT in the daemon's namespace, or `none`.
    #[arg(long, default_value = "127.0.0.1:9640", value_parser = crate::metrics::parse_addr)]
    pub metrics_addr: crate::metrics::MetricsAddr,
    /// Also serve Docker's network and IPAM plugin API as plugin NAME, on
    /// /run/docker/plugins/NAME.sock: `docker network create -d NAME [--ipam-driver NAME]`.
    #[arg(long, value_name = "NAME")]
    pub docker_plugin: Option<String>,
    /// Entries of the connection-tracking table (two per connection), set at start; a daemon
    /// restarted with another size starts its connections over.
    #[arg(long, default_value_t = netd_common::maps::CONNTRACK_MAX, value_parser = parse_conntrack_max)]
    pub conntrack_max: u32,
    #[command(flatten)]
    pub cluster: cluster::ClusterArgs,
}

impl TryFrom<&DaemonArgs> for crate::daemon::Options {
    type Error = anyhow::Error;

    fn try_from(a: &DaemonArgs) -> anyhow::Result<Self> {
        Ok(Self {
            state_dir: a.state_dir.clone(),
            bpffs: a.bpffs.clone(),
            netns: a.netns.clone(),
            uplinks: a.uplinks.clone(),
            dns_upstreams: a.dns_upstreams.clone(),
            metrics_addr: a.metrics_addr.0,
            docker_plugin: a.docker_plugin.clone(),
            conntrack_max: a.conntrack_max,
            cluster: a.cluster.options()?,
        })
    }
}

fn parse_conntrack_max(s: &str) -> Result<u32, String> {
    use netd_common::maps::{CONNTRACK_MAX_SIZE as MAX, CONNTRACK_MIN_SIZE as MIN};
    match s.parse::<u32>() {
        Ok(n) if (MIN..=MAX).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a table size from {MIN} to {MAX}")),
    }
}

fn parse_upstream(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
        .map_err(|_| format!("{s:?} is not an IP address or IP:PORT"))
}

/// Runs a client command; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32, ClientError> {
    let client = Client::new(&cli.socket);
    match cli.command {
        Command::Daemon(_) => unreachable!("main runs the daemon before any runtime starts"),
        Command::Network(cmd) => network::run(&client, cmd).await,
        Command::Alias(cmd) => alias::run(&client, cmd).await,
        Command::Node(cmd) => cluster::run(&client, cmd).await,
        Command::ClusterHeartbeat(args) => cluster::heartbeat(args).await.or_else(|e| {
            eprintln!("Error: {e:#}");
            Ok(1)
        }),
        Command::Stop { time, containers } => container::stop(&client, time, &containers).await,
        Command::Run(args) => container::run(&client, args).await,
        Command::Create(args) => container::create(&client, args).await,
        Command::Start { container } => container::start(&client, &container).await,
        Command::Exec(args) => container::exec(&client, args).await,
        Command::Ps(format) => container::ps(&client, format).await,
        Command::Inspect { containers } => container::inspect(&client, &containers).await,
        Command::Rm { force, containers } => container::rm(&client, force, &containers).await,
        Command::Logs { container } => container::logs(&client, &container).await,
        Command::Port {
            container,
            port,
            publish,
        } => container::port(&client, &container, port.as_deref(), &publish).await,
        Command::Stats {
            format,
            drops,
            view: Some(view),
        } if !drops => container::stats_view(&client, format, &view).await,
        Command::Stats { format, drops, .. } => container::stats(&client, format, drops).await,
        Command::Monitor {
            container,
            network,
            reason,
            format,
        } => {
            let mut query = Vec::new();
            for (k, v) in [
                ("container", container),
                ("network", network),
                ("reason", reason),
            ] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", seg(&v)));
                }
            }
            let path = format!("/v1/monitor?{}", query.join("&"));
            client
                .stream_lines(&path, |line| output::event(line, format.format))
                .await?;
            Ok(0)
        }
    }
}

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_conntrack_size_is_checked_and_named() {
        let parse = |size: &str| {
            Cli::try_parse_from(["netd", "daemon", "--conntrack-max", size]).map(|c| {
                match c.command {
                    Command::Daemon(a) => a.conntrack_max,
                    _ => unreachable!("a daemon command"),
                }
            })
        };
        assert_eq!(parse("4096").unwrap(), 4096);
        for bad in ["10", "x", "99999999999"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        let default = Cli::try_parse_from(["netd", "daemon"]).unwrap();
        assert!(matches!(
            default.command,
            Command::Daemon(a) if a.conntrack_max == netd_common::maps::CONNTRACK_MAX
        ));
    }
}
