//! The embedded DNS of user-defined networks: a server on each network's gateway address
//! (port 53, UDP and TCP) answering container names, hostnames and aliases scoped to the
//! networks the asking container shares with them, and forwarding every other name to the
//! host's resolvers.

mod forward;
pub mod names;
mod server;
pub mod tcp;

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
};

use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

pub use names::{has_dns, Names};
use server::{Handler, SharedNames};

/// A network whose containers have names, as its server needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsNetwork {
    pub id: String,
    pub name: String,
    /// Where the server listens (port 53): a bridge's gateway, or in a container's
    /// namespace [`CONTAINER_DNS`].
    pub addr: Ipv4Addr,
    pub internal: bool,
    /// The container namespace the server listens in (a macvlan network's containers cannot
    /// reach the host); the daemon's own when `None`.
    pub netns: Option<std::path::PathBuf>,
    /// The address of the only container a server in its namespace answers.
    pub client: Option<Ipv4Addr>,
}

/// The address of the server in a container's namespace, as Docker's embedded DNS.
pub const CONTAINER_DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

#[derive(Debug, thiserror::Error)]
#[error("DNS of network {network} on {addr}:53: {source}")]
pub struct DnsError {
    network: String,
    addr: Ipv4Addr,
    #[source]
    source: std::io::Error,
}

struct Running {
    spec: DnsNetwork,
    /// Dropping the server stops its tasks.
    _server: Server<Handler>,
    /// The TCP side ([`tcp::serve`]): aborted with the server.
    tcp: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.tcp.abort();
    }
}

/// Queries a network's server answered, and those it answered with an error (FORMERR,
/// REFUSED, SERVFAIL) or could not answer.
#[derive(Debug, Default)]
pub struct DnsCounters {
    pub queries: AtomicU64,
    pub failures: AtomicU64,
    /// TCP connections closed at once: the server held [`tcp::MAX_TCP_CONNECTIONS`].
    pub tcp_refused: AtomicU64,
}

/// What a network's server counted, by network id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsCounts {
    pub network_id: String,
    pub queries: u64,
    pub failures: u64,
    pub tcp_refused: u64,
}

pub struct Dns {
    names: SharedNames,
    upstreams: Arc<Vec<SocketAddr>>,
    servers: Mutex<HashMap<String, Running>>,
    /// Servers in containers' namespaces, by endpoint id.
    in_containers: Mutex<HashMap<String, Running>>,
    /// By network id; kept when a server restarts, so that counters only grow.
    counters: Mutex<HashMap<String, Arc<DnsCounters>>>,
}

impl Dns {
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Self {
            names: Arc::new(RwLock::new(Arc::new(Names::default()))),
            upstreams: Arc::new(upstreams),
            servers: Mutex::new(HashMap::new()),
            in_containers: Mutex::new(HashMap::new()),
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// The counters of every network that had a server.
    pub fn counters(&self) -> Vec<DnsCounts> {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters
            .iter()
            .map(|(id, c)| {
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                DnsCounts {
                    network_id: id.clone(),
                    queries: get(&c.queries),
                    failures: get(&c.failures),
                    tcp_refused: get(&c.tcp_refused),
                }
            })
            .collect()
    }

    /// Replaces the names every server answers.
    pub fn set_names(&self, names: Names) {
        *self.names.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(names);
    }

    /// Serves exactly `networks`: starts the missing servers, stops those of networks gone or
    /// changed. A server that cannot start is reported; the others still run.
    pub async fn serve(&self, networks: &[DnsNetwork]) -> Result<(), Vec<DnsError>> {
        let mut errors = Vec::new();
        let missing: Vec<DnsNetwork> = {
            let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
            servers.retain(|id, r| networks.iter().any(|n| n.id == *id && n == &r.spec));
            networks
                .iter()
                .filter(|n| !servers.contains_key(&n.id))
                .cloned()
                .collect()
        };
        for spec in missing {
            match self.start(&spec).await {
                Ok((server, tcp)) => {
                    let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
                    servers.insert(
                        spec.id.clone(),
                        Running {
                            spec,
                            _server: server,
                            tcp,
                        },
                    );
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Runs `spec`'s server in its container's namespace under `key` (an endpoint id),
    /// replacing one of another spec; one of this spec runs on.
    pub async fn serve_in(&self, key: &str, spec: &DnsNetwork) -> Result<(), DnsError> {
        {
            let servers = self.in_containers.lock().unwrap_or_else(|p| p.into_inner());
            if servers.get(key).is_some_and(|r| &r.spec == spec) {
                return Ok(());
            }
        }
        self.stop_in(key);
        let (server, tcp) = self.start(spec).await?;
        let running = Running {
            spec: spec.clone(),
            _server: server,
            tcp,
        };
        let mut servers = self.in_containers.lock().unwrap_or_else(|p| p.into_inner());
        servers.insert(key.to_string(), running);
        Ok(())
    }

    /// Stops the server of `key`: its sockets would keep the namespace alive.
    pub fn stop_in(&self, key: &str) {
        let mut servers = self.in_containers.lock().unwrap_or_else(|p| p.into_inner());
        servers.remove(key);
    }

    /// The network's server: hickory on UDP, [`tcp::serve`] on TCP.
    async fn start(
        &self,
        spec: &DnsNetwork,
    ) -> Result<(Server<Handler>, tokio::task::JoinHandle<()>), DnsError> {
        let addr = SocketAddr::from((spec.addr, 53));
        let err = |source| DnsError {
            network: spec.name.clone(),
            addr: spec.addr,
            source,
        };
        let (udp, tcp) = match &spec.netns {
            None => (
                UdpSocket::bind(addr).await.map_err(err)?,
                TcpListener::bind(addr).await.map_err(err)?,
            ),
            Some(netns) => {
                let netns = netns.clone();
                let at = std::net::SocketAddrV4::new(spec.addr, 53);
                let (udp, tcp) =
                    tokio::task::spawn_blocking(move || crate::netns::sockets_in(&netns, at))
                        .await
                        .map_err(|e| err(std::io::Error::other(e)))?
                        .map_err(err)?;
                (
                    UdpSocket::from_std(udp).map_err(err)?,
                    TcpListener::from_std(tcp).map_err(err)?,
                )
            }
        };
        let counters = Arc::clone(
            self.counters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(spec.id.clone())
                .or_default(),
        );
        let handler = Handler {
            counters,
            network: spec.id.clone(),
            internal: spec.internal,
            client: spec.client,
            names: Arc::clone(&self.names),
            upstreams: Arc::clone(&self.upstreams),
            forwards: Arc::new(tokio::sync::Semaphore::new(server::MAX_FORWARDS)),
        };
        let tcp = tokio::spawn(tcp::serve(tcp, handler.clone()));
        let mut server = Server::new(handler);
        server.register_socket(udp);
        Ok((server, tcp))
    }
}

/// The name servers of a resolv.conf, port 53.
pub fn resolv_conf_servers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_servers_of_resolv_conf() {
        let text = "# x\nsearch lan\nnameserver 10.0.0.1\nnameserver ::1\nnameserver bogus\n";
        assert_eq!(
            resolv_conf_servers(text),
            vec!["10.0.0.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }
}
