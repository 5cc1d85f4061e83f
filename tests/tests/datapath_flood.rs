//! Tier 2: conntrack under a flood of new flows, run by BPF_PROG_TEST_RUN on crafted frames in
//! a private network namespace of the test's thread. Connections live in a pending table
//! until they are answered (TCP: the client's ACK of the SYN-ACK; UDP: traffic about two
//! seconds after it opened, once replied): a flood churns only that one.

use aya::maps::{HashMap, Map, MapData};
use integration_tests::{
    packet::{parse, Builder, ACK, SYN},
    privileged,
    testrun::Programs,
};
use netd::datapath::{nat::Publication, stats::MapUsage, Datapath};
use netd_common::{
    isolation::NET_ROUTED,
    maps,
    nat::{CtEntry, CtKey, ESTABLISHED_AFTER_TICKS},
};

fn publication(proto: u8, port: u16, target_port: u16) -> Publication {
    Publication {
        proto,
        host_ip: "0.0.0.0".parse().unwrap(),
        host_port: port,
        target_ip: "172.17.0.2".parse().unwrap(),
        target_port,
    }
}

fn usage_of(l: &Programs, map: &str) -> MapUsage {
    l.dp.usage()
        .maps
        .into_iter()
        .find(|m| m.name == map)
        .unwrap()
}

fn entries(l: &Programs, map: &str) -> usize {
    usage_of(l, map).entries
}

fn evicted(l: &Programs, map: &str) -> u64 {
    usage_of(l, map).evicted.unwrap()
}

/// Makes every pending connection look as old as an answered datagram flow must be: the
/// test does not wait two seconds.
fn age_pending(l: &Programs) {
    let pin = MapData::from_pin(l.bpffs().join("maps").join(maps::CONNTRACK_NEW)).unwrap();
    let mut table: HashMap<_, CtKey, CtEntry> = HashMap::try_from(Map::LruHashMap(pin)).unwrap();
    let keys: Vec<CtKey> = table.keys().map(Result::unwrap).collect();
    for k in keys {
        let mut e = table.get(&k, 0).unwrap();
        e.opened_ticks = e.opened_ticks.wrapping_sub(ESTABLISHED_AFTER_TICKS);
        table.insert(k, e, 0).unwrap();
    }
}

#[test]
fn a_flood_of_new_flows_leaves_answered_connections_alone() {
    if !privileged("a_flood_of_new_flows_leaves_answered_connections_alone") {
        return;
    }
    let mut l = Programs::in_private_netns("netd-flood").with_container_port(NET_ROUTED);
    l.dp.set_local_addrs(&["10.9.0.1".parse().unwrap()])
        .unwrap();
    l.dp.set_uplink(1, "10.99.0.1".parse().unwrap()).unwrap();
    l.dp.set_masq_subnets(&["172.17.0.0/16".parse().unwrap()])
        .unwrap();
    l.dp.publish(&[publication(6, 8080, 80), publication(17, 5353, 53)])
        .unwrap();
    // Answered: a published TCP connection and a masqueraded UDP flow.
    let client = "192.0.2.9:40000";
    l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp(client, "10.9.0.1:8080", SYN).build(),
    );
    l.run(
        maps::PROG_PORT_INGRESS,
        &Builder::tcp("172.17.0.2:80", client, SYN | ACK).build(),
    );
    assert_eq!(
        entries(&l, maps::CONNTRACK),
        0,
        "a SYN-ACK is no answer yet"
    );
    l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp(client, "10.9.0.1:8080", ACK).build(),
    );
    let (_, out) = l.run(
        maps::PROG_UPLINK_EGRESS,
        &Builder::udp("172.17.0.2:5000", "198.51.100.7:53").build(),
    );
    let masqueraded = parse(&out).src.to_string();
    let answer = Builder::udp("198.51.100.7:53", &masqueraded).build();
    l.run(maps::PROG_UPLINK_INGRESS, &answer);
    assert_eq!(
        entries(&l, maps::CONNTRACK),
        2,
        "one answer is no established datagram flow yet"
    );
    age_pending(&l);
    l.run(maps::PROG_UPLINK_INGRESS, &answer);
    assert_eq!(
        entries(&l, maps::CONNTRACK),
        4,
        "both answered, in the main table"
    );

    // More new flows than both tables hold together: UDP to the published UDP port, and
    // spoofed SYNs to the published TCP port, which the container answers and nobody
    // acknowledges.
    let flows = maps::CONNTRACK_MAX / 2 + 10_000;
    let mut datagram = Builder::udp("192.0.2.10:1", "10.9.0.1:5353").build();
    let mut syn = Builder::tcp("192.0.2.10:1", "10.9.0.1:8080", SYN).build();
    let mut synack = Builder::tcp("172.17.0.2:80", "192.0.2.10:1", SYN | ACK).build();
    for i in 0..flows {
        // Sources across 203.0.0.0/16 and every port: each one a new flow. The checksums
        // are not checked on the way in: the programs only translate.
        let [_, _, b, c] = (i / 60_000).to_be_bytes();
        let (addr, port) = ([203, 0, b, c], ((i % 60_000) as u16 + 1024).to_be_bytes());
        if i % 4 == 0 {
            syn[26..30].copy_from_slice(&addr);
            syn[34..36].copy_from_slice(&port);
            l.run(maps::PROG_UPLINK_INGRESS, &syn);
            synack[30..34].copy_from_slice(&addr);
            synack[36..38].copy_from_slice(&port);
            l.run(maps::PROG_PORT_INGRESS, &synack);
        } else {
            datagram[26..30].copy_from_slice(&addr);
            datagram[34..36].copy_from_slice(&port);
            l.run(maps::PROG_UPLINK_INGRESS, &datagram);
        }
    }
    assert_eq!(
        entries(&l, maps::CONNTRACK),
        4,
        "the flood stayed in the pending table"
    );
    let pending = entries(&l, maps::CONNTRACK_NEW);
    assert!(pending > 0);
    // Each flow made two pending entries, and nothing took any out: what is not there
    // was evicted, and the main table evicted nothing.
    assert_eq!(
        evicted(&l, maps::CONNTRACK_NEW),
        2 * u64::from(flows) - pending as u64,
        "pending evictions"
    );
    assert_eq!(evicted(&l, maps::CONNTRACK), 0, "main evictions");

    // The answered connections still translate, and new ones are still taken.
    let (_, out) = l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp(client, "10.9.0.1:8080", ACK).build(),
    );
    assert_eq!(parse(&out).dst.to_string(), "172.17.0.2:80");
    let (_, out) = l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::udp("198.51.100.7:53", &masqueraded).build(),
    );
    assert_eq!(parse(&out).dst.to_string(), "172.17.0.2:5000");
    let (_, out) = l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp("192.0.2.77:40001", "10.9.0.1:8080", SYN).build(),
    );
    assert_eq!(parse(&out).dst.to_string(), "172.17.0.2:80");
}

#[test]
fn a_flood_answered_once_stays_pending() {
    if !privileged("a_flood_answered_once_stays_pending") {
        return;
    }
    let mut l = Programs::in_private_netns("netd-flood-answered").with_container_port(NET_ROUTED);
    l.dp.set_local_addrs(&["10.9.0.1".parse().unwrap()])
        .unwrap();
    l.dp.publish(&[publication(17, 5353, 53)]).unwrap();
    // Queries from spoofed sources to a published DNS server, each answered once.
    let flows = 2_000u32;
    let mut query = Builder::udp("192.0.2.10:1", "10.9.0.1:5353").build();
    let mut answer = Builder::udp("172.17.0.2:53", "192.0.2.10:1").build();
    for i in 0..flows {
        let port = (i as u16 + 1024).to_be_bytes();
        query[34..36].copy_from_slice(&port);
        l.run(maps::PROG_UPLINK_INGRESS, &query);
        answer[36..38].copy_from_slice(&port);
        l.run(maps::PROG_PORT_INGRESS, &answer);
    }
    assert_eq!(entries(&l, maps::CONNTRACK), 0, "answered once: pending");
    assert_eq!(entries(&l, maps::CONNTRACK_NEW), 2 * flows as usize);
    // A flow that talks again two seconds on is established; one that does not talk again
    // stays pending however old.
    age_pending(&l);
    let port = 1024u16.to_be_bytes();
    query[34..36].copy_from_slice(&port);
    let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &query);
    assert_eq!(parse(&out).dst.to_string(), "172.17.0.2:53");
    assert_eq!(entries(&l, maps::CONNTRACK), 2);
    // Unanswered and old: still pending.
    let lone = Builder::udp("192.0.2.11:7", "10.9.0.1:5353").build();
    l.run(maps::PROG_UPLINK_INGRESS, &lone);
    age_pending(&l);
    l.run(maps::PROG_UPLINK_INGRESS, &lone);
    assert_eq!(entries(&l, maps::CONNTRACK), 2, "never answered: pending");

    // Nothing overflowed: what was promoted, collected and flushed is no eviction.
    let none = |l: &Programs, when: &str| {
        for map in [maps::CONNTRACK, maps::CONNTRACK_NEW] {
            assert_eq!(evicted(l, map), 0, "{map} evictions {when}");
        }
    };
    none(&l, "after promotion");
    let mut sweeper = l.dp.conntrack_sweeper().unwrap();
    let lone_gone = sweeper.gc(u64::MAX);
    assert!(lone_gone > 0);
    none(&l, "after a collection");
    l.run(maps::PROG_UPLINK_INGRESS, &query);
    l.dp.flush_conntrack("172.17.0.2".parse().unwrap());
    assert_eq!(
        entries(&l, maps::CONNTRACK) + entries(&l, maps::CONNTRACK_NEW),
        0
    );
    none(&l, "after a flush");

    // A daemon of a build without the counts left connections in the tables: they are
    // counted as there, not as evicted.
    l.run(maps::PROG_UPLINK_INGRESS, &query);
    let bpffs = l.bpffs().to_path_buf();
    std::fs::remove_file(bpffs.join("maps").join(maps::CT_CHURN)).unwrap();
    drop(std::mem::replace(
        &mut l.dp,
        Datapath::load(&bpffs).unwrap(),
    ));
    assert_eq!(entries(&l, maps::CONNTRACK_NEW), 2);
    none(&l, "after an upgrade");
    l.dp.flush_conntrack("172.17.0.2".parse().unwrap());
    none(&l, "after an upgrade and a flush");
}
