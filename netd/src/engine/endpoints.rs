//! Container interfaces: address, veth and datapath for one container on one network, and
//! live connect/disconnect.

use std::{net::Ipv4Addr, path::PathBuf};

use super::{
    host::{Plug, Unplug},
    ipam_pools::IPAM_HOLDER,
    Engine, EngineError,
};
use crate::{
    config::{
        mac::Mac,
        names::{IfName, Name},
        network::parse_ipv4,
        ConfigError,
    },
    state::model::{lan_ifindex, new_id, Container, Endpoint, Network, Sandbox},
};

/// What a new interface should look like; the engine fills in the rest.
pub(super) struct EndpointRequest<'a> {
    pub container: &'a str,
    pub netns: PathBuf,
    pub network: &'a Network,
    pub ifname: IfName,
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<Mac>,
    pub aliases: Vec<String>,
    pub default_route: bool,
    /// The container publishes ports.
    pub dnat_target: bool,
    /// `ip` was handed out by netd's IPAM for this endpoint (Docker asked for it first).
    pub from_ipam: bool,
    /// The runtime moves the container end into its sandbox and configures it (Docker):
    /// it stays in `netns`, named after the host end, and `ifname` is not used.
    pub handover: bool,
}

impl Engine {
    /// Reserves an address and plugs the interface; on failure the address is released.
    pub(super) async fn attach_endpoint(
        &mut self,
        req: EndpointRequest<'_>,
    ) -> Result<Endpoint, EngineError> {
        let net = req.network;
        let driver = self.driver(net)?;
        if let Some(mac) = req.mac {
            self.check_mac_free(net, mac)?;
        }
        // Without a host end there is no port to take over or to publish through.
        if !driver.host_end() && (req.handover || req.dnat_target) {
            return Err(EngineError::Conflict(format!(
                "network {} is a {} network: {}",
                net.name,
                net.driver.as_str(),
                match req.handover {
                    true => "a runtime cannot take over its interfaces yet",
                    false => "its containers have addresses of their own on the LAN, so ports are not published (-p) there",
                }
            )));
        }
        self.check_passthru_free(net)?;
        let pool = self.pools.get_mut(&net.id).ok_or_else(|| {
            EngineError::Conflict(format!(
                "network {} ({} driver) gives containers no interface",
                net.name,
                net.driver.as_str()
            ))
        })?;
        let ip = match req.ip {
            Some(ip) if req.from_ipam => pool
                .take_over(ip, IPAM_HOLDER, req.container)
                .map(|()| ip)?,
            Some(ip) => pool.reserve(ip, req.container).map(|()| ip)?,
            None => pool.allocate(req.container)?,
        };
        let prefix = pool.spec().subnet.prefix();
        let ip = self
            .clear_on_lan(net, ip, req.ip.is_some(), req.container)
            .await?;
        let host_ifname = self.new_host_ifname();
        let ifname = match req.handover {
            true => IfName::parse(&format!("{host_ifname}c")).expect("12 ASCII bytes"),
            false => req.ifname,
        };
        let endpoint = Endpoint {
            id: self.new_endpoint_id(),
            network_id: net.id.clone(),
            ifname,
            host_ifname,
            ip,
            prefix,
            mac: req.mac.unwrap_or_else(|| Mac::from_ipv4(ip)),
            aliases: req.aliases,
            default_route: req.default_route && !net.internal,
        };
        if let Err(e) = self.add_alias_vips(&net.id, &endpoint.aliases).await {
            self.release(&net.id, ip);
            return Err(e);
        }
        let mut plug = plug_of(net, req.netns, &endpoint, req.dnat_target);
        plug.handover = req.handover;
        if let Err(e) = driver.attach(&plug).await {
            self.release(&net.id, ip);
            self.prune_alias_vips().await;
            return Err(e.into());
        }
        self.serve_dns_in(net, &plug.netns, &endpoint).await;
        Ok(endpoint)
    }

    /// A random id whose macvlan ifindex ([`lan_ifindex`]) is no other endpoint's.
    fn new_endpoint_id(&self) -> String {
        loop {
            let id = new_id();
            let index = lan_ifindex(&id);
            let taken = self
                .containers
                .values()
                .flat_map(|c| &c.endpoints)
                .any(|e| lan_ifindex(&e.id) == index);
            if !taken {
                return id;
            }
        }
    }

    /// A MAC asked for must be nobody's on the bridge: the port's FDB entry is pinned to it,
    /// and removing the container would remove the owner's entry too (a gateway's takes the
    /// whole network's gateway with it).
    fn check_mac_free(&self, net: &Network, mac: Mac) -> Result<(), EngineError> {
        let refuse = |why: String| {
            Err(EngineError::Invalid(ConfigError::invalid(
                "MAC address",
                mac.to_string(),
                why,
            )))
        };
        if mac.is_gateway() {
            return refuse(format!(
                "{} is reserved for netd's bridges (their gateway MACs)",
                Mac::GATEWAY_PREFIX
            ));
        }
        let holder = self.containers.values().find(|c| {
            c.endpoints
                .iter()
                .any(|e| e.network_id == net.id && e.mac == mac)
        });
        if let Some(c) = holder {
            return refuse(format!(
                "is already used by container {} on network {}",
                c.name, net.name
            ));
        }
        Ok(())
    }

    /// Removes the interface and frees its address.
    pub(super) async fn detach_endpoint(
        &mut self,
        c: &Container,
        endpoint: &Endpoint,
    ) -> Result<(), EngineError> {
        self.host.dns.stop_dns_in(&endpoint.id);
        // An endpoint whose network record is gone can only be a bridge's: a macvlan
        // network is removed only once it has no endpoints.
        let driver = self
            .networks
            .get(&endpoint.network_id)
            .and_then(|n| self.host.driver(n.driver))
            .unwrap_or_else(|| self.host.drivers.bridge.clone());
        let unplug = Unplug {
            endpoint_id: endpoint.id.clone(),
            host_ifname: endpoint.host_ifname.clone(),
            ifname: endpoint.ifname.clone(),
            netns: self.own_netns(c).ok(),
        };
        let result = driver.detach(&unplug).await;
        self.release(&endpoint.network_id, endpoint.ip);
        result.map_err(Into::into)
    }

    /// Frees an endpoint's address, or hands it back to netd's IPAM when a runtime got it
    /// there: the runtime releases it itself (Docker's ReleaseAddress after DeleteEndpoint).
    fn release(&mut self, network_id: &str, ip: Ipv4Addr) {
        let handed_out = self
            .networks
            .get(network_id)
            .and_then(|n| n.ipam_pool.as_ref())
            .and_then(|id| self.ipam_pools.get(id))
            .is_some_and(|p| p.addresses.contains_key(&ip));
        if let Some(pool) = self.pools.get_mut(network_id) {
            match handed_out {
                true => pool.give_back(ip, IPAM_HOLDER),
                false => pool.release(ip),
            }
        }
    }

    /// `veth` and 7 hex digits, not used by any endpoint.
    fn new_host_ifname(&self) -> IfName {
        loop {
            let name = format!("veth{}", &new_id()[..7]);
            let taken = self
                .containers
                .values()
                .flat_map(|c| &c.endpoints)
                .any(|e| e.host_ifname.as_str() == name);
            if !taken {
                return IfName::parse(&name).expect("11 ASCII bytes");
            }
        }
    }

    /// The namespace a container's interfaces go into, if it may have interfaces of its own.
    pub(super) fn own_netns(&self, c: &Container) -> Result<PathBuf, EngineError> {
        match &c.sandbox {
            Sandbox::Owned { path } | Sandbox::External { path } if c.network_mode != "none" => Ok(path.clone()),
            Sandbox::Runtime { .. } => Err(EngineError::Conflict(format!(
                "container {} belongs to {}: connect and disconnect it there",
                c.name,
                c.origin.kind()
            ))),
            _ => Err(EngineError::Conflict(format!(
                "container {} uses --network {}: it shares a namespace or has none of its own to connect",
                c.name, c.network_mode
            ))),
        }
    }

    pub async fn connect(
        &mut self,
        network: &str,
        container: &str,
        ip: Option<&str>,
        aliases: &[String],
    ) -> Result<Endpoint, EngineError> {
        self.connect_interface(network, container, ip, aliases, None, None)
            .await
    }

    /// Connects with a chosen interface name (CNI's CNI_IFNAME) and MAC, where given.
    pub async fn connect_interface(
        &mut self,
        network: &str,
        container: &str,
        ip: Option<&str>,
        aliases: &[String],
        ifname: Option<&str>,
        mac: Option<&str>,
    ) -> Result<Endpoint, EngineError> {
        let net = self.network(network)?.clone();
        let c = self.container(container)?.clone();
        let ip = ip.map(|ip| parse_ipv4("IP address", ip)).transpose()?;
        for alias in aliases {
            Name::parse("alias", alias)?;
        }
        if c.endpoint_on(&net.id).is_some() {
            return Err(EngineError::Conflict(format!(
                "container {} is already connected to network {}",
                c.name, net.name
            )));
        }
        let netns = self.own_netns(&c)?;
        let ifname = match ifname {
            Some(name) => {
                let name = IfName::parse(name)?;
                if c.endpoints.iter().any(|e| e.ifname == name) {
                    return Err(EngineError::Conflict(format!(
                        "container {} already has an interface {name}",
                        c.name
                    )));
                }
                name
            }
            None => next_ifname(&c),
        };
        let mac = mac.map(str::parse::<Mac>).transpose()?;
        let default_route = !c.endpoints.iter().any(|e| e.default_route);
        let endpoint = self
            .attach_endpoint(EndpointRequest {
                container: c.name.as_str(),
                netns,
                network: &net,
                ifname,
                ip,
                mac,
                aliases: aliases.to_vec(),
                default_route,
                dnat_target: !c.ports.is_empty(),
                from_ipam: false,
                handover: false,
            })
            .await?;
        let mut updated = c.clone();
        updated.endpoints.push(endpoint.clone());
        if let Err(e) = self.commit_container(updated) {
            let _ = self.detach_endpoint(&c, &endpoint).await;
            self.prune_alias_vips().await;
            return Err(e);
        }
        Ok(endpoint)
    }

    pub async fn disconnect(&mut self, network: &str, container: &str) -> Result<(), EngineError> {
        let net = self.network(network)?.clone();
        let c = self.container(container)?.clone();
        let Some(endpoint) = c.endpoint_on(&net.id).cloned() else {
            return Err(EngineError::Conflict(format!(
                "container {} is not connected to network {}",
                c.name, net.name
            )));
        };
        if !c.ports.is_empty() && c.endpoints.first().map(|e| &e.id) == Some(&endpoint.id) {
            return Err(EngineError::Conflict(format!(
                "container {} publishes ports through network {}; remove the container to unpublish them",
                c.name, net.name
            )));
        }
        let mut updated = c.clone();
        updated.endpoints.retain(|e| e.id != endpoint.id);
        let result = self.detach_endpoint(&c, &endpoint).await;
        self.host.rules.flush_connections(endpoint.ip).await;
        if endpoint.default_route {
            self.move_default_route(&mut updated).await;
        }
        // The interface is gone whatever the disk says: recorded, and written when it can be.
        self.record_done(updated);
        self.prune_alias_vips().await;
        result
    }

    /// After the interface with the default route left, routes through the next one that
    /// may carry it, as Docker does.
    async fn move_default_route(&mut self, c: &mut Container) {
        let Ok(netns) = self.own_netns(c) else { return };
        for e in c.endpoints.iter_mut() {
            let Some(net) = self.networks.get(&e.network_id) else {
                continue;
            };
            let Some(subnet) = net.subnet.filter(|_| !net.internal) else {
                continue;
            };
            if self
                .host
                .links
                .set_default_route(&netns, subnet.gateway)
                .await
                .is_ok()
            {
                e.default_route = true;
                return;
            }
        }
    }
}

/// The kernel work that makes `endpoint` exist in `netns`.
pub(super) fn plug_of(
    net: &Network,
    netns: PathBuf,
    endpoint: &Endpoint,
    dnat_target: bool,
) -> Plug {
    let gateway = net.subnet.map(|s| s.gateway);
    Plug {
        endpoint_id: endpoint.id.clone(),
        netns,
        bridge: match net.macvlan_parent() {
            Some(parent) => parent,
            None => net.bridge.clone().expect("bridge networks have a bridge"),
        },
        host_ifname: endpoint.host_ifname.clone(),
        ifname: endpoint.ifname.clone(),
        ip: endpoint.ip,
        prefix: endpoint.prefix,
        mac: endpoint.mac,
        mtu: net.mtu,
        default_gateway: gateway.filter(|_| endpoint.default_route),
        network: net.datapath_id(),
        dnat_target,
        handover: false,
        macvlan: net
            .macvlan
            .as_ref()
            .zip(net.macvlan_parent())
            .map(|(m, parent)| super::host::MacvlanPlug {
                parent,
                mode: m.mode,
            }),
    }
}

/// The lowest ethN not used by the container.
pub(super) fn next_ifname(c: &Container) -> IfName {
    let n = (0..)
        .find(|n| {
            !c.endpoints
                .iter()
                .any(|e| e.ifname.as_str() == format!("eth{n}"))
        })
        .expect("fewer than u32::MAX interfaces");
    IfName::parse(&format!("eth{n}")).expect("short")
}
