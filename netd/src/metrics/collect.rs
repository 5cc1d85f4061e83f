//! One scrape: the state under the engine lock, then the maps through the host, into metric
//! families (the values are the maps' own totals, so nothing is kept between scrapes).

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use netd_common::{
    isolation::{direction_name, DropReason},
    nat::PortStatsKey,
};
use prometheus::{proto::MetricFamily, Encoder, TextEncoder};

use super::family::Family;
use crate::{
    engine::{
        host::{CountedAt, Telemetry},
        AliasView,
    },
    shared::Shared,
};

/// A published port's labels: network, container, protocol, host_ip, host_port.
pub(super) type PortLabels = [String; 5];

/// What the scrape needs from the engine, taken under its lock.
pub(super) struct State {
    pub(super) telemetry: Arc<dyn Telemetry>,
    /// Datapath id -> network name.
    pub(super) networks: HashMap<u32, String>,
    /// (network, container, interface, host interface)
    /// (network, container, interface) and where its counters are.
    pub(super) interfaces: Vec<([String; 3], CountedAt)>,
    pub(super) ports: Vec<(PortStatsKey, PortLabels)>,
    pub(super) aliases: Vec<AliasView>,
    /// (network, in use, free)
    pub(super) addresses: Vec<(String, u64, u64)>,
    pub(super) network_count: i64,
    /// (running, stopped)
    pub(super) containers: (i64, i64),
    pub(super) reconciles: u64,
    pub(super) repairs: u64,
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
            let labels = [
                net_of(&e.network_id),
                c.name.to_string(),
                e.ifname.to_string(),
            ];
            interfaces.push((labels, engine.counted_at(e)));
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
        telemetry: Arc::clone(&engine.host().telemetry),
        networks,
        interfaces,
        ports,
        aliases: engine.aliases(),
        addresses,
        network_count: engine.networks().count() as i64,
        containers: (running, stopped),
        reconciles: engine.reconciles(),
        repairs: engine.repairs(),
        network_names_by_id,
    }
}

/// Bytes of the last page, with some room.
static LAST_PAGE: AtomicUsize = AtomicUsize::new(64 * 1024);

/// The whole scrape, in the Prometheus text format.
pub async fn render(d: &Shared) -> String {
    let s = state(d).await;
    let mut of_interfaces = Vec::new();
    interfaces(&mut of_interfaces, &s).await;
    let d = Arc::clone(d);
    // The rest reads the maps and encodes a page of megabytes: on a blocking thread, so that
    // API calls and DNS answers never queue behind it for a runtime worker.
    let page = tokio::task::spawn_blocking(move || {
        let mut families = Vec::new();
        published_ports(&mut families, &s);
        families.append(&mut of_interfaces);
        drops(&mut families, &s);
        maps(&mut families, &s);
        aliases(&mut families, &s);
        dns(&mut families, &s);
        control_plane(&mut families, &s, &d);
        // Sized like the last page: the encoder then never grows it.
        let mut out = Vec::with_capacity(LAST_PAGE.load(Ordering::Relaxed));
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            log::warn!("encoding metrics: {e}");
        }
        LAST_PAGE.store(out.len() + out.len() / 8, Ordering::Relaxed);
        // Hundreds of thousands of small strings with many publications: freed after the
        // answer.
        tokio::task::spawn_blocking(move || drop((families, s)));
        out
    })
    .await
    .unwrap_or_default();
    String::from_utf8(page).unwrap_or_default()
}

/// Adds a family that has series: the encoder refuses an empty one (and everything after).
fn push(families: &mut Vec<MetricFamily>, f: Family) {
    let f = f.into_inner();
    if !f.get_metric().is_empty() {
        families.push(f);
    }
}

fn published_ports(families: &mut Vec<MetricFamily>, s: &State) {
    const LABELS: &[&str] = &[
        "network",
        "container",
        "protocol",
        "host_ip",
        "host_port",
        "direction",
    ];
    let mut packets = Family::counter(
        "netd_published_port_packets_total",
        "Packets of connections through a published port; direction in: from clients, out: the container's replies.",
        LABELS,
    );
    let mut bytes = Family::counter(
        "netd_published_port_bytes_total",
        "Bytes (Ethernet frames) of connections through a published port, by direction.",
        LABELS,
    );
    let mut conns = Family::counter(
        "netd_published_port_connections_total",
        "Connections (TCP) and flows (UDP) opened through a published port from clients that the datapath translates (external, containers, hairpin).",
        &LABELS[..5],
    );
    let stats: HashMap<PortStatsKey, _> = s.telemetry.port_stats().into_iter().collect();
    for (key, l) in &s.ports {
        let st = stats.get(key).copied().unwrap_or_default();
        let with = |dir: &'static str| -> [&str; 6] { [&l[0], &l[1], &l[2], &l[3], &l[4], dir] };
        packets.add(&with("in"), st.in_packets as f64);
        packets.add(&with("out"), st.out_packets as f64);
        bytes.add(&with("in"), st.in_bytes as f64);
        bytes.add(&with("out"), st.out_bytes as f64);
        conns.add(&[&l[0], &l[1], &l[2], &l[3], &l[4]], st.connections as f64);
    }
    for f in [packets, bytes, conns] {
        push(families, f);
    }
}

async fn interfaces(families: &mut Vec<MetricFamily>, s: &State) {
    const LABELS: &[&str] = &["network", "container", "interface", "direction"];
    let mut packets = Family::counter(
        "netd_interface_packets_total",
        "Packets of a container interface, seen on its bridge port; direction from_container or to_container.",
        LABELS,
    );
    let mut bytes = Family::counter(
        "netd_interface_bytes_total",
        "Bytes of a container interface, by direction.",
        LABELS,
    );
    // (network, direction) -> (packets, bytes)
    let mut per_network: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    let at: Vec<CountedAt> = s.interfaces.iter().map(|(_, at)| at.clone()).collect();
    let counters = s.telemetry.port_counters(&at).await;
    for (([network, container, ifname], _), c) in s.interfaces.iter().zip(counters) {
        // The port's ingress is what the container sent.
        for (dir, p, b) in [
            ("from_container", c.ingress_packets, c.ingress_bytes),
            ("to_container", c.egress_packets, c.egress_bytes),
        ] {
            packets.add(&[network, container, ifname, dir], p as f64);
            bytes.add(&[network, container, ifname, dir], b as f64);
            let sum = per_network.entry((network, dir)).or_default();
            sum.0 += p;
            sum.1 += b;
        }
    }
    let mut net_packets = Family::counter(
        "netd_network_packets_total",
        "Packets of all container interfaces of a network, by direction.",
        &["network", "direction"],
    );
    let mut net_bytes = Family::counter(
        "netd_network_bytes_total",
        "Bytes of all container interfaces of a network, by direction.",
        &["network", "direction"],
    );
    for ((network, dir), (p, b)) in per_network {
        net_packets.add(&[network, dir], p as f64);
        net_bytes.add(&[network, dir], b as f64);
    }
    for f in [packets, bytes, net_packets, net_bytes] {
        push(families, f);
    }
}

fn drops(families: &mut Vec<MetricFamily>, s: &State) {
    const LABELS: &[&str] = &["network", "reason", "direction"];
    let mut packets = Family::counter(
        "netd_drops_packets_total",
        "Packets the datapath dropped, by network, reason and direction.",
        LABELS,
    );
    let mut bytes = Family::counter(
        "netd_drops_bytes_total",
        "Bytes the datapath dropped, by network, reason and direction.",
        LABELS,
    );
    for (k, c) in s.telemetry.drops() {
        let network = s.networks.get(&k.network).map_or("", String::as_str);
        let reason = DropReason::from_u8(k.reason).map_or("unknown", |r| r.name());
        let labels = [network, reason, direction_name(k.direction)];
        packets.add(&labels, c.packets as f64);
        bytes.add(&labels, c.bytes as f64);
    }
    push(families, packets);
    push(families, bytes);
}

fn maps(families: &mut Vec<MetricFamily>, s: &State) {
    let mut entries = Family::gauge(
        "netd_map_entries",
        "Entries in a datapath map (netd_map_entries{map=\"NETD_CT\"} is the conntrack table, two entries per connection).",
        &["map"],
    );
    let mut capacity = Family::gauge(
        "netd_map_capacity",
        "Entries a datapath map can hold.",
        &["map"],
    );
    let mut pressure = Family::gauge(
        "netd_map_pressure_ratio",
        "Entries over capacity of a datapath map (0 to 1).",
        &["map"],
    );
    let mut evicted = Family::counter(
        "netd_map_evictions_total",
        "Entries an LRU map (the conntrack tables) pushed out to make room, since the map was made. NETD_CT_NEW evicting is a flood churning unanswered connections; NETD_CT evicting is answered connections lost to a full table.",
        &["map"],
    );
    let usage = s.telemetry.usage();
    for m in &usage.maps {
        entries.add(&[m.name], m.entries as f64);
        capacity.add(&[m.name], f64::from(m.capacity));
        pressure.add(&[m.name], m.pressure());
        if let Some(n) = m.evicted {
            evicted.add(&[m.name], n as f64);
        }
    }
    let mut published = Family::gauge(
        "netd_published_ports",
        "Published ports (NAT rules) in the datapath.",
        &[],
    );
    published.add(&[], s.ports.len() as f64);
    let mut conntrack = Family::gauge(
        "netd_conntrack_entries",
        "Connection-tracking entries (two per connection) by kind of translation: published, vip, masquerade.",
        &["kind"],
    );
    for (kind, n) in usage.conntrack {
        conntrack.add(&[kind], n as f64);
    }
    let mut opened = Family::counter(
        "netd_conntrack_opened_total",
        "Connections the datapath opened a conntrack entry pair for (published ports, VIPs, masquerade).",
        &[],
    );
    opened.add(&[], usage.conntrack_stats.opened as f64);
    let mut refused = Family::counter(
        "netd_conntrack_insert_failures_total",
        "New connections the conntrack table refused even after LRU eviction (they go to the stack untranslated).",
        &[],
    );
    refused.add(&[], usage.conntrack_stats.insert_failures as f64);
    for f in [
        entries, capacity, pressure, evicted, published, conntrack, opened, refused,
    ] {
        push(families, f);
    }
}

fn aliases(families: &mut Vec<MetricFamily>, s: &State) {
    let mut chosen = Family::counter(
        "netd_alias_backend_connections_total",
        "New connections a virtual IP sent to a backend.",
        &["network", "alias", "vip", "container"],
    );
    let mut backends = Family::gauge(
        "netd_alias_backends",
        "Backends (running carriers) of a virtual IP alias.",
        &["network", "alias", "vip"],
    );
    for a in &s.aliases {
        let vip = a.vip.ip.to_string();
        let counts: HashMap<Ipv4Addr, u64> =
            s.telemetry.vip_connections(a.vip.id).into_iter().collect();
        backends.add(&[&a.network, &a.name, &vip], a.backends.len() as f64);
        for (container, ip) in &a.backends {
            let n = counts.get(ip).copied().unwrap_or(0);
            chosen.add(&[&a.network, &a.name, &vip, container], n as f64);
        }
    }
    push(families, chosen);
    push(families, backends);
}

fn dns(families: &mut Vec<MetricFamily>, s: &State) {
    let mut queries = Family::counter(
        "netd_dns_queries_total",
        "Queries the embedded DNS server of a network answered.",
        &["network"],
    );
    let mut failures = Family::counter(
        "netd_dns_failures_total",
        "Queries answered with FORMERR, REFUSED or SERVFAIL, or not answered.",
        &["network"],
    );
    let mut refused = Family::counter(
        "netd_dns_tcp_refused_total",
        "TCP connections a network's DNS server closed at once: it held its maximum (64).",
        &["network"],
    );
    for c in s.telemetry.dns_counters() {
        let Some(network) = s.network_names_by_id.get(&c.network_id) else {
            continue;
        };
        queries.add(&[network], c.queries as f64);
        failures.add(&[network], c.failures as f64);
        refused.add(&[network], c.tcp_refused as f64);
    }
    push(families, queries);
    push(families, failures);
    push(families, refused);
}

fn control_plane(families: &mut Vec<MetricFamily>, s: &State, d: &Shared) {
    let mut networks = Family::gauge("netd_networks", "Networks, predefined ones included.", &[]);
    networks.add(&[], s.network_count as f64);
    let mut containers = Family::gauge("netd_containers", "Containers by state.", &["state"]);
    containers.add(&["running"], s.containers.0 as f64);
    containers.add(&["stopped"], s.containers.1 as f64);
    let mut used = Family::gauge(
        "netd_addresses_in_use",
        "Addresses of a network's subnet held by containers, virtual IPs included.",
        &["network"],
    );
    let mut free = Family::gauge(
        "netd_addresses_free",
        "Addresses of a network's subnet still free.",
        &["network"],
    );
    for (network, u, f) in &s.addresses {
        used.add(&[network], *u as f64);
        free.add(&[network], *f as f64);
    }
    let mut calls = Family::counter(
        "netd_api_operations_total",
        "API calls, by operation (method and route).",
        &["operation"],
    );
    let mut errors = Family::counter(
        "netd_api_operation_errors_total",
        "API calls that failed, by operation and kind (client: refused with a 4xx, server: failed with a 5xx).",
        &["operation", "kind"],
    );
    for (op, c) in d.operations.snapshot() {
        calls.add(&[&op], c.calls as f64);
        errors.add(&[&op, "client"], c.client_errors as f64);
        errors.add(&[&op, "server"], c.server_errors as f64);
    }
    let mut reconciles = Family::counter(
        "netd_reconcile_runs_total",
        "Reconciliations of the state with the machine (one per daemon start), since the state directory was made.",
        &[],
    );
    reconciles.add(&[], s.reconciles as f64);
    let mut repairs = Family::counter(
        "netd_repairs_total",
        "Bridges and container interfaces deleted behind the daemon's back and made again while it ran.",
        &[],
    );
    repairs.add(&[], s.repairs as f64);
    for f in [
        networks, containers, used, free, calls, errors, reconciles, repairs,
    ] {
        push(families, f);
    }
}
