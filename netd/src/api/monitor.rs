//! `GET /v1/monitor?container=&network=&reason=`: the datapath's sampled events as JSON lines,
//! for as long as the client keeps the connection open.

use std::{collections::HashMap, convert::Infallible, net::Ipv4Addr};

use axum::{
    body::Body,
    extract::{Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use netd_common::{
    isolation::{direction_name, DropReason},
    monitor::{Event, EVENT_DROP, EVENT_PUBLISHED},
    nat::{PROTO_ICMP, PROTO_TCP, PROTO_UDP},
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::ApiError;
use crate::shared::Shared;

#[derive(Deserialize)]
pub struct Filters {
    container: Option<String>,
    network: Option<String>,
    reason: Option<String>,
}

/// What the stream needs to name and filter events, taken when it starts.
struct View {
    /// Container address -> name.
    containers: HashMap<Ipv4Addr, String>,
    /// Datapath id -> network name.
    networks: HashMap<u32, String>,
    /// Only events that involve one of these addresses (a container's).
    only_addrs: Option<Vec<Ipv4Addr>>,
    only_network: Option<u32>,
    only_reason: Option<DropReason>,
}

impl View {
    fn keeps(&self, ev: &Event) -> bool {
        let addrs =
            [ev.saddr_be, ev.daddr_be, ev.to_addr_be].map(|a| Ipv4Addr::from(u32::from_be(a)));
        self.only_addrs
            .as_ref()
            .is_none_or(|only| addrs.iter().any(|a| only.contains(a)))
            && self.only_network.is_none_or(|n| n == ev.network)
            && self
                .only_reason
                .is_none_or(|r| ev.kind == EVENT_DROP && ev.reason == r as u8)
    }

    fn line(&self, ev: &Event) -> String {
        let ip = |a: u32| Ipv4Addr::from(u32::from_be(a));
        let endpoint = |a: u32, p: u16| format!("{}:{}", ip(a), u16::from_be(p));
        let proto = match ev.proto {
            PROTO_TCP => "tcp",
            PROTO_UDP => "udp",
            PROTO_ICMP => "icmp",
            0 => "",
            _ => "other",
        };
        let network = self.networks.get(&ev.network).cloned().unwrap_or_default();
        let name = |a: u32| self.containers.get(&ip(a)).cloned();
        let mut v = json!({
            "Protocol": proto,
            "Network": network,
            "Source": endpoint(ev.saddr_be, ev.sport_be),
            "Destination": endpoint(ev.daddr_be, ev.dport_be),
        });
        if ev.kind == EVENT_DROP {
            v["Kind"] = json!("drop");
            v["Reason"] = json!(DropReason::from_u8(ev.reason).map_or("unknown", |r| r.name()));
            v["Direction"] = json!(direction_name(ev.direction));
            v["Container"] = json!(name(ev.saddr_be).or_else(|| name(ev.daddr_be)));
        } else {
            let kind = if ev.kind == EVENT_PUBLISHED {
                "published"
            } else {
                "vip"
            };
            v["Kind"] = json!(kind);
            v["To"] = json!(endpoint(ev.to_addr_be, ev.to_port_be));
            v["Container"] = json!(name(ev.to_addr_be));
        }
        format!("{v}\n")
    }
}

pub async fn monitor(
    State(d): State<Shared>,
    Query(f): Query<Filters>,
) -> Result<Response, ApiError> {
    let Some(monitor) = d.monitor.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this daemon cannot read the datapath's events; see its log",
        ));
    };
    let view = {
        let engine = d.engine.lock().await;
        let only_reason = match f.reason.as_deref() {
            None => None,
            Some(r) => Some(
                DropReason::ALL
                    .into_iter()
                    .find(|x| x.name() == r)
                    .ok_or_else(|| {
                        let known: Vec<&str> = DropReason::ALL.iter().map(|x| x.name()).collect();
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            format!(
                                "unknown drop reason {r:?}; known reasons are {}",
                                known.join(", ")
                            ),
                        )
                    })?,
            ),
        };
        let only_network = match f.network.as_deref() {
            None => None,
            Some(n) => Some(engine.network(n)?.datapath_id()),
        };
        let only_addrs = match f.container.as_deref() {
            None => None,
            Some(c) => Some(
                engine
                    .container(c)?
                    .endpoints
                    .iter()
                    .map(|e| e.ip)
                    .collect(),
            ),
        };
        View {
            containers: engine
                .containers()
                .flat_map(|c| c.endpoints.iter().map(|e| (e.ip, c.name.to_string())))
                .collect(),
            networks: engine
                .networks()
                .map(|n| (n.datapath_id(), n.name.to_string()))
                .collect(),
            only_addrs,
            only_network,
            only_reason,
        }
    };
    let watch = monitor.watch();
    let stream = futures::stream::unfold((watch, view), |(mut watch, view)| async move {
        loop {
            match watch.rx.recv().await {
                Ok(ev) if view.keeps(&ev) => {
                    let line = Bytes::from(view.line(&ev));
                    return Some((Ok::<_, Infallible>(line), (watch, view)));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    let line = Bytes::from(format!("{}\n", json!({"Kind": "lost", "Events": n})));
                    return Some((Ok(line), (watch, view)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}
