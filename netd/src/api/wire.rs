//! Response bodies, shaped like Docker's so that its users find the fields they look for.

use netd_common::isolation::{direction_name, DropReason};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{
    config::{
        alias::{OPT_ALIAS_LB, OPT_ALIAS_MODE},
        network::{OPT_GATEWAY_MODE, OPT_ICC, OPT_MASQUERADE},
    },
    engine::{AliasView, Engine},
    state::model::{Container, Network, Origin, Sandbox},
};

/// Body of `POST /v1/networks/{name}/update`: options to change on a live network.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateNetwork {
    pub options: std::collections::BTreeMap<String, String>,
}

/// Body of `POST /v1/networks/{name}/connect`.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    pub container: String,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The interface's name inside; the lowest free ethN when absent.
    #[serde(default)]
    pub ifname: Option<String>,
    #[serde(default)]
    pub mac_address: Option<String>,
}

/// Body of `POST /v1/networks/{name}/disconnect`.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Disconnect {
    pub container: String,
}

pub fn network(engine: &Engine, net: &Network) -> Value {
    let mut containers = Map::new();
    for c in engine.containers() {
        if let Some(e) = c.endpoint_on(&net.id) {
            containers.insert(
                c.id.clone(),
                json!({
                    "Name": c.name,
                    "EndpointID": e.id,
                    "MacAddress": e.mac.to_string(),
                    "IPv4Address": format!("{}/{}", e.ip, e.prefix),
                    "IPv6Address": "",
                }),
            );
        }
    }
    let config: Vec<Value> = net
        .subnet
        .iter()
        .map(|s| {
            let mut cfg = json!({"Subnet": s.subnet.to_string(), "Gateway": s.gateway.to_string()});
            if let Some(range) = s.ip_range {
                cfg["IPRange"] = json!(range.to_string());
            }
            cfg
        })
        .collect();
    let mut options = Map::new();
    if let Some(bridge) = &net.bridge {
        options.insert(
            "com.docker.network.bridge.name".into(),
            json!(bridge.as_str()),
        );
        options.insert(
            "com.docker.network.driver.mtu".into(),
            json!(net.mtu.to_string()),
        );
        options.insert(OPT_ICC.into(), json!(net.icc.to_string()));
        options.insert(OPT_MASQUERADE.into(), json!(net.masquerade.to_string()));
        let mode = if net.routed { "routed" } else { "nat" };
        options.insert(OPT_GATEWAY_MODE.into(), json!(mode));
        let aliases = if net.vip_aliases { "vip" } else { "dns" };
        options.insert(OPT_ALIAS_MODE.into(), json!(aliases));
        options.insert(OPT_ALIAS_LB.into(), json!(net.alias_lb.as_str()));
    }
    if let Some((m, parent)) = net.macvlan.as_ref().zip(net.macvlan_parent()) {
        for (key, value) in m.options(&parent) {
            options.insert(key.into(), json!(value));
        }
        if net.mtu != crate::config::network::DEFAULT_MTU {
            options.insert(
                "com.docker.network.driver.mtu".into(),
                json!(net.mtu.to_string()),
            );
        }
    }
    let pool = engine.pool(&net.id);
    let drops = if net.subnet.is_some() {
        json!(drops(engine, Some(net.datapath_id())))
    } else {
        json!([])
    };
    json!({
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": "local",
        "Driver": net.driver.as_str(),
        "EnableIPv6": false,
        "Internal": net.internal,
        "Attachable": false,
        "IPAM": {"Driver": if net.ipam_pool.is_some() { "netd" } else { "default" }, "Config": config},
        "Origin": origin(&net.origin),
        "Options": options,
        "Labels": net.labels,
        "Containers": containers,
        "AddressesInUse": pool.map(|p| p.in_use()),
        "AddressesFree": pool.map(|p| p.capacity() - p.in_use() as u64),
        "Drops": drops,
    })
}

/// Drop counters, of one network (by datapath id) or all, with names for their keys.
pub fn drops(engine: &Engine, network: Option<u32>) -> Vec<Value> {
    let mut rows: Vec<_> = engine
        .host()
        .telemetry
        .drops()
        .into_iter()
        .filter(|(k, _)| network.is_none_or(|n| n == k.network))
        .collect();
    rows.sort_by_key(|(k, _)| (k.network, k.reason, k.direction));
    rows.into_iter()
        .map(|(k, c)| {
            let name = engine
                .networks()
                .find(|n| n.subnet.is_some() && n.datapath_id() == k.network)
                .map(|n| n.name.to_string())
                .unwrap_or_default();
            let reason = DropReason::from_u8(k.reason).map_or("unknown", DropReason::name);
            json!({
                "Network": name,
                "Reason": reason,
                "Direction": direction_name(k.direction),
                "Packets": c.packets,
                "Bytes": c.bytes,
            })
        })
        .collect()
}

fn state(c: &Container) -> Value {
    // A runtime's container runs while the runtime has it attached.
    if matches!(c.sandbox, Sandbox::Runtime { .. }) || c.origin.runtime_id().is_some() {
        let status = if c.is_running() { "running" } else { "created" };
        return json!({"Status": status, "Running": c.is_running(), "Pid": 0, "ExitCode": 0});
    }
    match &c.process {
        None => json!({"Status": "created", "Running": false, "Pid": 0, "ExitCode": 0}),
        Some(p) => json!({
            "Status": if p.exit_code.is_none() { "running" } else { "exited" },
            "Running": p.exit_code.is_none(),
            "Pid": if p.exit_code.is_none() { p.pid } else { 0 },
            "ExitCode": p.exit_code.unwrap_or(0),
            "StartedAt": p.started,
            "FinishedAt": p.finished,
        }),
    }
}

/// Who made it, and the runtime's id of it.
pub fn origin(o: &Origin) -> Value {
    json!({"Kind": o.kind(), "RuntimeId": o.runtime_id()})
}

pub fn container(engine: &Engine, c: &Container) -> Value {
    let mut networks = Map::new();
    for e in &c.endpoints {
        let Ok(net) = engine.network(&e.network_id) else {
            continue;
        };
        networks.insert(
            net.name.to_string(),
            json!({
                "NetworkID": net.id,
                "EndpointID": e.id,
                "Gateway": net.subnet.map(|s| s.gateway.to_string()).unwrap_or_default(),
                "IPAddress": e.ip.to_string(),
                "IPPrefixLen": e.prefix,
                "MacAddress": e.mac.to_string(),
                "Aliases": e.aliases,
                "InterfaceName": e.ifname.as_str(),
                // A macvlan lives in the container only: no host end.
                "HostInterface": match net.macvlan {
                    Some(_) => "",
                    None => e.host_ifname.as_str(),
                },
            }),
        );
    }
    if matches!(c.network_mode.as_str(), "host" | "none") {
        if let Ok(net) = engine.network(&c.network_mode) {
            networks.insert(
                net.name.to_string(),
                json!({"NetworkID": net.id, "Aliases": []}),
            );
        }
    }
    let env = engine.sandbox_env(c);
    let mut ports = Map::new();
    for e in &c.exposed {
        ports.insert(format!("{}/{}", e.port, e.proto), Value::Null);
    }
    for m in &c.ports {
        let binding = json!({"HostIp": m.host_ip.to_string(), "HostPort": m.host_port.map(|p| p.to_string())});
        let entry = ports
            .entry(format!("{}/{}", m.container_port, m.proto))
            .or_insert(json!([]));
        if !entry.is_array() {
            *entry = json!([]);
        }
        entry.as_array_mut().expect("an array").push(binding);
    }
    json!({
        "Id": c.id,
        "Name": c.name,
        "Created": c.created,
        "Path": c.command.first(),
        "Args": c.command.get(1..).unwrap_or_default(),
        "State": state(c),
        "Config": {"Hostname": c.hostname, "Cmd": c.command},
        "Origin": origin(&c.origin),
        "HostConfig": {"NetworkMode": c.network_mode},
        "NetworkSettings": {
            "SandboxKey": env.netns,
            "Networks": networks,
            "Ports": ports,
        },
    })
}

/// An alias with its VIP and backends; connections per backend come from the datapath.
pub fn alias(engine: &Engine, a: &AliasView) -> Value {
    let connections = engine.vip_connections(a.vip.id);
    let backends: Vec<Value> = a
        .backends
        .iter()
        .map(|(name, ip)| {
            let n = connections
                .iter()
                .find(|(addr, _)| addr == ip)
                .map_or(0, |(_, n)| *n);
            json!({"Container": name, "IPAddress": ip.to_string(), "Connections": n})
        })
        .collect();
    json!({
        "Name": a.name,
        "Network": a.network,
        "VIP": a.vip.ip.to_string(),
        "LB": a.vip.lb.as_str(),
        "Explicit": a.explicit,
        "Backends": backends,
    })
}
