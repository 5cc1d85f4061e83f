//! `NetworkDriver.*`: Docker's networks and endpoints as netd networks and containers.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    body, ok, ports,
    wire::{self, required, EndpointRef, FieldError},
    Failure,
};
use crate::{
    config::{
        mac::Mac,
        network::{CreateNetwork, NetworkSpec},
        origin::Origin,
    },
    engine::{Engine, EngineError, RuntimeEndpoint, ADDRESS_SPACE},
    shared::Shared,
    state::model::{Container, Network},
};

pub async fn call(d: &Shared, method: &str, bytes: &[u8]) -> Result<Value, Failure> {
    match method {
        "GetCapabilities" => Ok(json!({"Scope": "local", "ConnectivityScope": "local"})),
        "CreateNetwork" => create_network(d, body(bytes)?).await,
        "DeleteNetwork" => {
            let req: EndpointRef = body(bytes)?;
            let origin = docker(required("NetworkID", &req.network_id)?);
            d.engine
                .lock()
                .await
                .remove_runtime_network(&origin)
                .await?;
            ok()
        }
        "CreateEndpoint" => create_endpoint(d, body(bytes)?).await,
        "DeleteEndpoint" => {
            let origin = endpoint_origin(bytes)?;
            d.engine
                .lock()
                .await
                .remove_runtime_container(&origin)
                .await?;
            ok()
        }
        "EndpointOperInfo" => {
            let req: EndpointRef = body(bytes)?;
            let engine = d.engine.lock().await;
            let c = endpoint(&engine, &req)?;
            Ok(json!({"Value": ports::oper_info(c)}))
        }
        "Join" => join(d, body(bytes)?).await,
        "Leave" => {
            let origin = endpoint_origin(bytes)?;
            let mut engine = d.engine.lock().await;
            if let Some(id) = engine.container_of_origin(&origin).map(|c| c.id.clone()) {
                engine.set_runtime_sandbox(&id, None)?;
            }
            ok()
        }
        "ProgramExternalConnectivity" => {
            let req: EndpointRef = body(bytes)?;
            let wanted = ports::requested(&req.options)?;
            let mut engine = d.engine.lock().await;
            let id = endpoint(&engine, &req)?.id.clone();
            ports::program(&mut engine, &id, &wanted).await?;
            ok()
        }
        "RevokeExternalConnectivity" => {
            let origin = endpoint_origin(bytes)?;
            let mut engine = d.engine.lock().await;
            if let Some(id) = engine.container_of_origin(&origin).map(|c| c.id.clone()) {
                engine.unpublish_ports(&id).await?;
            }
            ok()
        }
        // Node discovery is for multi-host drivers; a local one has nothing to do.
        "DiscoverNew" | "DiscoverDelete" => ok(),
        other => Err(Failure::Unknown(format!("NetworkDriver.{other}"))),
    }
}

/// The origin of the endpoint a call names (DeleteEndpoint, Leave, Revoke...).
fn endpoint_origin(bytes: &[u8]) -> Result<Origin, Failure> {
    let req: EndpointRef = body(bytes)?;
    Ok(docker(required("EndpointID", &req.endpoint_id)?))
}

fn docker(id: &str) -> Origin {
    Origin::Docker { id: id.to_string() }
}

/// The netd network of a Docker network id.
fn network<'a>(engine: &'a Engine, req: &EndpointRef) -> Result<&'a Network, Failure> {
    let id = required("NetworkID", &req.network_id)?;
    engine
        .network_of_origin(&docker(id))
        .ok_or_else(|| Failure::Refused(format!("network {id} is not a netd network")))
}

/// The netd container of a Docker endpoint id.
fn endpoint<'a>(engine: &'a Engine, req: &EndpointRef) -> Result<&'a Container, Failure> {
    let id = required("EndpointID", &req.endpoint_id)?;
    engine
        .container_of_origin(&docker(id))
        .ok_or_else(|| Failure::Refused(format!("endpoint {id} is not known to netd")))
}

/// The network spec of a Docker network: one IPv4 pool with its gateway, Docker's `-o`
/// options as netd's network options, `--internal`, and the IPAM pool it came from when
/// it came from netd's IPAM.
fn network_spec(req: &wire::CreateNetwork) -> Result<NetworkSpec, Failure> {
    let id = required("NetworkID", &req.network_id)?;
    if !req.ipv6_data.is_empty() || req.options.get(wire::OPT_IPV6) == Some(&Value::Bool(true)) {
        return Err(Failure::Refused(
            "IPv6Data: netd networks are IPv4 only; create the network without --ipv6".into(),
        ));
    }
    let data = match req.ipv4_data.as_slice() {
        [one] => one,
        [] => {
            return Err(FieldError {
                field: "IPv4Data",
                why: "is missing".into(),
            }
            .into())
        }
        more => {
            return Err(Failure::Refused(format!(
                "IPv4Data: netd networks have one subnet, not {}",
                more.len()
            )))
        }
    };
    let subnet = wire::subnet("IPv4Data.Pool", required("IPv4Data.Pool", &data.pool)?)?;
    let gateway = match data.gateway.as_str() {
        "" => None,
        gw => Some(wire::address("IPv4Data.Gateway", gw)?.0.to_string()),
    };
    let mut options = BTreeMap::new();
    match req.options.get(wire::OPT_GENERIC) {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                options.insert(k.clone(), v);
            }
        }
        Some(other) => {
            return Err(Failure::Refused(format!(
                "Options.{}: {other} is not a map of driver options",
                wire::OPT_GENERIC
            )))
        }
    }
    let internal = req.options.get(wire::OPT_INTERNAL) == Some(&Value::Bool(true));
    let mut spec = NetworkSpec::try_from(CreateNetwork {
        name: id.chars().take(12).collect(),
        subnet: Some(subnet.to_string()),
        gateway,
        internal,
        options,
        ..Default::default()
    })
    .map_err(EngineError::from)?;
    spec.origin = docker(id);
    if data.address_space == ADDRESS_SPACE {
        spec.ipam_pool = Some(subnet.to_string());
    }
    for (name, value) in &data.aux_addresses {
        let (ip, _) = wire::address("IPv4Data.AuxAddresses", value)?;
        spec.aux_addresses.insert(name.clone(), ip);
    }
    Ok(spec)
}

async fn create_network(d: &Shared, req: wire::CreateNetwork) -> Result<Value, Failure> {
    let spec = network_spec(&req)?;
    let net = d.engine.lock().await.create_runtime_network(spec).await?;
    log::info!(
        "docker network {} is netd network {}",
        req.network_id,
        net.name
    );
    ok()
}

/// What a CreateEndpoint asks for, checked.
struct EndpointAsk {
    endpoint_id: String,
    ip: Option<std::net::Ipv4Addr>,
    mac: Option<Mac>,
    aliases: Vec<String>,
}

fn endpoint_ask(req: &mut EndpointRef) -> Result<EndpointAsk, Failure> {
    let endpoint_id = required("EndpointID", &req.endpoint_id)?.to_string();
    let given = req.interface.take().unwrap_or_default();
    if !given.address_ipv6.is_empty() {
        return Err(Failure::Refused(format!(
            "Interface.AddressIPv6: {}: netd networks are IPv4 only",
            given.address_ipv6
        )));
    }
    let ip = match given.address.as_str() {
        "" => None,
        a => Some(wire::address("Interface.Address", a)?.0),
    };
    let mac = match given.mac_address.as_str() {
        "" => None,
        m => Some(m.parse::<Mac>().map_err(|e| FieldError {
            field: "Interface.MacAddress",
            why: e.to_string(),
        })?),
    };
    let aliases = match req.options.get(wire::OPT_ALIASES) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(list)) => list
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
        Some(other) => {
            return Err(Failure::Refused(format!(
                "Options.{}: {other} is not a comma-separated list of names",
                wire::OPT_ALIASES
            )))
        }
    };
    for alias in &aliases {
        crate::config::names::Name::parse("alias", alias)?;
    }
    Ok(EndpointAsk {
        endpoint_id,
        ip,
        mac,
        aliases,
    })
}

/// The checks a call's body passes before the engine sees it, alone: the fuzz targets
/// drive them with any bytes.
pub fn check(method: &str, bytes: &[u8]) -> Result<(), Failure> {
    match method {
        "CreateNetwork" => network_spec(&body(bytes)?).map(drop),
        "CreateEndpoint" => endpoint_ask(&mut body(bytes)?).map(drop),
        "DeleteNetwork" => required("NetworkID", &body::<EndpointRef>(bytes)?.network_id)
            .map(drop)
            .map_err(Into::into),
        "DeleteEndpoint" | "Leave" | "RevokeExternalConnectivity" => {
            endpoint_origin(bytes).map(drop)
        }
        "Join" => required("SandboxKey", &body::<EndpointRef>(bytes)?.sandbox_key)
            .map(drop)
            .map_err(Into::into),
        "ProgramExternalConnectivity" => {
            ports::requested(&body::<EndpointRef>(bytes)?.options).map(drop)
        }
        _ => Ok(()),
    }
}

async fn create_endpoint(d: &Shared, mut req: EndpointRef) -> Result<Value, Failure> {
    let EndpointAsk {
        endpoint_id,
        ip,
        mac,
        aliases,
    } = endpoint_ask(&mut req)?;
    let mut engine = d.engine.lock().await;
    let net = network(&engine, &req)?;
    let spec = RuntimeEndpoint {
        origin: docker(&endpoint_id),
        network: net.id.clone(),
        ip,
        mac,
        from_ipam: net.ipam_pool.is_some(),
        aliases,
    };
    let c = engine.create_runtime_endpoint(spec).await?;
    let e = &c.endpoints[0];
    // Docker takes from the driver only what it did not give itself.
    let answer = wire::Interface {
        address: if ip.is_none() {
            format!("{}/{}", e.ip, e.prefix)
        } else {
            String::new()
        },
        address_ipv6: String::new(),
        mac_address: if mac.is_none() {
            e.mac.to_string()
        } else {
            String::new()
        },
    };
    Ok(json!({"Interface": answer}))
}

async fn join(d: &Shared, req: EndpointRef) -> Result<Value, Failure> {
    let sandbox = required("SandboxKey", &req.sandbox_key)?.to_string();
    let mut engine = d.engine.lock().await;
    let net = network(&engine, &req)?.clone();
    let id = endpoint(&engine, &req)?.id.clone();
    let c = engine.set_runtime_sandbox(&id, Some(sandbox.into()))?;
    let e = &c.endpoints[0];
    let mut answer = json!({
        "InterfaceName": {"SrcName": e.ifname.as_str(), "DstPrefix": "eth"},
    });
    match net.subnet.filter(|_| !net.internal) {
        Some(subnet) => answer["Gateway"] = json!(subnet.gateway.to_string()),
        // No way out: Docker must not add its own gateway network either.
        None => answer["DisableGatewayService"] = json!(true),
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(body: Value) -> Result<NetworkSpec, String> {
        let req: wire::CreateNetwork = serde_json::from_value(body).unwrap();
        network_spec(&req).map_err(|f| match f {
            Failure::Refused(why) | Failure::Malformed(why) | Failure::Unknown(why) => why,
        })
    }

    fn data(pool: &str, space: &str) -> Value {
        json!([{"AddressSpace": space, "Pool": pool, "Gateway": "10.4.0.254/24", "AuxAddresses": {"router": "10.4.0.250"}}])
    }

    #[test]
    fn docker_networks_become_netd_specs() {
        let id = "ab".repeat(32);
        let s = spec(json!({
            "NetworkID": id,
            "Options": {"com.docker.network.generic": {"icc": "false"}, "com.docker.network.internal": true, "com.docker.network.enable_ipv6": false},
            "IPv4Data": data("10.4.0.0/24", "LocalDefault"),
            "IPv6Data": null,
        }))
        .unwrap();
        assert_eq!(s.name.as_str(), "abababababab");
        assert_eq!(s.origin, Origin::Docker { id: id.clone() });
        assert!(s.internal && !s.policy.icc);
        let subnet = s.subnet.unwrap();
        assert_eq!(subnet.gateway.to_string(), "10.4.0.254");
        assert_eq!(s.ipam_pool, None, "Docker's own IPAM");
        assert_eq!(s.aux_addresses["router"].to_string(), "10.4.0.250");
        let s =
            spec(json!({"NetworkID": id, "IPv4Data": data("10.4.0.0/24", ADDRESS_SPACE)})).unwrap();
        assert_eq!(s.ipam_pool.as_deref(), Some("10.4.0.0/24"));
    }

    #[test]
    fn bad_docker_networks_name_the_field() {
        let id = "ab".repeat(32);
        let cases = [
            (json!({"IPv4Data": data("10.4.0.0/24", "x")}), "NetworkID"),
            (json!({"NetworkID": id}), "IPv4Data"),
            (
                json!({"NetworkID": id, "IPv4Data": data("10.4.0.1/24", "x")}),
                "host bits",
            ),
            (
                json!({"NetworkID": id, "IPv4Data": data("fd00::/64", "x")}),
                "IPv4Data.Pool",
            ),
            (
                json!({"NetworkID": id, "IPv4Data": data("10.4.0.0/24", "x"), "IPv6Data": [{"Pool": "fd00::/64"}]}),
                "IPv6",
            ),
            (
                json!({"NetworkID": id, "IPv4Data": data("10.4.0.0/24", "x"), "Options": {"com.docker.network.generic": {"colour": "blue"}}}),
                "colour",
            ),
            (
                json!({"NetworkID": id, "IPv4Data": [{"Pool": "10.4.0.0/24", "Gateway": "10.5.0.1/24"}]}),
                "10.5.0.1",
            ),
        ];
        for (body, named) in cases {
            let why = spec(body.clone()).unwrap_err();
            assert!(why.contains(named), "{body}: {why}");
        }
    }
}
