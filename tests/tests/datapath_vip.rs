//! Tier 2: virtual IPs of aliases, run by BPF_PROG_TEST_RUN on crafted frames: translation to
//! a backend and back, round robin, stickiness, Maglev's disruption bound, hairpin, the ARP
//! responder and VIPs without backends. Each test runs in a private network namespace of its
//! own thread.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use integration_tests::{
    packet::{arp, parse, Builder, ACK, SYN},
    privileged,
    testrun::{Programs, CONTAINER_IP, CONTAINER_MAC, CONTINUE, GATEWAY_MAC, LO, NETWORK_ID, SHOT},
};
use netd::datapath::{isolation::endpoint, vips::VipSpec};
use netd_common::{isolation::NET_VIPS, maps, vip::Algorithm};

const VIP: &str = "172.17.0.200";
const VIP_ID: u32 = 5;
/// TC_ACT_REDIRECT: bpf_redirect's verdict.
const REDIRECT: u32 = 7;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// The test port is the client container 172.17.0.2 on 172.17.0.0/16, a network with VIPs.
fn lab() -> Programs {
    let mut l = Programs::in_private_netns("netd-vip").with_container_port(0);
    l.set_network(NETWORK_ID, "172.17.0.0/16", NET_VIPS, 0);
    l
}

fn set_vip(l: &mut Programs, algorithm: Algorithm, backends: &[&str]) {
    let spec = VipSpec {
        id: VIP_ID,
        network: NETWORK_ID,
        addr: ip(VIP),
        algorithm,
        backends: backends.iter().map(|b| ip(b)).collect(),
    };
    l.dp.set_vips(&[spec]).unwrap();
}

/// The backend a new TCP connection from client port `sport` is sent to.
fn open(l: &mut Programs, sport: u16) -> Ipv4Addr {
    let syn = Builder::tcp(
        &format!("{CONTAINER_IP}:{sport}"),
        &format!("{VIP}:80"),
        SYN,
    )
    .build();
    let (_, out) = l.run(maps::PROG_PORT_INGRESS, &syn);
    let p = parse(&out);
    assert!(p.ip_checksum_ok && p.l4_checksum_ok, "{p:?}");
    assert_eq!(p.dst.port(), 80);
    *p.dst.ip()
}

fn skip(name: &str) -> bool {
    !privileged(name)
}

#[test]
fn round_robin_takes_turns_sticks_and_translates_replies_back() {
    if skip("round_robin_takes_turns_sticks_and_translates_replies_back") {
        return;
    }
    let mut l = lab();
    let backends = ["172.17.0.10", "172.17.0.11", "172.17.0.12"];
    set_vip(&mut l, Algorithm::RoundRobin, &backends);
    let picks: Vec<Ipv4Addr> = (0..6).map(|i| open(&mut l, 40000 + i)).collect();
    let expected: Vec<Ipv4Addr> = backends.iter().cycle().take(6).map(|b| ip(b)).collect();
    assert_eq!(picks, expected, "each backend in turn");

    // Every later packet of a connection stays on its backend.
    let ack = Builder::tcp(&format!("{CONTAINER_IP}:40000"), &format!("{VIP}:80"), ACK).build();
    let (_, out) = l.run(maps::PROG_PORT_INGRESS, &ack);
    assert_eq!(*parse(&out).dst.ip(), ip(backends[0]));

    // The backend's reply, on its own port, comes back from the VIP.
    let backend = endpoint(ip(backends[0]), CONTAINER_MAC, NETWORK_ID);
    l.dp.set_endpoint(LO, backend).unwrap();
    set_vip(&mut l, Algorithm::RoundRobin, &backends); // marks the backend's endpoint
    let reply = Builder::tcp(
        &format!("{}:80", backends[0]),
        &format!("{CONTAINER_IP}:40000"),
        SYN | ACK,
    )
    .build();
    let (_, out) = l.run(maps::PROG_PORT_INGRESS, &reply);
    let p = parse(&out);
    assert_eq!(p.src.to_string(), format!("{VIP}:80"));
    assert_eq!(p.dst.to_string(), format!("{CONTAINER_IP}:40000"));
    assert!(p.ip_checksum_ok && p.l4_checksum_ok, "{p:?}");

    let counts: BTreeMap<Ipv4Addr, u64> = l.dp.vip_connections(VIP_ID).into_iter().collect();
    let want: BTreeMap<Ipv4Addr, u64> = backends.iter().map(|b| (ip(b), 2)).collect();
    assert_eq!(counts, want, "connections chosen per backend");
}

#[test]
fn maglev_removing_one_backend_moves_only_its_connections() {
    if skip("maglev_removing_one_backend_moves_only_its_connections") {
        return;
    }
    let mut l = lab();
    let five = [
        "172.17.0.10",
        "172.17.0.11",
        "172.17.0.12",
        "172.17.0.13",
        "172.17.0.14",
    ];
    set_vip(&mut l, Algorithm::Maglev, &five);
    let ports: Vec<u16> = (0..500).map(|i| 20000 + i * 7).collect();
    let before: Vec<Ipv4Addr> = ports.iter().map(|p| open(&mut l, *p)).collect();
    let used: BTreeSet<Ipv4Addr> = before.iter().copied().collect();
    assert_eq!(used.len(), 5, "500 connections reach all five backends");

    // Same tuples again, without conntrack: Maglev alone decides.
    l.dp.flush_conntrack(ip(CONTAINER_IP));
    let again: Vec<Ipv4Addr> = ports.iter().map(|p| open(&mut l, *p)).collect();
    assert_eq!(
        again, before,
        "the same tuple always hashes to the same backend"
    );

    let removed = ip(five[2]);
    set_vip(
        &mut l,
        Algorithm::Maglev,
        &[five[0], five[1], five[3], five[4]],
    );
    l.dp.flush_conntrack(ip(CONTAINER_IP));
    let after: Vec<Ipv4Addr> = ports.iter().map(|p| open(&mut l, *p)).collect();
    for ((port, b), a) in ports.iter().zip(&before).zip(&after) {
        if *b == removed {
            assert_ne!(*a, removed, "port {port} left the removed backend");
        } else {
            assert_eq!(a, b, "port {port} of a remaining backend was re-mapped");
        }
    }

    // A VIP that goes leaves nothing: entry, backends, table, counters.
    assert!(l.dp.maglev(VIP_ID).is_some());
    l.dp.set_vips(&[]).unwrap();
    assert!(l.dp.vips().is_empty());
    assert!(l.dp.maglev(VIP_ID).is_none());
    assert!(l.dp.vip_connections(VIP_ID).is_empty());
}

#[test]
fn a_backend_reaching_its_own_vip_gets_the_vip_as_source() {
    if skip("a_backend_reaching_its_own_vip_gets_the_vip_as_source") {
        return;
    }
    let mut l = lab();
    set_vip(&mut l, Algorithm::RoundRobin, &[CONTAINER_IP]);
    let syn = Builder::tcp(&format!("{CONTAINER_IP}:40000"), &format!("{VIP}:80"), SYN).build();
    let (_, out) = l.run(maps::PROG_PORT_INGRESS, &syn);
    let p = parse(&out);
    assert_eq!(p.src.to_string(), format!("{VIP}:40000"));
    assert_eq!(p.dst.to_string(), format!("{CONTAINER_IP}:80"));
    assert!(p.ip_checksum_ok && p.l4_checksum_ok, "{p:?}");
}

#[test]
fn arp_requests_for_a_vip_are_answered_with_the_gateway_mac() {
    if skip("arp_requests_for_a_vip_are_answered_with_the_gateway_mac") {
        return;
    }
    let mut l = lab();
    set_vip(&mut l, Algorithm::RoundRobin, &["172.17.0.10"]);
    let request = arp(1, CONTAINER_MAC, CONTAINER_IP, [0; 6], VIP);
    let (verdict, out) = l.run(maps::PROG_PORT_INGRESS, &request);
    assert_eq!(verdict, REDIRECT, "sent back out of the port it came from");
    assert_eq!(&out[0..6], &CONTAINER_MAC, "to the requester");
    assert_eq!(&out[6..12], &GATEWAY_MAC, "from the gateway");
    assert_eq!(&out[20..22], &[0, 2], "a reply");
    assert_eq!(
        &out[22..28],
        &GATEWAY_MAC,
        "the VIP is at the gateway's MAC"
    );
    assert_eq!(&out[28..32], &ip(VIP).octets());
    assert_eq!(&out[32..38], &CONTAINER_MAC);
    assert_eq!(&out[38..42], &ip(CONTAINER_IP).octets());

    // A member's address is the member's to answer for.
    let member = arp(1, CONTAINER_MAC, CONTAINER_IP, [0; 6], "172.17.0.10");
    let (verdict, out) = l.run(maps::PROG_PORT_INGRESS, &member);
    assert_eq!((verdict, out), (CONTINUE, member));
}

#[test]
fn a_vip_without_backends_drops_new_connections_only() {
    if skip("a_vip_without_backends_drops_new_connections_only") {
        return;
    }
    let mut l = lab();
    set_vip(&mut l, Algorithm::Random, &[]);
    let syn = Builder::tcp(&format!("{CONTAINER_IP}:40000"), &format!("{VIP}:80"), SYN).build();
    assert_eq!(l.run(maps::PROG_PORT_INGRESS, &syn).0, SHOT);
    assert_eq!(l.drops("no_backend"), 1);
    let udp = Builder::udp(&format!("{CONTAINER_IP}:5000"), &format!("{VIP}:53")).build();
    assert_eq!(l.run(maps::PROG_PORT_INGRESS, &udp).0, SHOT);
    assert_eq!(l.drops("no_backend"), 2);

    // Random picks among the backends once there are some; UDP flows too.
    set_vip(&mut l, Algorithm::Random, &["172.17.0.10", "172.17.0.11"]);
    let mut seen = BTreeSet::new();
    for port in 0..64 {
        let udp = Builder::udp(
            &format!("{CONTAINER_IP}:{}", 6000 + port),
            &format!("{VIP}:53"),
        )
        .build();
        let (verdict, out) = l.run(maps::PROG_PORT_INGRESS, &udp);
        assert_ne!(verdict, SHOT);
        seen.insert(*parse(&out).dst.ip());
    }
    assert_eq!(seen, BTreeSet::from([ip("172.17.0.10"), ip("172.17.0.11")]));

    // Without the network's VIP flag, the address is just another member's.
    l.set_network(NETWORK_ID, "172.17.0.0/16", 0, 0);
    let syn = Builder::tcp(&format!("{CONTAINER_IP}:40009"), &format!("{VIP}:80"), SYN).build();
    let (verdict, out) = l.run(maps::PROG_PORT_INGRESS, &syn);
    assert_eq!((verdict, out), (CONTINUE, syn));
}

#[test]
fn a_backend_on_the_clients_network_is_reached_past_the_bridge() {
    if skip("a_backend_on_the_clients_network_is_reached_past_the_bridge") {
        return;
    }
    let mut l = lab();
    let backend_mac = [0x02, 0x42, 0xac, 0x11, 0, 10];
    let backend_port = 42;
    l.dp.track(backend_port).unwrap();
    l.dp.set_endpoint(
        backend_port,
        endpoint(ip("172.17.0.10"), backend_mac, NETWORK_ID),
    )
    .unwrap();
    set_vip(&mut l, Algorithm::RoundRobin, &["172.17.0.10"]);
    let syn = Builder::tcp(&format!("{CONTAINER_IP}:40000"), &format!("{VIP}:80"), SYN).build();
    let (verdict, out) = l.run(maps::PROG_PORT_INGRESS, &syn);
    assert_eq!(verdict, REDIRECT);
    let p = parse(&out);
    assert_eq!(p.dst.to_string(), "172.17.0.10:80");
    assert!(p.ip_checksum_ok && p.l4_checksum_ok, "{p:?}");
    // Addressed as the gateway would: to the backend's MAC, from the gateway's.
    assert_eq!((p.dmac, p.smac), (backend_mac, GATEWAY_MAC));
    let counted = l.dp.port_counters(backend_port).unwrap();
    assert_eq!(counted.egress_packets, 1, "counted on the backend's port");
}
