//! Tier 2: isolation between networks, inside networks and against spoofing, run by
//! BPF_PROG_TEST_RUN on crafted frames with the drop counters checked. Each test runs in a
//! private network namespace of its own thread.

use integration_tests::{
    packet::{arp, icmp_echo, icmpv6, parse, raw_ethernet, with_macs, Builder, BROADCAST, SYN},
    privileged,
    testrun::{Programs, Skb, CONTAINER_MAC, CONTINUE, GATEWAY_MAC, LO, NETWORK_ID, SHOT},
};
use netd::datapath::{isolation::endpoint, nat::Publication};
use netd_common::{
    isolation::{DIR_FROM_CONTAINER, DIR_TO_CONTAINER, NET_ICC_OFF, NET_INTERNAL, NET_ROUTED},
    maps,
};

const PEER_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0, 3];
/// Another network, 10.2.0.0/16.
const OTHER_ID: u32 = 2;
const HOST: &str = "10.9.0.1";

/// 8080/tcp on every host address, to port 80 of `target`.
fn web_on(target: &str) -> Publication {
    Publication {
        proto: 6,
        host_ip: "0.0.0.0".parse().unwrap(),
        host_port: 8080,
        target_ip: target.parse().unwrap(),
        target_port: 80,
    }
}

fn lab(flags: u32) -> Programs {
    let mut l = Programs::in_private_netns("netd-iso").with_container_port(flags);
    l.set_network(OTHER_ID, "10.2.0.0/16", 0, 0);
    l.dp.set_local_addrs(&[HOST.parse().unwrap()]).unwrap();
    l
}

/// A frame from the container to `dst`, addressed to `dst_mac`.
fn tcp_to(dst: &str, dst_mac: [u8; 6]) -> Vec<u8> {
    let f = Builder::tcp("172.17.0.2:40000", dst, SYN).build();
    with_macs(f, dst_mac, CONTAINER_MAC)
}

/// What the port's ingress program does with a frame the container sends.
trait FromContainer {
    fn verdict(&mut self, frame: &[u8]) -> u32;
}

impl FromContainer for Programs {
    fn verdict(&mut self, frame: &[u8]) -> u32 {
        self.run(maps::PROG_PORT_INGRESS, frame).0
    }
}

fn skip(name: &str) -> bool {
    !privileged(name)
}

#[test]
fn networks_are_apart_but_members_gateway_and_outside_are_reachable() {
    if skip("networks_are_apart_but_members_gateway_and_outside_are_reachable") {
        return;
    }
    let mut l = lab(0);
    assert_eq!(l.verdict(&tcp_to("172.17.0.3:80", PEER_MAC)), CONTINUE);
    assert_eq!(l.verdict(&tcp_to("172.17.0.1:80", GATEWAY_MAC)), CONTINUE);
    assert_eq!(l.verdict(&tcp_to("198.51.100.7:80", GATEWAY_MAC)), CONTINUE);
    assert_eq!(
        l.verdict(&tcp_to(&format!("{HOST}:22"), GATEWAY_MAC)),
        CONTINUE
    );
    assert_eq!(l.verdict(&tcp_to("10.2.0.5:80", GATEWAY_MAC)), SHOT);
    let ping_other_gateway = with_macs(
        icmp_echo("172.17.0.2", "10.2.0.1", 7, false),
        GATEWAY_MAC,
        CONTAINER_MAC,
    );
    assert_eq!(l.verdict(&ping_other_gateway), SHOT);
    assert_eq!(
        l.drops_of(NETWORK_ID, "other_network", DIR_FROM_CONTAINER),
        2
    );
    assert_eq!(l.drops("other_network"), 2, "counted once each");
}

#[test]
fn published_ports_stay_reachable_from_every_network() {
    if skip("published_ports_stay_reachable_from_every_network") {
        return;
    }
    let mut l = lab(0);
    // A container of the other network publishes 8080 on every host address, the other
    // network's gateway included.
    l.dp.set_local_addrs(&[HOST.parse().unwrap(), "10.2.0.1".parse().unwrap()])
        .unwrap();
    l.dp.publish(&[web_on("10.2.0.5")]).unwrap();
    for host in [HOST, "10.2.0.1"] {
        let (verdict, out) = l.run(
            maps::PROG_PORT_INGRESS,
            &tcp_to(&format!("{host}:8080"), GATEWAY_MAC),
        );
        assert_eq!(verdict, CONTINUE, "through {host}");
        assert_eq!(parse(&out).dst.to_string(), "10.2.0.5:80");
    }
    assert_eq!(l.drops("other_network"), 0);
}

#[test]
fn spoofed_sources_are_dropped_and_counted() {
    if skip("spoofed_sources_are_dropped_and_counted") {
        return;
    }
    let mut l = lab(0);
    let spoofed_ip = with_macs(
        Builder::udp("172.17.0.9:5000", "172.17.0.3:53").build(),
        PEER_MAC,
        CONTAINER_MAC,
    );
    assert_eq!(l.verdict(&spoofed_ip), SHOT);
    let spoofed_mac = with_macs(
        tcp_to("172.17.0.3:80", PEER_MAC),
        PEER_MAC,
        [2, 0, 0, 0, 0, 9],
    );
    assert_eq!(l.verdict(&spoofed_mac), SHOT);
    let raw_spoofed_mac = raw_ethernet(PEER_MAC, [2, 0, 0, 0, 0, 9], 0x88b5, b"hello");
    assert_eq!(l.verdict(&raw_spoofed_mac), SHOT);
    assert_eq!(l.drops_of(NETWORK_ID, "spoofed_ip", DIR_FROM_CONTAINER), 1);
    assert_eq!(l.drops_of(NETWORK_ID, "spoofed_mac", DIR_FROM_CONTAINER), 2);
}

#[test]
fn arp_may_claim_only_the_senders_own_address() {
    if skip("arp_may_claim_only_the_senders_own_address") {
        return;
    }
    let mut l = lab(0);
    let own = arp(1, CONTAINER_MAC, "172.17.0.2", [0; 6], "172.17.0.3");
    assert_eq!(l.verdict(&own), CONTINUE);
    let probe = arp(1, CONTAINER_MAC, "0.0.0.0", [0; 6], "172.17.0.2");
    assert_eq!(l.verdict(&probe), CONTINUE);
    // Claiming the peer's address (poisoning a victim's table), in a reply and a request.
    let claim = arp(2, CONTAINER_MAC, "172.17.0.3", PEER_MAC, "172.17.0.4");
    assert_eq!(l.verdict(&claim), SHOT);
    let gratuitous = arp(1, CONTAINER_MAC, "172.17.0.1", [0; 6], "172.17.0.1");
    assert_eq!(l.verdict(&gratuitous), SHOT);
    // A sender MAC that is not the frame's.
    let mut other_mac = arp(2, [2, 0, 0, 0, 0, 9], "172.17.0.2", PEER_MAC, "172.17.0.3");
    other_mac[6..12].copy_from_slice(&CONTAINER_MAC);
    assert_eq!(l.verdict(&other_mac), SHOT);
    assert_eq!(l.drops("spoofed_arp"), 3);
}

#[test]
fn ipv6_from_containers_is_dropped_and_router_advertisements_by_name() {
    if skip("ipv6_from_containers_is_dropped_and_router_advertisements_by_name") {
        return;
    }
    let mut l = lab(0);
    assert_eq!(l.verdict(&icmpv6(CONTAINER_MAC, 134, false)), SHOT);
    assert_eq!(l.verdict(&icmpv6(CONTAINER_MAC, 134, true)), SHOT);
    assert_eq!(l.drops("router_advertisement"), 2);
    // A router solicitation and MLD to 33:33:..., a neighbour solicitation to the gateway's
    // MAC, a forged neighbour advertisement, an echo request behind options.
    let ipv6 = [
        icmpv6(CONTAINER_MAC, 133, false),
        icmpv6(CONTAINER_MAC, 143, false),
        with_macs(
            icmpv6(CONTAINER_MAC, 135, false),
            GATEWAY_MAC,
            CONTAINER_MAC,
        ),
        with_macs(icmpv6(CONTAINER_MAC, 136, false), BROADCAST, CONTAINER_MAC),
        icmpv6(CONTAINER_MAC, 128, true),
    ];
    for frame in &ipv6 {
        assert_eq!(l.verdict(frame), SHOT, "{frame:02x?}");
    }
    assert_eq!(l.drops("ipv6_disabled"), ipv6.len() as u64);
}

#[test]
fn icc_off_members_reach_the_gateway_and_outside_only() {
    if skip("icc_off_members_reach_the_gateway_and_outside_only") {
        return;
    }
    let mut l = lab(NET_ICC_OFF);
    assert_eq!(l.verdict(&tcp_to("172.17.0.1:80", GATEWAY_MAC)), CONTINUE);
    assert_eq!(l.verdict(&tcp_to("198.51.100.7:80", GATEWAY_MAC)), CONTINUE);
    let arp_gateway = arp(1, CONTAINER_MAC, "172.17.0.2", [0; 6], "172.17.0.1");
    assert_eq!(l.verdict(&arp_gateway), CONTINUE);
    // The host may ask with any of its addresses (the source of the packet it holds).
    let reply_to_host = arp(2, CONTAINER_MAC, "172.17.0.2", GATEWAY_MAC, HOST);
    assert_eq!(l.verdict(&reply_to_host), CONTINUE);
    let raw_to_gateway = raw_ethernet(GATEWAY_MAC, CONTAINER_MAC, 0x88b5, b"hi");
    assert_eq!(l.verdict(&raw_to_gateway), CONTINUE);

    let blocked = [
        tcp_to("172.17.0.3:80", PEER_MAC),
        // Routed by the host back onto the bridge.
        tcp_to("172.17.0.3:80", GATEWAY_MAC),
        arp(1, CONTAINER_MAC, "172.17.0.2", [0; 6], "172.17.0.3"),
        raw_ethernet(PEER_MAC, CONTAINER_MAC, 0x88b5, b"hi"),
        raw_ethernet(BROADCAST, CONTAINER_MAC, 0x88b5, b"hi"),
        with_macs(
            Builder::udp("172.17.0.2:68", "255.255.255.255:67").build(),
            BROADCAST,
            CONTAINER_MAC,
        ),
        // IPv4 for an outside address, but sent to a member's MAC.
        tcp_to("198.51.100.7:80", PEER_MAC),
    ];
    for frame in &blocked {
        assert_eq!(l.verdict(frame), SHOT, "{frame:02x?}");
    }
    assert_eq!(
        l.drops_of(NETWORK_ID, "icc_disabled", DIR_FROM_CONTAINER),
        blocked.len() as u64
    );
}

#[test]
fn icc_off_members_reach_each_others_published_ports_through_the_host() {
    if skip("icc_off_members_reach_each_others_published_ports_through_the_host") {
        return;
    }
    let mut l = lab(NET_ICC_OFF);
    l.dp.publish(&[web_on("172.17.0.3")]).unwrap();
    let (verdict, out) = l.run(
        maps::PROG_PORT_INGRESS,
        &tcp_to(&format!("{HOST}:8080"), GATEWAY_MAC),
    );
    assert_eq!(verdict, CONTINUE);
    let p = parse(&out);
    assert_eq!(p.dst.to_string(), "172.17.0.3:80");
    assert_eq!(
        p.src.ip().to_string(),
        HOST,
        "the member answers the host, the only peer it may talk to"
    );
    assert!(p.ip_checksum_ok && p.l4_checksum_ok);
}

#[test]
fn internal_members_reach_each_other_and_the_gateway_dns_only() {
    if skip("internal_members_reach_each_other_and_the_gateway_dns_only") {
        return;
    }
    let mut l = lab(NET_INTERNAL);
    l.dp.publish(&[web_on("10.2.0.5")]).unwrap();
    assert_eq!(l.verdict(&tcp_to("172.17.0.3:80", PEER_MAC)), CONTINUE);
    let dns = with_macs(
        Builder::udp("172.17.0.2:5353", "172.17.0.1:53").build(),
        GATEWAY_MAC,
        CONTAINER_MAC,
    );
    assert_eq!(l.verdict(&dns), CONTINUE);
    assert_eq!(l.verdict(&tcp_to("172.17.0.1:53", GATEWAY_MAC)), CONTINUE);
    let blocked = [
        tcp_to("172.17.0.1:22", GATEWAY_MAC),
        with_macs(
            icmp_echo("172.17.0.2", "172.17.0.1", 7, false),
            GATEWAY_MAC,
            CONTAINER_MAC,
        ),
        tcp_to("198.51.100.7:80", GATEWAY_MAC),
        // A published port is not reachable from an internal network: not translated.
        tcp_to(&format!("{HOST}:8080"), GATEWAY_MAC),
        // Host services over IPv6 link-local.
        with_macs(
            icmpv6(CONTAINER_MAC, 128, false),
            GATEWAY_MAC,
            CONTAINER_MAC,
        ),
    ];
    for frame in &blocked {
        let (verdict, out) = l.run(maps::PROG_PORT_INGRESS, frame);
        assert_eq!(verdict, SHOT, "{frame:02x?}");
        assert_eq!(&out, frame, "untranslated");
    }
    assert_eq!(
        l.drops_of(NETWORK_ID, "internal_network", DIR_FROM_CONTAINER),
        5
    );
    assert_eq!(l.verdict(&tcp_to("10.2.0.5:80", GATEWAY_MAC)), SHOT);
    assert_eq!(l.drops("other_network"), 1);
}

#[test]
fn the_outside_reaches_container_addresses_only_on_routed_networks_and_never_a_gateway() {
    if skip("the_outside_reaches_container_addresses_only_on_routed_networks_and_never_a_gateway") {
        return;
    }
    let mut l = lab(0);
    let direct = Builder::tcp("192.0.2.9:40000", "172.17.0.2:80", SYN).build();
    let gateway = Builder::tcp("192.0.2.9:40000", "172.17.0.1:22", SYN).build();
    let host = Builder::tcp("192.0.2.9:40000", &format!("{HOST}:22"), SYN).build();
    assert_eq!(l.run(maps::PROG_UPLINK_INGRESS, &direct).0, SHOT);
    assert_eq!(l.run(maps::PROG_UPLINK_INGRESS, &gateway).0, SHOT);
    assert_eq!(l.run(maps::PROG_UPLINK_INGRESS, &host).0, CONTINUE);
    assert_eq!(l.drops_of(NETWORK_ID, "direct_access", DIR_TO_CONTAINER), 2);
    l.set_network(NETWORK_ID, "172.17.0.0/16", NET_ROUTED, 0);
    assert_eq!(l.run(maps::PROG_UPLINK_INGRESS, &direct).0, CONTINUE);
    assert_eq!(l.run(maps::PROG_UPLINK_INGRESS, &gateway).0, SHOT);
    l.set_network(NETWORK_ID, "172.17.0.0/16", NET_ROUTED | NET_INTERNAL, 0);
    assert_eq!(l.run(maps::PROG_UPLINK_INGRESS, &direct).0, SHOT);
}

#[test]
fn containers_take_outside_traffic_only_through_netd_policed_interfaces() {
    if skip("containers_take_outside_traffic_only_through_netd_policed_interfaces") {
        return;
    }
    let mut l = lab(0);
    let to_container = Builder::tcp("192.0.2.9:40000", "172.17.0.2:80", SYN).build();
    let egress = |l: &mut Programs, ingress_ifindex| {
        let skb = Skb {
            ingress_ifindex,
            ifindex: 0,
        };
        l.run_with(maps::PROG_PORT_EGRESS, &to_container, Some(skb))
            .0
    };
    // Another interface of the host (a second NIC, a tunnel): not policed by netd.
    assert_eq!(egress(&mut l, 77), SHOT);
    assert_eq!(l.drops_of(NETWORK_ID, "direct_access", DIR_TO_CONTAINER), 1);
    // The host itself, an uplink, a bridge, another container's port.
    assert_eq!(egress(&mut l, 0), CONTINUE);
    l.dp.set_uplink(77, HOST.parse().unwrap()).unwrap();
    assert_eq!(egress(&mut l, 77), CONTINUE);
    l.set_network(OTHER_ID, "10.2.0.0/16", 0, 78);
    assert_eq!(egress(&mut l, 78), CONTINUE);
    l.dp.set_endpoint(
        79,
        endpoint("172.17.0.3".parse().unwrap(), PEER_MAC, NETWORK_ID),
    )
    .unwrap();
    assert_eq!(egress(&mut l, 79), CONTINUE);
    // Routed networks take it from anywhere.
    l.set_network(NETWORK_ID, "172.17.0.0/16", NET_ROUTED, 0);
    assert_eq!(egress(&mut l, 80), CONTINUE);
}

#[test]
fn a_port_without_an_endpoint_drops_everything() {
    if skip("a_port_without_an_endpoint_drops_everything") {
        return;
    }
    let mut l = lab(0);
    l.dp.remove_endpoint(LO).unwrap();
    assert_eq!(l.verdict(&tcp_to("172.17.0.3:80", PEER_MAC)), SHOT);
    assert_eq!(l.drops_of(0, "unknown_endpoint", DIR_FROM_CONTAINER), 1);
}

/// The redirect verdict: `bpf_redirect_peer` into the member's namespace.
const REDIRECT: u32 = 7;
/// The bridge port of the member at 172.17.0.3 (any index: a test-run only records it).
const PEER_PORT: u32 = 42;

#[test]
fn members_are_reached_past_the_bridge_and_counted_on_their_port() {
    if skip("members_are_reached_past_the_bridge_and_counted_on_their_port") {
        return;
    }
    let mut l = lab(0);
    l.dp.track(LO).unwrap();
    l.dp.track(PEER_PORT).unwrap();
    let peer = endpoint("172.17.0.3".parse().unwrap(), PEER_MAC, NETWORK_ID);
    l.dp.set_endpoint(PEER_PORT, peer).unwrap();
    let frame = tcp_to("172.17.0.3:80", PEER_MAC);
    assert_eq!(l.verdict(&frame), REDIRECT);
    let counted = l.dp.port_counters(PEER_PORT).unwrap();
    assert_eq!(counted.egress_packets, 1, "delivered to the member's port");
    assert_eq!(counted.egress_bytes, frame.len() as u64);
    assert_eq!(l.dp.port_counters(LO).unwrap().ingress_packets, 1);

    // Frames for another MAC are the bridge's: routed through the gateway, or misaddressed.
    assert_eq!(l.verdict(&tcp_to("172.17.0.3:80", GATEWAY_MAC)), CONTINUE);
    assert_eq!(
        l.verdict(&tcp_to("172.17.0.3:80", [2, 0, 0, 0, 0, 9])),
        CONTINUE
    );
    // Another network's member stays out of reach, with or without a member entry.
    let other = endpoint(
        "10.2.0.5".parse().unwrap(),
        [2, 0x42, 10, 2, 0, 5],
        OTHER_ID,
    );
    l.dp.set_endpoint(PEER_PORT + 1, other).unwrap();
    assert_eq!(l.verdict(&tcp_to("10.2.0.5:80", other.mac)), SHOT);
    assert_eq!(l.drops("other_network"), 1);
    assert_eq!(l.dp.port_counters(PEER_PORT).unwrap().egress_packets, 1);

    // The member leaves: its address goes back to the bridge.
    l.dp.remove_endpoint(PEER_PORT).unwrap();
    assert_eq!(l.dp.member(peer.addr_be), None);
    assert_eq!(l.verdict(&frame), CONTINUE);
}

#[test]
fn a_reused_address_keeps_its_new_port_when_the_old_one_goes() {
    if skip("a_reused_address_keeps_its_new_port_when_the_old_one_goes") {
        return;
    }
    let mut l = lab(0);
    let peer = endpoint("172.17.0.3".parse().unwrap(), PEER_MAC, NETWORK_ID);
    l.dp.set_endpoint(PEER_PORT, peer).unwrap();
    // A new container got the address before the old port was cleaned up.
    l.dp.set_endpoint(PEER_PORT + 1, peer).unwrap();
    l.dp.remove_endpoint(PEER_PORT).unwrap();
    let member = l.dp.member(peer.addr_be).expect("still a member");
    assert_eq!(member.port_ifindex, PEER_PORT + 1);
    assert_eq!(l.verdict(&tcp_to("172.17.0.3:80", PEER_MAC)), REDIRECT);
}

#[test]
fn icc_off_members_are_not_reached_directly_either() {
    if skip("icc_off_members_are_not_reached_directly_either") {
        return;
    }
    let mut l = lab(NET_ICC_OFF);
    let peer = endpoint("172.17.0.3".parse().unwrap(), PEER_MAC, NETWORK_ID);
    l.dp.set_endpoint(PEER_PORT, peer).unwrap();
    assert_eq!(l.verdict(&tcp_to("172.17.0.3:80", PEER_MAC)), SHOT);
    assert_eq!(
        l.drops_of(NETWORK_ID, "icc_disabled", DIR_FROM_CONTAINER),
        1
    );
}
