//! `docker run -p/-P`: Docker's port bindings (ProgramExternalConnectivity) published in
//! netd's datapath, and the bindings as they are reported back (EndpointOperInfo).

use std::{collections::BTreeMap, net::Ipv4Addr, num::NonZeroU16};

use serde_json::{json, Value};

use super::{
    wire::{self, FieldError, PortBinding},
    Failure,
};
use crate::{
    config::port::{PortMapping, Proto},
    engine::{Engine, EngineError},
    state::model::Container,
};

/// One binding Docker asks for: a host port, a random one, or the first free one of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub mapping: PortMapping,
    /// `HostPort-HostPortEnd` when Docker gave a range for one container port.
    pub range: Option<(u16, u16)>,
}

impl Wanted {
    fn met_by(&self, m: &PortMapping) -> bool {
        let same = m.proto == self.mapping.proto
            && m.host_ip == self.mapping.host_ip
            && m.container_port == self.mapping.container_port;
        let port = m.host_port.map_or(0, NonZeroU16::get);
        same && match (self.range, self.mapping.host_port) {
            (Some((first, last)), _) => (first..=last).contains(&port),
            (None, Some(p)) => p.get() == port,
            (None, None) => true,
        }
    }
}

/// The bindings in `com.docker.network.portmap`, checked.
pub fn requested(options: &BTreeMap<String, Value>) -> Result<Vec<Wanted>, Failure> {
    let Some(map) = options.get(wire::OPT_PORTMAP).filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let bindings: Vec<PortBinding> =
        serde_json::from_value(map.clone()).map_err(|e| FieldError {
            field: "Options.com.docker.network.portmap",
            why: e.to_string(),
        })?;
    bindings.iter().map(wanted).collect()
}

fn wanted(b: &PortBinding) -> Result<Wanted, Failure> {
    let bad = |field: &'static str, why: String| Failure::from(FieldError { field, why });
    let proto = match b.proto {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        n => {
            return Err(bad(
                "portmap.Proto",
                format!("protocol {n}: netd publishes tcp and udp ports"),
            ))
        }
    };
    let container_port =
        NonZeroU16::new(b.port).ok_or_else(|| bad("portmap.Port", "is 0".into()))?;
    let host_ip = match b.host_ip.as_str() {
        "" | "0.0.0.0" => Ipv4Addr::UNSPECIFIED,
        ip => ip.parse().map_err(|_| {
            bad(
                "portmap.HostIP",
                format!("{ip}: netd publishes on IPv4 host addresses only"),
            )
        })?,
    };
    let (first, last) = (b.host_port, b.host_port_end.max(b.host_port));
    let range = (first != 0 && last > first).then_some((first, last));
    Ok(Wanted {
        mapping: PortMapping {
            proto,
            host_ip,
            host_port: NonZeroU16::new(first).filter(|_| range.is_none()),
            container_port,
        },
        range,
    })
}

/// Makes the container's published ports what Docker asks for, all or nothing. A repeated
/// call with what is published already changes nothing.
pub async fn program(engine: &mut Engine, id: &str, wanted: &[Wanted]) -> Result<(), EngineError> {
    let current = engine.container(id)?.ports.clone();
    let met =
        wanted.len() == current.len() && wanted.iter().all(|w| current.iter().any(|m| w.met_by(m)));
    if met {
        return Ok(());
    }
    engine.unpublish_ports(id).await?;
    if wanted.is_empty() {
        return Ok(());
    }
    let result = publish(engine, id, wanted).await;
    if result.is_err() {
        let _ = engine.unpublish_ports(id).await;
    }
    result
}

async fn publish(engine: &mut Engine, id: &str, wanted: &[Wanted]) -> Result<(), EngineError> {
    let single: Vec<PortMapping> = wanted
        .iter()
        .filter(|w| w.range.is_none())
        .map(|w| w.mapping)
        .collect();
    if !single.is_empty() {
        engine.publish_ports(id, &single).await?;
    }
    for w in wanted.iter().filter(|w| w.range.is_some()) {
        let (first, last) = w.range.expect("filtered");
        let mut last_error = None;
        for port in first..=last {
            let m = PortMapping {
                host_port: NonZeroU16::new(port),
                ..w.mapping
            };
            match engine.publish_ports(id, &[m]).await {
                Ok(_) => {
                    last_error = None;
                    break;
                }
                Err(e @ EngineError::Conflict(_)) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = last_error {
            return Err(EngineError::Conflict(format!(
                "no free host port in {first}-{last} for container port {}/{}: {e}",
                w.mapping.container_port, w.mapping.proto
            )));
        }
    }
    Ok(())
}

/// EndpointOperInfo's value: the bindings as published (random ports resolved), in
/// libnetwork's own keys, and where the endpoint is in netd.
pub fn oper_info(c: &Container) -> Value {
    let ip = c
        .endpoints
        .first()
        .map(|e| e.ip.to_string())
        .unwrap_or_default();
    let bindings: Vec<PortBinding> = c
        .ports
        .iter()
        .map(|m| {
            let host_port = m.host_port.map_or(0, NonZeroU16::get);
            PortBinding {
                proto: m.proto.number(),
                ip: ip.clone(),
                port: m.container_port.get(),
                host_ip: m.host_ip.to_string(),
                host_port,
                host_port_end: host_port,
            }
        })
        .collect();
    let exposed: Vec<wire::TransportPort> = c
        .ports
        .iter()
        .map(|m| wire::TransportPort {
            proto: m.proto.number(),
            port: m.container_port.get(),
        })
        .collect();
    json!({
        wire::OPT_PORTMAP: bindings,
        wire::OPT_EXPOSED: exposed,
        "netd.container": c.name.as_str(),
        "netd.host_interface": c.endpoints.first().map(|e| e.host_ifname.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(portmap: Value) -> BTreeMap<String, Value> {
        BTreeMap::from([(wire::OPT_PORTMAP.to_string(), portmap)])
    }

    #[test]
    fn docker_bindings_become_mappings() {
        let got = requested(&options(json!([
            {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080},
            {"Proto": 17, "IP": "", "Port": 53, "HostIP": "127.0.0.1", "HostPort": 0, "HostPortEnd": 0},
            {"Proto": 6, "IP": "", "Port": 81, "HostIP": "0.0.0.0", "HostPort": 9000, "HostPortEnd": 9010},
        ])))
        .unwrap();
        assert_eq!(got[0].mapping.to_string(), "0.0.0.0:8080->80/tcp");
        assert_eq!(got[0].range, None);
        assert_eq!(got[1].mapping.to_string(), "127.0.0.1:->53/udp");
        assert_eq!(got[2].mapping.host_port, None);
        assert_eq!(got[2].range, Some((9000, 9010)));
        assert!(got[2].met_by(&PortMapping {
            host_port: NonZeroU16::new(9004),
            ..got[2].mapping
        }));
        assert!(!got[0].met_by(&got[2].mapping));
    }

    #[test]
    fn bad_bindings_name_the_field() {
        let err = |v: Value| match requested(&options(v)) {
            Err(Failure::Refused(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(err(json!([{"Proto": 132, "Port": 80}])).contains("portmap.Proto"));
        assert!(err(json!([{"Proto": 6, "Port": 0}])).contains("portmap.Port"));
        assert!(
            err(json!([{"Proto": 6, "Port": 80, "HostIP": "::1"}])).contains("portmap.HostIP: ::1")
        );
        assert!(err(json!({"Proto": 6})).contains("com.docker.network.portmap"));
        assert!(requested(&BTreeMap::new()).unwrap().is_empty());
    }
}
