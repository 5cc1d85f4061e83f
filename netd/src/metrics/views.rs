//! `netd stats` views of what the metrics show, as rows (`GET /v1/stats/{view}`).

use std::{collections::HashMap, net::Ipv4Addr};

use serde_json::{json, Value};

use super::collect::state;
use crate::shared::Shared;

/// The views and their columns, in the order the CLI prints them.
pub const VIEWS: [(&str, &[&str]); 5] = [
    (
        "ports",
        &[
            "Network",
            "Container",
            "Protocol",
            "HostIP",
            "HostPort",
            "Connections",
            "InPackets",
            "InBytes",
            "OutPackets",
            "OutBytes",
        ],
    ),
    ("maps", &["Map", "Entries", "Capacity", "Pressure"]),
    (
        "aliases",
        &["Network", "Alias", "VIP", "Container", "Connections"],
    ),
    ("dns", &["Network", "Queries", "Failures"]),
    (
        "api",
        &["Operation", "Calls", "ClientErrors", "ServerErrors"],
    ),
];

/// The rows of `view`; `None` for a view that does not exist.
pub async fn rows(d: &Shared, view: &str) -> Option<Vec<Value>> {
    let s = state(d).await;
    let rows = match view {
        "ports" => {
            let stats: HashMap<_, _> = s.telemetry.port_stats().into_iter().collect();
            s.ports
                .iter()
                .map(|(key, l)| {
                    let st = stats.get(key).copied().unwrap_or_default();
                    json!({
                        "Network": l[0], "Container": l[1], "Protocol": l[2], "HostIP": l[3],
                        "HostPort": l[4], "Connections": st.connections,
                        "InPackets": st.in_packets, "InBytes": st.in_bytes,
                        "OutPackets": st.out_packets, "OutBytes": st.out_bytes,
                    })
                })
                .collect()
        }
        "maps" => s
            .telemetry
            .usage()
            .maps
            .into_iter()
            .map(|m| {
                json!({"Map": m.name, "Entries": m.entries, "Capacity": m.capacity,
                       "Pressure": format!("{:.4}", m.pressure()), "Evicted": m.evicted})
            })
            .collect(),
        "aliases" => s
            .aliases
            .iter()
            .flat_map(|a| {
                let counts: HashMap<Ipv4Addr, u64> =
                    s.telemetry.vip_connections(a.vip.id).into_iter().collect();
                a.backends
                    .iter()
                    .map(|(c, ip)| {
                        json!({"Network": a.network, "Alias": a.name, "VIP": a.vip.ip.to_string(),
                               "Container": c, "Connections": counts.get(ip).copied().unwrap_or(0)})
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        "dns" => s
            .telemetry
            .dns_counters()
            .into_iter()
            .filter_map(|c| {
                let network = s.network_names_by_id.get(&c.network_id)?;
                Some(
                    json!({"Network": network, "Queries": c.queries, "Failures": c.failures,
                            "TcpRefused": c.tcp_refused}),
                )
            })
            .collect(),
        "api" => d
            .operations
            .snapshot()
            .into_iter()
            .map(|(op, c)| {
                json!({"Operation": op, "Calls": c.calls, "ClientErrors": c.client_errors,
                       "ServerErrors": c.server_errors})
            })
            .collect(),
        _ => return None,
    };
    Some(rows)
}
