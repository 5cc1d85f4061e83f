//! Networks and containers of runtimes (Docker's network plugin): made, joined, published
//! and removed when the runtime asks, found by the runtime's own ids. Retried calls find
//! what the first one made.

use std::{net::Ipv4Addr, path::PathBuf};

use super::{
    endpoints::{plug_of, EndpointRequest},
    Engine, EngineError,
};
use crate::{
    config::{
        mac::Mac,
        names::{IfName, Name},
        network::NetworkSpec,
        origin::Origin,
    },
    state::model::{new_id, Container, Network, Sandbox},
};

/// An endpoint a runtime asks for: its veth pair is made at once, with the container end
/// left in the daemon's namespace for the runtime to move into its sandbox.
#[derive(Clone, Debug)]
pub struct RuntimeEndpoint {
    /// The runtime's id of the endpoint.
    pub origin: Origin,
    /// The netd network's id.
    pub network: String,
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<Mac>,
    /// `ip` was handed out by netd's IPAM for this endpoint.
    pub from_ipam: bool,
    /// Names of the endpoint on its network (netd's DNS, VIP aliases).
    pub aliases: Vec<String>,
}

impl Engine {
    pub fn network_of_origin(&self, origin: &Origin) -> Option<&Network> {
        self.networks.values().find(|n| &n.origin == origin)
    }

    pub fn container_of_origin(&self, origin: &Origin) -> Option<&Container> {
        self.containers.values().find(|c| &c.origin == origin)
    }

    /// Makes a runtime's network, or finds the one an earlier call made. A retry that asks
    /// for other values is refused: acknowledging it would hand back the old ones.
    pub async fn create_runtime_network(
        &mut self,
        spec: NetworkSpec,
    ) -> Result<Network, EngineError> {
        if let Some(net) = self.network_of_origin(&spec.origin) {
            let differs = |what: &str, had: String, asked: String| {
                EngineError::Conflict(format!(
                    "network {} exists with {what} {had}; a retry asks for {asked}: remove it first",
                    net.name
                ))
            };
            if net.subnet != spec.subnet {
                let show = |s: Option<crate::config::network::SubnetSpec>| {
                    s.map_or("none".into(), |s| {
                        format!("{} (gateway {})", s.subnet, s.gateway)
                    })
                };
                return Err(differs("subnet", show(net.subnet), show(spec.subnet)));
            }
            if net.internal != spec.internal {
                return Err(differs(
                    "internal",
                    net.internal.to_string(),
                    spec.internal.to_string(),
                ));
            }
            return Ok(net.clone());
        }
        self.create_network(spec).await
    }

    /// Removes a runtime's network; one that is gone already is no error.
    pub async fn remove_runtime_network(&mut self, origin: &Origin) -> Result<(), EngineError> {
        let Some(id) = self.network_of_origin(origin).map(|n| n.id.clone()) else {
            return Ok(());
        };
        self.remove_network_of_anyone(&id).await.map(|_| ())
    }

    /// Makes a runtime's endpoint as a container of its own (named after the runtime's id),
    /// or finds the one an earlier call made.
    pub async fn create_runtime_endpoint(
        &mut self,
        req: RuntimeEndpoint,
    ) -> Result<Container, EngineError> {
        if let Some(c) = self.container_of_origin(&req.origin) {
            let e = c.endpoints.first();
            let (had_ip, had_mac) = (e.map(|e| e.ip), e.map(|e| e.mac));
            let other_ip = req.ip.filter(|ip| Some(*ip) != had_ip);
            let other_mac = req.mac.filter(|mac| Some(*mac) != had_mac);
            let other_net = e.filter(|e| e.network_id != req.network);
            if other_ip.is_some() || other_mac.is_some() || other_net.is_some() {
                return Err(EngineError::Conflict(format!(
                    "endpoint {} exists with address {} and MAC {}; a retry asks for {}: remove it first",
                    c.name,
                    had_ip.map_or("none".into(), |ip| ip.to_string()),
                    had_mac.map_or("none".into(), |m| m.to_string()),
                    other_ip.map(|ip| format!("address {ip}"))
                        .or(other_mac.map(|m| format!("MAC {m}")))
                        .unwrap_or_else(|| format!("network {}", req.network)),
                )));
            }
            return Ok(c.clone());
        }
        for alias in &req.aliases {
            Name::parse("alias", alias)?;
        }
        let net = self
            .networks
            .get(&req.network)
            .ok_or_else(|| EngineError::not_found("network", &req.network))?
            .clone();
        let name = Name::parse("container name", &req.origin.container_name())?;
        if let Some(other) = self.containers.values().find(|c| c.name == name) {
            return Err(EngineError::Conflict(format!(
                "container name {name} is already in use by container {}",
                other.id.get(..12).unwrap_or(&other.id)
            )));
        }
        let mut c = Container {
            id: new_id(),
            hostname: String::new(),
            name,
            created: chrono::Utc::now(),
            network_mode: net.name.to_string(),
            sandbox: Sandbox::Runtime { path: None },
            endpoints: Vec::new(),
            command: Vec::new(),
            process: None,
            ports: Vec::new(),
            exposed: Vec::new(),
            links: Vec::new(),
            origin: req.origin,
            removing: false,
        };
        let endpoint = self
            .attach_endpoint(EndpointRequest {
                container: c.name.as_str(),
                netns: self.daemon_netns.clone(),
                network: &net,
                ifname: IfName::parse("eth0").expect("valid"),
                ip: req.ip,
                mac: req.mac,
                aliases: req.aliases,
                default_route: true,
                dnat_target: false,
                from_ipam: req.from_ipam,
                handover: true,
            })
            .await?;
        c.endpoints.push(endpoint.clone());
        if let Err(e) = self.store.save_container(&c) {
            let _ = self.detach_endpoint(&c, &endpoint).await;
            return Err(e.into());
        }
        self.containers.insert(c.id.clone(), c.clone());
        self.refresh_names();
        Ok(c)
    }

    /// Records the runtime's sandbox of a container (`None` when it left it).
    pub fn set_runtime_sandbox(
        &mut self,
        key: &str,
        path: Option<PathBuf>,
    ) -> Result<Container, EngineError> {
        if let Some(path) = &path {
            self.guard_runtime_sandbox(path)?;
        }
        let mut c = self.container(key)?.clone();
        c.sandbox = Sandbox::Runtime { path };
        self.store.save_container(&c)?;
        self.containers.insert(c.id.clone(), c.clone());
        // Joined, it is a VIP backend and a name; left, neither.
        self.refresh_names();
        Ok(c)
    }

    /// Removes a runtime's container; one that is gone already is no error.
    pub async fn remove_runtime_container(&mut self, origin: &Origin) -> Result<(), EngineError> {
        let Some(id) = self.container_of_origin(origin).map(|c| c.id.clone()) else {
            return Ok(());
        };
        self.remove_container_of_anyone(&id, true).await.map(|_| ())
    }

    /// Takes every published port of a container out of the datapath.
    pub async fn unpublish_ports(&mut self, key: &str) -> Result<(), EngineError> {
        let mut c = self.container(key)?.clone();
        if c.ports.is_empty() {
            return Ok(());
        }
        self.host.rules.unpublish(&self.publications(&c)).await?;
        c.ports.clear();
        self.store.save_container(&c)?;
        self.containers.insert(c.id.clone(), c);
        Ok(())
    }

    /// What is missing of a container's interfaces and datapath entries (CNI's CHECK);
    /// empty when everything is in place.
    pub async fn check_container(&self, key: &str) -> Result<Vec<String>, EngineError> {
        let c = self.container(key)?;
        let (netns, handover) = match &c.sandbox {
            Sandbox::Owned { path } | Sandbox::External { path } => {
                if !self.host.links.netns_alive(path) {
                    return Ok(vec![format!("namespace {} is gone", path.display())]);
                }
                (path.clone(), false)
            }
            Sandbox::Runtime { .. } => (self.daemon_netns.clone(), true),
            Sandbox::Host | Sandbox::Shared { .. } => return Ok(Vec::new()),
        };
        let mut problems = Vec::new();
        for e in &c.endpoints {
            let Some(net) = self.networks.get(&e.network_id) else {
                problems.push(format!("network {} of {} is gone", e.network_id, e.ifname));
                continue;
            };
            let mut plug = plug_of(net, netns.clone(), e, !c.ports.is_empty());
            plug.handover = handover;
            match self.host.driver(net.driver) {
                Some(driver) => problems.extend(driver.check(&plug).await),
                None => problems.push(format!("network {} gives no interface", net.name)),
            }
        }
        Ok(problems)
    }
}
