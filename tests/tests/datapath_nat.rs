//! Tier 2: published ports, reverse translation, hairpin and masquerade, run by
//! BPF_PROG_TEST_RUN on crafted frames. Each test runs in a private network namespace of its
//! own thread, so the programs' FIB lookups see an empty table, never the machine's.

use std::net::Ipv4Addr;

use integration_tests::{
    packet::{icmp_echo, parse, parse_icmp, Builder, ACK, FIN, RST, SYN},
    privileged,
    testrun::{Programs, CONTAINER_IP, CONTAINER_MAC, CONTINUE, LO, NETWORK_ID, SHOT},
};
use netd::datapath::{
    isolation::{dnat_target, endpoint},
    nat::Publication,
};
use netd_common::{isolation::NET_ROUTED, maps, nat::TcpState};

const HOST: &str = "10.9.0.1";
const CLIENT: &str = "192.0.2.9:40000";

/// The test port (lo) is the interface of 172.17.0.2 on 172.17.0.0/16, a routed network:
/// some tests connect to the container directly, which isolation is not here to judge.
fn lab() -> Programs {
    let mut l = Programs::in_private_netns("netd-nat").with_container_port(NET_ROUTED);
    l.dp.set_local_addrs(&[HOST.parse().unwrap()]).unwrap();
    l
}

fn publication(proto: u8, host: &str, port: u16, target: &str, target_port: u16) -> Publication {
    Publication {
        proto,
        host_ip: host.parse().unwrap(),
        host_port: port,
        target_ip: target.parse().unwrap(),
        target_port,
    }
}

/// The port most tests publish: 8080/tcp on every host address, to 172.17.0.2:80.
fn web() -> Publication {
    publication(6, "0.0.0.0", 8080, "172.17.0.2", 80)
}

/// The lab with 8080 published to the container's port 80 and a client's SYN through it:
/// a connection with its two conntrack entries.
fn lab_with_web_connection() -> Programs {
    let mut l = lab();
    l.dp.publish(&[web()]).unwrap();
    l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp(CLIENT, "10.9.0.1:8080", SYN).build(),
    );
    l
}

fn skip(name: &str) -> bool {
    !privileged(name)
}

#[test]
fn published_port_rewrites_destination_and_reply_source() {
    if skip("published_port_rewrites_destination_and_reply_source") {
        return;
    }
    let mut l = lab();
    l.dp.publish(&[web()]).unwrap();
    let syn = Builder::tcp(CLIENT, "10.9.0.1:8080", SYN).build();
    let (verdict, out) = l.run(maps::PROG_UPLINK_INGRESS, &syn);
    assert_eq!(
        verdict, CONTINUE,
        "no route in this namespace: left to the stack"
    );
    let p = parse(&out);
    assert_eq!(p.dst.to_string(), "172.17.0.2:80");
    assert_eq!(
        p.src.to_string(),
        CLIENT,
        "the client's address is preserved"
    );
    assert!(p.ip_checksum_ok && p.l4_checksum_ok, "{p:?}");
    assert_eq!(l.dp.conntrack_entries().len(), 2);

    let synack = Builder::tcp("172.17.0.2:80", CLIENT, SYN | ACK).build();
    let (_, out) = l.run(maps::PROG_PORT_INGRESS, &synack);
    let p = parse(&out);
    assert_eq!(p.src.to_string(), "10.9.0.1:8080");
    assert_eq!(p.dst.to_string(), CLIENT);
    assert!(p.ip_checksum_ok && p.l4_checksum_ok, "{p:?}");
    let states: Vec<u8> =
        l.dp.conntrack_entries()
            .iter()
            .map(|(_, e)| e.tcp_state)
            .collect();
    assert!(
        states.contains(&2),
        "the reply moved the connection to established: {states:?}"
    );

    // Later packets follow the connection, even after the port is unpublished.
    l.dp.unpublish(&[web()]).unwrap();
    let ack = Builder::tcp(CLIENT, "10.9.0.1:8080", ACK).build();
    let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &ack);
    assert_eq!(parse(&out).dst.to_string(), "172.17.0.2:80");
}

#[test]
fn udp_with_and_without_checksum() {
    if skip("udp_with_and_without_checksum") {
        return;
    }
    let mut l = lab();
    l.dp.publish(&[publication(17, HOST, 5353, "172.17.0.3", 53)])
        .unwrap();
    let (_, out) = l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::udp(CLIENT, "10.9.0.1:5353").build(),
    );
    let p = parse(&out);
    assert_eq!(p.dst.to_string(), "172.17.0.3:53");
    assert!(
        p.ip_checksum_ok && p.l4_checksum_ok && p.l4_checksum != 0,
        "{p:?}"
    );

    let mut none = Builder::udp("192.0.2.9:40001", "10.9.0.1:5353");
    none.udp_checksum = false;
    let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &none.build());
    let p = parse(&out);
    assert_eq!(p.dst.to_string(), "172.17.0.3:53");
    assert_eq!(p.l4_checksum, 0, "no checksum stays no checksum");
    assert!(p.ip_checksum_ok);
}

#[test]
fn other_traffic_is_untouched() {
    if skip("other_traffic_is_untouched") {
        return;
    }
    let mut l = lab();
    l.dp.publish(&[web()]).unwrap();
    l.dp.publish(&[publication(6, "127.0.0.1", 9090, "172.17.0.2", 90)])
        .unwrap();
    let mut frag = Builder::tcp(CLIENT, "10.9.0.1:8080", SYN);
    frag.frag = 0x2000; // more fragments
    let mut truncated = Builder::tcp(CLIENT, "10.9.0.1:8080", SYN).build();
    truncated.truncate(14 + 20 + 10);
    truncated[16..18].copy_from_slice(&30u16.to_be_bytes());
    let mut bad_ihl = Builder::tcp(CLIENT, "10.9.0.1:8080", SYN).build();
    bad_ihl[14] = 0x44;
    let cases = [
        (
            "another port",
            Builder::tcp(CLIENT, "10.9.0.1:8081", SYN).build(),
        ),
        (
            "another protocol",
            Builder::udp(CLIENT, "10.9.0.1:8080").build(),
        ),
        (
            "not a host address",
            Builder::tcp(CLIENT, "10.9.0.77:8080", SYN).build(),
        ),
        (
            "loopback from a network (moby#41872)",
            Builder::tcp(CLIENT, "127.0.0.1:9090", SYN).build(),
        ),
        ("a fragment", frag.build()),
        ("a truncated header", truncated),
        ("a bad IHL", bad_ihl),
    ];
    for (what, frame) in cases {
        let (verdict, out) = l.run(maps::PROG_UPLINK_INGRESS, &frame);
        assert_eq!(verdict, CONTINUE, "{what}");
        assert_eq!(out, frame, "{what} must not be rewritten");
    }
    assert!(l.dp.conntrack_entries().is_empty());
}

#[test]
fn a_container_reaching_its_own_port_gets_a_host_source() {
    if skip("a_container_reaching_its_own_port_gets_a_host_source") {
        return;
    }
    let mut l = lab();
    l.dp.publish(&[web()]).unwrap();
    let (_, out) = l.run(
        maps::PROG_PORT_INGRESS,
        &Builder::tcp("172.17.0.2:5000", "10.9.0.1:8080", SYN).build(),
    );
    let p = parse(&out);
    assert_eq!(
        (p.src.to_string(), p.dst.to_string()),
        ("10.9.0.1:5000".into(), "172.17.0.2:80".into())
    );
    assert!(p.ip_checksum_ok && p.l4_checksum_ok);
    let (_, out) = l.run(
        maps::PROG_PORT_INGRESS,
        &Builder::tcp("172.17.0.2:80", "10.9.0.1:5000", SYN | ACK).build(),
    );
    let p = parse(&out);
    assert_eq!(
        (p.src.to_string(), p.dst.to_string()),
        ("10.9.0.1:8080".into(), "172.17.0.2:5000".into())
    );
    assert!(p.ip_checksum_ok && p.l4_checksum_ok);
}

#[test]
fn masquerade_picks_free_source_ports_and_replies_find_their_way_back() {
    if skip("masquerade_picks_free_source_ports_and_replies_find_their_way_back") {
        return;
    }
    let mut l = lab();
    let uplink: Ipv4Addr = "10.99.0.1".parse().unwrap();
    l.dp.set_uplink(1, uplink).unwrap(); // test runs see the packet on lo, ifindex 1
    l.dp.set_masq_subnets(&["172.17.0.0/16".parse().unwrap()])
        .unwrap();
    let out_a = Builder::tcp("172.17.0.2:5555", "198.51.100.7:80", SYN).build();
    let (verdict, out) = l.run(maps::PROG_UPLINK_EGRESS, &out_a);
    assert_eq!(verdict, CONTINUE);
    let a = parse(&out);
    assert_eq!(
        a.src.to_string(),
        "10.99.0.1:5555",
        "the container's port is kept when free"
    );
    assert!(a.ip_checksum_ok && a.l4_checksum_ok);
    let (_, out) = l.run(
        maps::PROG_UPLINK_EGRESS,
        &Builder::tcp("172.17.0.3:5555", "198.51.100.7:80", SYN).build(),
    );
    let b = parse(&out);
    assert_eq!(*b.src.ip(), uplink);
    assert_ne!(
        b.src.port(),
        5555,
        "a second flow to the same destination gets another port"
    );
    assert!(b.ip_checksum_ok && b.l4_checksum_ok);

    let reply = Builder::tcp("198.51.100.7:80", &b.src.to_string(), SYN | ACK).build();
    let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &reply);
    let r = parse(&out);
    assert_eq!(r.dst.to_string(), "172.17.0.3:5555");
    assert!(r.ip_checksum_ok && r.l4_checksum_ok);

    // Not from a masqueraded subnet, or already the uplink's address: untouched.
    for frame in [
        Builder::tcp("172.18.0.2:5555", "198.51.100.7:80", SYN).build(),
        Builder::tcp("10.99.0.1:6000", "198.51.100.7:80", SYN).build(),
    ] {
        let (verdict, out) = l.run(maps::PROG_UPLINK_EGRESS, &frame);
        assert_eq!((verdict, out), (CONTINUE, frame));
    }
    // A segment that opens nothing has no translation, and does not leave with the
    // container's address (see datapath_icmp for the other kinds).
    let stray = Builder::tcp("172.17.0.2:80", "198.51.100.7:40000", SYN | ACK).build();
    let (verdict, _) = l.run(maps::PROG_UPLINK_EGRESS, &stray);
    assert_eq!(verdict, SHOT);
    assert_eq!(l.drops("untranslatable"), 1);
}

#[test]
fn flushing_an_address_forgets_its_connections() {
    if skip("flushing_an_address_forgets_its_connections") {
        return;
    }
    let mut l = lab();
    l.dp.publish(&[publication(17, "0.0.0.0", 5000, "172.17.0.2", 5000)])
        .unwrap();
    l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::udp(CLIENT, "10.9.0.1:5000").build(),
    );
    assert_eq!(l.dp.conntrack_entries().len(), 2);
    assert_eq!(l.dp.flush_conntrack("172.17.0.9".parse().unwrap()), 0);
    assert_eq!(l.dp.flush_conntrack("172.17.0.2".parse().unwrap()), 2);
    // The replacement container gets the very next packet of the same flow.
    l.dp.publish(&[publication(17, "0.0.0.0", 5000, "172.17.0.5", 5000)])
        .unwrap();
    let (_, out) = l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::udp(CLIENT, "10.9.0.1:5000").build(),
    );
    assert_eq!(parse(&out).dst.to_string(), "172.17.0.5:5000");
    // Idle entries are collected, live ones are kept; the daemon's sweeper (descriptors of
    // its own, no datapath lock) sees the same tables.
    let mut sweeper = l.dp.conntrack_sweeper().unwrap();
    assert_eq!(sweeper.gc(0), 0);
    assert_eq!(sweeper.gc(u64::MAX), 2);
    assert_eq!(l.dp.conntrack_entries().len(), 0);
}

#[test]
fn a_new_untranslated_connection_supersedes_a_stale_reply_entry() {
    if skip("a_new_untranslated_connection_supersedes_a_stale_reply_entry") {
        return;
    }
    let mut l = lab_with_web_connection();
    // The same client port now connects to the container directly (routed, untranslated).
    let direct = Builder::tcp(CLIENT, "172.17.0.2:80", SYN).build();
    let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &direct);
    assert_eq!(out, direct);
    let synack = Builder::tcp("172.17.0.2:80", CLIENT, SYN | ACK).build();
    let (_, out) = l.run(maps::PROG_PORT_INGRESS, &synack);
    assert_eq!(
        out, synack,
        "the direct connection's reply is not rewritten"
    );
}

#[test]
fn a_syn_after_close_starts_over() {
    if skip("a_syn_after_close_starts_over") {
        return;
    }
    let mut l = lab_with_web_connection();
    l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp(CLIENT, "10.9.0.1:8080", FIN | ACK).build(),
    );
    // The port now leads elsewhere; the same client port connects again.
    l.dp.publish(&[publication(6, "0.0.0.0", 8080, "172.17.0.9", 80)])
        .unwrap();
    let (_, out) = l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp(CLIENT, "10.9.0.1:8080", SYN).build(),
    );
    assert_eq!(
        parse(&out).dst.to_string(),
        "172.17.0.9:80",
        "a new connection, a new translation"
    );
    assert_eq!(
        l.dp.conntrack_entries().len(),
        2,
        "the old entries are gone"
    );
}

#[test]
fn a_reset_closes_both_directions() {
    if skip("a_reset_closes_both_directions") {
        return;
    }
    let mut l = lab_with_web_connection();
    l.run(
        maps::PROG_PORT_INGRESS,
        &Builder::tcp("172.17.0.2:80", CLIENT, SYN | ACK).build(),
    );
    l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp(CLIENT, "10.9.0.1:8080", RST).build(),
    );
    let states: Vec<u8> =
        l.dp.conntrack_entries()
            .iter()
            .map(|(_, e)| e.tcp_state)
            .collect();
    assert_eq!(states, vec![3, 3], "both entries are closing");
    // A later connection from the same client port, routed straight to the container, gets
    // its SYN-ACK untouched.
    let synack = Builder::tcp("172.17.0.2:80", CLIENT, SYN | ACK).build();
    let (_, out) = l.run(maps::PROG_PORT_INGRESS, &synack);
    assert_eq!(out, synack);
}

#[test]
fn masqueraded_subnets_follow_the_networks() {
    if skip("masqueraded_subnets_follow_the_networks") {
        return;
    }
    let mut l = lab();
    let nets = |v: &[&str]| -> Vec<ipnetwork::Ipv4Network> {
        v.iter().map(|n| n.parse().unwrap()).collect()
    };
    l.dp.set_masq_subnets(&nets(&["172.17.0.0/16", "172.18.0.0/16"]))
        .unwrap();
    l.dp.set_masq_subnets(&nets(&["172.18.0.0/16", "192.168.0.0/20"]))
        .unwrap();
    let mut got = l.dp.masq_subnets();
    got.sort();
    assert_eq!(got, nets(&["172.18.0.0/16", "192.168.0.0/20"]));
}

#[test]
fn pings_are_masqueraded_by_their_identifier() {
    if skip("pings_are_masqueraded_by_their_identifier") {
        return;
    }
    let mut l = lab();
    l.dp.set_uplink(1, "10.99.0.1".parse().unwrap()).unwrap();
    l.dp.set_masq_subnets(&["172.17.0.0/16".parse().unwrap()])
        .unwrap();
    let (_, out) = l.run(
        maps::PROG_UPLINK_EGRESS,
        &icmp_echo("172.17.0.2", "198.51.100.7", 0x1234, false),
    );
    let (src, dst, id, ok) = parse_icmp(&out);
    assert_eq!(
        (src.to_string(), dst.to_string(), id),
        ("10.99.0.1".into(), "198.51.100.7".into(), 0x1234)
    );
    assert!(ok, "checksums");
    // Another container pinging the same host with the same identifier gets another one.
    let (_, out) = l.run(
        maps::PROG_UPLINK_EGRESS,
        &icmp_echo("172.17.0.3", "198.51.100.7", 0x1234, false),
    );
    let (_, _, other_id, ok) = parse_icmp(&out);
    assert!(ok && other_id != 0x1234);
    let (_, out) = l.run(
        maps::PROG_UPLINK_INGRESS,
        &icmp_echo("198.51.100.7", "10.99.0.1", other_id, true),
    );
    let (src, dst, id, ok) = parse_icmp(&out);
    assert_eq!(
        (src.to_string(), dst.to_string(), id),
        ("198.51.100.7".into(), "172.17.0.3".into(), 0x1234)
    );
    assert!(ok, "checksums");
}

#[test]
fn thousands_of_ports_and_connections_go_in_and_out_in_batches() {
    if skip("thousands_of_ports_and_connections_go_in_and_out_in_batches") {
        return;
    }
    let mut l = lab();
    let ports: Vec<Publication> = (0..10_000)
        .map(|i| publication(6, "0.0.0.0", 10_000 + i, "172.17.0.2", 80))
        .collect();
    l.dp.publish(&ports).unwrap();
    assert_eq!(l.dp.published().len(), 10_000);
    // Unpublishing skips ports already gone.
    l.dp.unpublish(&ports[..5_000]).unwrap();
    l.dp.unpublish(&ports[..6_000]).unwrap();
    assert_eq!(l.dp.published().len(), 4_000);
    let (_, out) = l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp(CLIENT, "10.9.0.1:19999", SYN).build(),
    );
    assert_eq!(parse(&out).dst.to_string(), "172.17.0.2:80");

    // More connections than one read batch holds.
    for port in 1..=5_000u16 {
        let client = format!("192.0.2.9:{}", 20_000 + port);
        l.run(
            maps::PROG_UPLINK_INGRESS,
            &Builder::tcp(&client, "10.9.0.1:19999", SYN).build(),
        );
    }
    assert_eq!(l.dp.conntrack_entries().len(), 10_002);
    assert_eq!(l.dp.flush_conntrack("192.0.2.9".parse().unwrap()), 10_002);
    assert!(l.dp.conntrack_entries().is_empty());
}

#[test]
fn replies_to_a_client_on_the_same_network_are_translated_for_published_port_targets() {
    if skip("replies_to_a_client_on_the_same_network_are_translated_for_published_port_targets") {
        return;
    }
    let mut l = lab();
    l.dp.publish(&[web()]).unwrap();
    let client = "172.17.0.3:40000";
    l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp(client, "10.9.0.1:8080", SYN).build(),
    );
    let synack = Builder::tcp("172.17.0.2:80", client, SYN | ACK).build();
    // Members talking to each other skip conntrack, unless the sender publishes ports.
    let (_, out) = l.run(maps::PROG_PORT_INGRESS, &synack);
    assert_eq!(out, synack, "not marked as a published port's target");
    let ep = endpoint(CONTAINER_IP.parse().unwrap(), CONTAINER_MAC, NETWORK_ID);
    l.dp.set_endpoint(LO, dnat_target(ep)).unwrap();
    let (_, out) = l.run(maps::PROG_PORT_INGRESS, &synack);
    assert_eq!(parse(&out).src.to_string(), "10.9.0.1:8080");
}

#[test]
fn the_sweep_spares_a_connection_that_took_an_expired_entrys_key() {
    if skip("the_sweep_spares_a_connection_that_took_an_expired_entrys_key") {
        return;
    }
    let mut l = lab_with_web_connection();
    let live = l.dp.conntrack_entries();
    assert_eq!(live.len(), 2);
    // What the sweep read a moment earlier: the same keys, held by an old connection that
    // closed long ago. The client reused its port since, and the datapath gave the keys to
    // the new connection.
    let stale: Vec<_> = live
        .iter()
        .map(|(k, e)| {
            let mut old = *e;
            old.last_seen_ns = 0;
            old.tcp_state = TcpState::Closing as u8;
            (*k, old)
        })
        .collect();
    let now = live[0].1.last_seen_ns + 5_000_000_000;
    assert_eq!(l.dp.sweep_conntrack(&stale, now), 0);
    let mut kept = l.dp.conntrack_entries();
    let mut expected = live.clone();
    kept.sort_by_key(|(k, _)| k.sport_be);
    expected.sort_by_key(|(k, _)| k.sport_be);
    assert_eq!(
        kept, expected,
        "the new connection keeps both entries as they were"
    );
    // Once it has been idle past its timeout, it goes.
    assert_eq!(l.dp.sweep_conntrack(&live, u64::MAX), 2);
    assert!(l.dp.conntrack_entries().is_empty());
}
