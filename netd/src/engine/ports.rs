//! Published ports: host port choice, clash checks, and what the datapath is told.

use std::{
    collections::{HashMap, HashSet},
    net::Ipv4Addr,
    num::NonZeroU16,
};

use ipnetwork::Ipv4Network;

use super::{Engine, EngineError};
use crate::{
    config::{
        port::{PortMapping, Proto},
        ConfigError,
    },
    datapath::nat::Publication,
    state::model::Container,
};

impl Engine {
    /// Publishes more ports of an existing container (`netd port NAME -p SPEC`; a runtime
    /// whose ports arrive after the endpoint): checked as `run -p` is, all or nothing.
    /// Returns the mappings added, with the host ports chosen for them.
    pub async fn publish_ports(
        &mut self,
        key: &str,
        requested: &[PortMapping],
    ) -> Result<Vec<PortMapping>, EngineError> {
        let mut c = self.container(key)?.clone();
        if requested.is_empty() {
            return Err(ConfigError::Invalid {
                what: "port list",
                value: String::new(),
                why: "give at least one port to publish".into(),
            }
            .into());
        }
        let added = self.resolve_ports(&c, requested)?;
        let first = c.ports.is_empty();
        let new = Container {
            ports: added.clone(),
            ..c.clone()
        };
        let publications = self.publications(&new);
        if first {
            let port = &c.endpoints[0].host_ifname; // resolve_ports made sure there is one
            self.host.rules.mark_dnat_target(port.as_str()).await?;
        }
        if let Err(e) = self.host.rules.publish(&publications).await {
            let _ = self.host.rules.unpublish(&publications).await;
            return Err(e.into());
        }
        c.ports.extend_from_slice(&added);
        // Only the container's record changes: its files (hosts, resolv.conf) and names stay.
        if let Err(e) = self.store.save_container(&c) {
            let _ = self.host.rules.unpublish(&publications).await;
            return Err(e.into());
        }
        self.containers.insert(c.id.clone(), c);
        Ok(added)
    }

    /// Gives every requested mapping a host port (a random free one where none was asked
    /// for) and checks that none clashes with another container's, with each other, or with
    /// a port a host process has bound.
    pub(super) fn resolve_ports(
        &self,
        c: &Container,
        requested: &[PortMapping],
    ) -> Result<Vec<PortMapping>, EngineError> {
        if requested.is_empty() {
            return Ok(Vec::new());
        }
        let Some(endpoint) = c.endpoints.first() else {
            return Err(EngineError::Conflict(format!(
                "published ports need a bridge network; container {} uses --network {}",
                c.name, c.network_mode
            )));
        };
        let net = self.network(&endpoint.network_id)?;
        if net.internal {
            return Err(EngineError::Conflict(format!(
                "network {} is internal: its containers cannot publish ports",
                net.name
            )));
        }
        // Only what can clash goes into the indexes (everything when a random port must be
        // picked): one more port next to 10,000 published ones is then a pass, not 10,000
        // insertions.
        let wanted = Wanted::of(requested);
        let mut taken = PortIndex::default();
        for o in self.containers.values() {
            for p in o
                .ports
                .iter()
                .filter(|p| wanted.may_clash(p.proto, p.host_port))
            {
                taken.add(p, o.name.as_str());
            }
        }
        let mut bound = PortIndex::default();
        for (proto, ip, port) in self.host.facts.bound_ports() {
            if wanted.may_clash(proto, NonZeroU16::new(port)) {
                bound.add_socket(proto, ip, port, "a process on the host");
            }
        }
        let mut resolved = Vec::new();
        // Each address once: a range on one host IP is thousands of mappings.
        let host_ips: std::collections::BTreeSet<Ipv4Addr> = requested
            .iter()
            .map(|m| m.host_ip)
            .filter(|ip| !ip.is_unspecified())
            .collect();
        if let Some(ip) = host_ips
            .into_iter()
            .find(|ip| !self.host.facts.has_address(*ip))
        {
            return Err(ConfigError::invalid(
                "host IP",
                ip.to_string(),
                "is not an address of the host: publish on one of its addresses, or 0.0.0.0",
            )
            .into());
        }
        for m in requested.iter().filter(|m| m.host_port.is_some()) {
            let port = m.host_port.expect("explicit").get();
            if let Some(holder) = taken.holder(m) {
                return Err(EngineError::Conflict(format!(
                    "host port {}:{port}/{} is already published by container {holder}",
                    m.host_ip, m.proto
                )));
            }
            if bound.holder(m).is_some() {
                return Err(EngineError::Conflict(format!(
                    "host port {}:{port}/{} is in use by a process on the host",
                    m.host_ip, m.proto
                )));
            }
            taken.add(m, c.name.as_str());
            resolved.push(*m);
        }
        for m in requested.iter().filter(|m| m.host_port.is_none()) {
            let picked = self.random_port(m, &taken, &bound)?;
            taken.add(&picked, c.name.as_str());
            resolved.push(picked);
        }
        Ok(resolved)
    }

    /// A free port of the host's ephemeral range, starting at a random place in it.
    fn random_port(
        &self,
        m: &PortMapping,
        taken: &PortIndex<'_>,
        bound: &PortIndex<'_>,
    ) -> Result<PortMapping, EngineError> {
        let (lo, hi) = self.host.facts.ephemeral_ports();
        let span = u32::from(hi - lo) + 1;
        let start = rand::random::<u32>() % span;
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            let candidate = PortMapping {
                host_port: NonZeroU16::new(port),
                ..*m
            };
            if candidate.host_port.is_some()
                && taken.holder(&candidate).is_none()
                && bound.holder(&candidate).is_none()
            {
                return Ok(candidate);
            }
        }
        Err(EngineError::Conflict(format!(
            "no free host port left in {lo}-{hi} for {}/{}",
            m.container_port, m.proto
        )))
    }

    /// The datapath entries of a container's published ports: to its first interface.
    pub fn publications(&self, c: &Container) -> Vec<Publication> {
        let Some(target) = c.endpoints.first().map(|e| e.ip) else {
            return Vec::new();
        };
        c.ports
            .iter()
            .filter_map(|m| {
                Some(Publication {
                    proto: m.proto.number(),
                    host_ip: m.host_ip,
                    host_port: m.host_port?.get(),
                    target_ip: target,
                    target_port: m.container_port.get(),
                })
            })
            .collect()
    }

    /// Subnets whose connections to the outside are masqueraded: every bridge network's but
    /// the internal ones' and those created with masquerade off.
    pub(super) fn masq_subnets(&self) -> Vec<Ipv4Network> {
        self.networks
            .values()
            .filter(|n| !n.internal && n.masquerade)
            .filter_map(|n| n.subnet.map(|s| s.subnet))
            .collect()
    }

    pub(super) async fn sync_masq_subnets(&self) -> Result<(), EngineError> {
        self.host
            .rules
            .set_masq_subnets(&self.masq_subnets())
            .await
            .map_err(Into::into)
    }
}

/// Host ports in use, by protocol and port, with who holds each: a clash check is a lookup,
/// whatever the number of published ports (a 10,000-port range was quadratic as a list).
#[derive(Default)]
struct PortIndex<'a>(HashMap<(Proto, u16), Vec<(PortMapping, &'a str)>>);

impl<'a> PortIndex<'a> {
    fn add(&mut self, m: &PortMapping, holder: &'a str) {
        if let Some(port) = m.host_port {
            let held = self.0.entry((m.proto, port.get())).or_default();
            held.push((*m, holder));
        }
    }

    /// A host socket's port, as a mapping that holds it.
    fn add_socket(&mut self, proto: Proto, host_ip: Ipv4Addr, port: u16, holder: &'a str) {
        let mapping = PortMapping {
            proto,
            host_ip,
            host_port: NonZeroU16::new(port),
            container_port: NonZeroU16::MIN,
        };
        self.add(&mapping, holder);
    }

    /// Who holds the host port `m` asks for (see `PortMapping::clashes_with`).
    fn holder(&self, m: &PortMapping) -> Option<&'a str> {
        let port = m.host_port?.get();
        let held = self.0.get(&(m.proto, port))?;
        held.iter()
            .find(|(t, _)| t.clashes_with(m))
            .map(|(_, holder)| *holder)
    }
}

/// The host ports a request asks for, or "any" when one of them is to be picked at random.
enum Wanted {
    Any,
    Ports(HashSet<(Proto, u16)>),
}

impl Wanted {
    fn of(requested: &[PortMapping]) -> Self {
        let explicit: Option<HashSet<_>> = requested
            .iter()
            .map(|m| m.host_port.map(|p| (m.proto, p.get())))
            .collect();
        explicit.map_or(Self::Any, Self::Ports)
    }

    fn may_clash(&self, proto: Proto, port: Option<NonZeroU16>) -> bool {
        match (self, port) {
            (Self::Any, _) => true,
            (Self::Ports(ports), Some(port)) => ports.contains(&(proto, port.get())),
            (Self::Ports(_), None) => false,
        }
    }
}
