//! One scrape: the state under the engine lock, then the maps through the host, into a fresh
//! registry (the values are the maps' own totals, so nothing is kept between scrapes).

use std::{collections::HashMap, net::Ipv4Addr, sync::Arc};

use netd_common::{
    isolation::{direction_name, DropReason},
    nat::PortStatsKey,
};
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::{
    api::server::Shared,
    engine::{AliasView, Host},
};

/// A published port's labels: network, container, protocol, host_ip, host_port.
pub(super) type PortLabels = [String; 5];

/// What the scrape needs from the engine, taken under its lock.
pub(super) struct State {
    pub(super) host: Arc<dyn Host>,
    /// Datapath id -> network name.
    pub(super) networks: HashMap<u32, String>,
    /// (network, container, interface, host interface)
    pub(super) interfaces: Vec<[String; 4]>,
    pub(super) ports: Vec<(PortStatsKey, PortLabels)>,
    pub(super) aliases: Vec<AliasView>,
    /// (network, in use, free)
    pub(super) addresses: Vec<(String, u64, u64)>,
    pub(super) network_count: i64,
    /// (running, stopped)
    pub(super) containers: (i64, i64),
    pub(super) reconciles: u64,
    pub(super) network_names_by_id: HashMap<String, String>,
}

pub(super) async fn state(d: &Shared) -> State {
    let engine = d.engine.lock().await;
    let mut networks = HashMap::new();
    let mut network_names_by_id = HashMap::new();
    let mut addresses = Vec::new();
    for n in engine.networks() {
        network_names_by_id.insert(n.id.clone(), n.name.to_string());
        if n.subnet.is_some() {
            networks.insert(n.datapath_id(), n.name.to_string());
        }
        if let Some(pool) = engine.pool(&n.id) {
            let used = pool.in_use() as u64;
            addresses.push((n.name.to_string(), used, pool.capacity() - used));
        }
    }
    let mut interfaces = Vec::new();
    let mut ports = Vec::new();
    let mut running = 0;
    let mut stopped = 0;
    for c in engine.containers() {
        if c.is_running() {
            running += 1;
        } else {
            stopped += 1;
        }
        let net_of = |id: &str| network_names_by_id.get(id).cloned().unwrap_or_default();
        for e in &c.endpoints {
            interfaces.push([
                net_of(&e.network_id),
                c.name.to_string(),
                e.ifname.to_string(),
                e.host_ifname.to_string(),
            ]);
        }
        let network = c
            .endpoints
            .first()
            .map(|e| net_of(&e.network_id))
            .unwrap_or_default();
        for p in engine.publications(c) {
            let proto = if p.proto == 17 { "udp" } else { "tcp" };
            let labels = [
                network.clone(),
                c.name.to_string(),
                proto.to_string(),
                p.host_ip.to_string(),
                p.host_port.to_string(),
            ];
            ports.push((p.stats_key(), labels));
        }
    }
    State {
        host: Arc::clone(engine.host()),
        networks,
        interfaces,
        ports,
        aliases: engine.aliases(),
        addresses,
        network_count: engine.networks().count() as i64,
        containers: (running, stopped),
        reconciles: engine.reconciles(),
        network_names_by_id,
    }
}

fn counter(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    reg.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    reg.register(Box::new(g.clone())).expect("unique metric");
    g
}

/// The whole scrape, in the Prometheus text format.
pub async fn render(d: &Shared) -> String {
    let s = state(d).await;
    let reg = Registry::new();
    published_ports(&reg, &s);
    interfaces(&reg, &s).await;
    drops(&reg, &s);
    maps(&reg, &s);
    aliases(&reg, &s);
    dns(&reg, &s);
    control_plane(&reg, &s, d);
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&reg.gather(), &mut out) {
        log::warn!("encoding metrics: {e}");
    }
    String::from_utf8(out).unwrap_or_default()
}

fn published_ports(reg: &Registry, s: &State) {
    const LABELS: [&str; 6] = [
        "network",
        "container",
        "protocol",
        "host_ip",
        "host_port",
        "direction",
    ];
    let packets = counter(
        reg,
        "netd_published_port_packets_total",
        "Packets of connections through a published port; direction in: from clients, out: the container's replies.",
        &LABELS,
    );
    let bytes = counter(
        reg,
        "netd_published_port_bytes_total",
        "Bytes (Ethernet frames) of connections through a published port, by direction.",
        &LABELS,
    );
    let conns = counter(
        reg,
        "netd_published_port_connections_total",
        "Connections (TCP) and flows (UDP) opened through a published port from clients that the datapath translates (external, containers, hairpin).",
        &LABELS[..5],
    );
    let stats: HashMap<PortStatsKey, _> = s.host.port_stats().into_iter().collect();
    for (key, l) in &s.ports {
        let st = stats.get(key).copied().unwrap_or_default();
        let with = |dir: &'static str| -> [&str; 6] { [&l[0], &l[1], &l[2], &l[3], &l[4], dir] };
        packets.with_label_values(&with("in")).inc_by(st.in_packets);
        packets
            .with_label_values(&with("out"))
            .inc_by(st.out_packets);
        bytes.with_label_values(&with("in")).inc_by(st.in_bytes);
        bytes.with_label_values(&with("out")).inc_by(st.out_bytes);
        conns
            .with_label_values(&[&l[0], &l[1], &l[2], &l[3], &l[4]])
            .inc_by(st.connections);
    }
}

async fn interfaces(reg: &Registry, s: &State) {
    const LABELS: [&str; 4] = ["network", "container", "interface", "direction"];
    let packets = counter(
        reg,
        "netd_interface_packets_total",
        "Packets of a container interface, seen on its bridge port; direction from_container or to_container.",
        &LABELS,
    );
    let bytes = counter(
        reg,
        "netd_interface_bytes_total",
        "Bytes of a container interface, by direction.",
        &LABELS,
    );
    let net_packets = counter(
        reg,
        "netd_network_packets_total",
        "Packets of all container interfaces of a network, by direction.",
        &["network", "direction"],
    );
    let net_bytes = counter(
        reg,
        "netd_network_bytes_total",
        "Bytes of all container interfaces of a network, by direction.",
        &["network", "direction"],
    );
    for [network, container, ifname, port] in &s.interfaces {
        let c = s.host.port_counters(port).await.unwrap_or_default();
        // The port's ingress is what the container sent.
        for (dir, p, b) in [
            ("from_container", c.ingress_packets, c.ingress_bytes),
            ("to_container", c.egress_packets, c.egress_bytes),
        ] {
            packets
                .with_label_values(&[network, container, ifname, dir])
                .inc_by(p);
            bytes
                .with_label_values(&[network, container, ifname, dir])
                .inc_by(b);
            net_packets.with_label_values(&[network, dir]).inc_by(p);
            net_bytes.with_label_values(&[network, dir]).inc_by(b);
        }
    }
}

fn drops(reg: &Registry, s: &State) {
    const LABELS: [&str; 3] = ["network", "reason", "direction"];
    let packets = counter(
        reg,
        "netd_drops_packets_total",
        "Packets the datapath dropped, by network, reason and direction.",
        &LABELS,
    );
    let bytes = counter(
        reg,
        "netd_drops_bytes_total",
        "Bytes the datapath dropped, by network, reason and direction.",
        &LABELS,
    );
    for (k, c) in s.host.drops() {
        let network = s.networks.get(&k.network).cloned().unwrap_or_default();
        let reason = DropReason::from_u8(k.reason).map_or("unknown", |r| r.name());
        let labels = [network.as_str(), reason, direction_name(k.direction)];
        packets.with_label_values(&labels).inc_by(c.packets);
        bytes.with_label_values(&labels).inc_by(c.bytes);
    }
}

fn maps(reg: &Registry, s: &State) {
    let entries = gauge(
        reg,
        "netd_map_entries",
        "Entries in a datapath map (netd_map_entries{map=\"NETD_CT\"} is the conntrack table, two entries per connection).",
        &["map"],
    );
    let capacity = gauge(
        reg,
        "netd_map_capacity",
        "Entries a datapath map can hold.",
        &["map"],
    );
    let pressure = GaugeVec::new(
        Opts::new(
            "netd_map_pressure_ratio",
            "Entries over capacity of a datapath map (0 to 1).",
        ),
        &["map"],
    )
    .expect("valid metric");
    reg.register(Box::new(pressure.clone()))
        .expect("unique metric");
    for m in s.host.map_usage() {
        entries.with_label_values(&[m.name]).set(m.entries as i64);
        capacity
            .with_label_values(&[m.name])
            .set(i64::from(m.capacity));
        let ratio = if m.capacity == 0 {
            0.0
        } else {
            m.entries as f64 / f64::from(m.capacity)
        };
        pressure.with_label_values(&[m.name]).set(ratio);
    }
    let published = gauge(
        reg,
        "netd_published_ports",
        "Published ports (NAT rules) in the datapath.",
        &[],
    );
    published
        .with_label_values::<&str>(&[])
        .set(s.ports.len() as i64);
}

fn aliases(reg: &Registry, s: &State) {
    let chosen = counter(
        reg,
        "netd_alias_backend_connections_total",
        "New connections a virtual IP sent to a backend.",
        &["network", "alias", "vip", "container"],
    );
    let backends = gauge(
        reg,
        "netd_alias_backends",
        "Backends (running carriers) of a virtual IP alias.",
        &["network", "alias", "vip"],
    );
    for a in &s.aliases {
        let vip = a.vip.ip.to_string();
        let counts: HashMap<Ipv4Addr, u64> = s.host.vip_connections(a.vip.id).into_iter().collect();
        backends
            .with_label_values(&[&a.network, &a.name, &vip])
            .set(a.backends.len() as i64);
        for (container, ip) in &a.backends {
            chosen
                .with_label_values(&[&a.network, &a.name, &vip, container])
                .inc_by(counts.get(ip).copied().unwrap_or(0));
        }
    }
}

fn dns(reg: &Registry, s: &State) {
    let queries = counter(
        reg,
        "netd_dns_queries_total",
        "Queries the embedded DNS server of a network answered.",
        &["network"],
    );
    let failures = counter(
        reg,
        "netd_dns_failures_total",
        "Queries answered with FORMERR, REFUSED or SERVFAIL, or not answered.",
        &["network"],
    );
    for (id, q, f) in s.host.dns_counters() {
        let Some(network) = s.network_names_by_id.get(&id) else {
            continue;
        };
        queries.with_label_values(&[network]).inc_by(q);
        failures.with_label_values(&[network]).inc_by(f);
    }
}

fn control_plane(reg: &Registry, s: &State, d: &Shared) {
    gauge(
        reg,
        "netd_networks",
        "Networks, predefined ones included.",
        &[],
    )
    .with_label_values::<&str>(&[])
    .set(s.network_count);
    let containers = gauge(reg, "netd_containers", "Containers by state.", &["state"]);
    containers
        .with_label_values(&["running"])
        .set(s.containers.0);
    containers
        .with_label_values(&["stopped"])
        .set(s.containers.1);
    let used = gauge(
        reg,
        "netd_addresses_in_use",
        "Addresses of a network's subnet held by containers, virtual IPs included.",
        &["network"],
    );
    let free = gauge(
        reg,
        "netd_addresses_free",
        "Addresses of a network's subnet still free.",
        &["network"],
    );
    for (network, u, f) in &s.addresses {
        used.with_label_values(&[network]).set(*u as i64);
        free.with_label_values(&[network]).set(*f as i64);
    }
    let calls = counter(
        reg,
        "netd_api_operations_total",
        "API calls, by operation (method and route).",
        &["operation"],
    );
    let errors = counter(
        reg,
        "netd_api_operation_errors_total",
        "API calls that failed, by operation and kind (client: refused with a 4xx, server: failed with a 5xx).",
        &["operation", "kind"],
    );
    for (op, c) in d.operations.snapshot() {
        calls.with_label_values(&[&op]).inc_by(c.calls);
        errors
            .with_label_values(&[&op, "client"])
            .inc_by(c.client_errors);
        errors
            .with_label_values(&[&op, "server"])
            .inc_by(c.server_errors);
    }
    counter(
        reg,
        "netd_reconcile_runs_total",
        "Reconciliations of the state with the machine (one per daemon start).",
        &[],
    )
    .with_label_values::<&str>(&[])
    .inc_by(s.reconciles);
}
