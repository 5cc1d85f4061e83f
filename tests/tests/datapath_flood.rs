//! Tier 2: conntrack under a flood of new flows, run by BPF_PROG_TEST_RUN on crafted frames in
//! a private network namespace of the test's thread. Connections without a reply live in a
//! pending table until their first reply: a flood churns only that one.

use integration_tests::{
    packet::{parse, Builder, ACK, SYN},
    privileged,
    testrun::Programs,
};
use netd::datapath::nat::Publication;
use netd_common::{isolation::NET_ROUTED, maps};

fn publication(proto: u8, port: u16, target_port: u16) -> Publication {
    Publication {
        proto,
        host_ip: "0.0.0.0".parse().unwrap(),
        host_port: port,
        target_ip: "172.17.0.2".parse().unwrap(),
        target_port,
    }
}

fn entries(l: &Programs, map: &str) -> usize {
    let usage = l.dp.usage();
    usage
        .maps
        .iter()
        .find(|m| m.name == map)
        .map_or(0, |m| m.entries)
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
    l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::udp("198.51.100.7:53", &masqueraded).build(),
    );
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
    assert!(entries(&l, maps::CONNTRACK_NEW) > 0);

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
