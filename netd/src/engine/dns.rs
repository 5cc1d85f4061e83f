//! Keeping the embedded DNS in step with the state: a server per network with names, and the
//! names of running containers.

use super::Engine;
use std::path::Path;

use crate::{
    dns::{has_dns, DnsNetwork, Names, CONTAINER_DNS},
    state::model::{Endpoint, Network},
};

impl Engine {
    /// Hands the current container names to the DNS servers, and the backends of virtual
    /// IPs to the datapath; cheap enough for every change.
    pub(super) fn refresh_names(&self) {
        self.host.dns.set_names(Names::build(
            self.networks.values(),
            self.containers.values(),
        ));
        self.sync_vips();
    }

    /// Starts and stops DNS servers to match the networks, then refreshes the names. A server
    /// that cannot start (port 53 of its gateway taken) is logged: the network works without.
    pub(super) async fn sync_dns(&self) {
        let networks: Vec<DnsNetwork> = self
            .networks
            .values()
            // Servers of networks without a host end live in the containers (see
            // `serve_dns_in`).
            .filter(|n| has_dns(n) && !self.dns_inside(n))
            .filter_map(|n| {
                Some(DnsNetwork {
                    id: n.id.clone(),
                    name: n.name.to_string(),
                    addr: n.subnet?.gateway,
                    internal: n.internal,
                    netns: None,
                    client: None,
                })
            })
            .collect();
        if let Err(e) = self.host.dns.serve_dns(&networks).await {
            log::warn!("embedded DNS: {e}");
        }
        self.refresh_names();
    }

    /// The gateway whose DNS server the container's resolv.conf names: the one of its
    /// default-route network if that has names, else of its first network that has.
    pub(super) fn dns_server_of(
        &self,
        c: &crate::state::model::Container,
    ) -> Option<std::net::Ipv4Addr> {
        let mut endpoints: Vec<_> = c.endpoints.iter().collect();
        endpoints.sort_by_key(|e| !e.default_route);
        endpoints.iter().find_map(|e| {
            let net = self.networks.get(&e.network_id)?;
            let addr = match self.dns_inside(net) {
                true => CONTAINER_DNS,
                false => net.subnet?.gateway,
            };
            has_dns(net).then_some(addr)
        })
    }

    /// Whether the DNS server of `net` runs in each container's namespace: without a host
    /// end (a macvlan), a container cannot reach the host, where a bridge's server listens.
    fn dns_inside(&self, net: &Network) -> bool {
        self.host.driver(net.driver).is_some_and(|d| !d.host_end())
    }

    /// Starts the server of an endpoint without a host end in its container's namespace.
    /// Without a server the container still works, so a failure is logged.
    pub(super) async fn serve_dns_in(&self, net: &Network, netns: &Path, e: &Endpoint) {
        if !self.dns_inside(net) || !has_dns(net) {
            return;
        }
        let spec = DnsNetwork {
            id: net.id.clone(),
            name: net.name.to_string(),
            addr: CONTAINER_DNS,
            internal: net.internal,
            netns: Some(netns.to_path_buf()),
            client: Some(e.ip),
        };
        if let Err(err) = self.host.dns.serve_dns_in(&e.id, &spec).await {
            log::warn!("embedded DNS of {} in {}: {err}", e.ifname, netns.display());
        }
    }
}
