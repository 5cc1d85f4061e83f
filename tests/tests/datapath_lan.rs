//! Tier 2: the LAN programs of macvlan endpoints, run by BPF_PROG_TEST_RUN on crafted
//! frames. What the container sends passes with its own MAC and address only; spoofed IPs,
//! MACs and ARP claims, IPv6, and frames of an interface netd has not described are dropped
//! and counted. Each direction is counted on the interface. Each test runs in a private
//! network namespace of its own thread.

use integration_tests::{
    packet::{arp, icmpv6, with_macs, Builder, SYN},
    privileged,
    testrun::{Programs, CONTAINER_MAC, CONTINUE, LO, NETWORK_ID, SHOT},
};
use netd_common::{
    isolation::{DIR_FROM_CONTAINER, NET_ICC_OFF},
    maps,
};

const LAN_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];

fn sends(l: &mut Programs, frame: &[u8]) -> u32 {
    l.run(maps::PROG_LAN_EGRESS, frame).0
}

fn tcp_from(src: &str, src_mac: [u8; 6]) -> Vec<u8> {
    let f = Builder::tcp(&format!("{src}:40000"), "172.17.0.10:80", SYN).build();
    with_macs(f, LAN_HOST_MAC, src_mac)
}

#[test]
fn a_macvlan_container_sends_only_as_itself() {
    if !privileged("a_macvlan_container_sends_only_as_itself") {
        return;
    }
    // The network's own rules (icc=false here) are not the LAN's: only the sender counts.
    let mut l = Programs::in_private_netns("netd-lan").with_container_port(NET_ICC_OFF);
    assert_eq!(
        sends(&mut l, &tcp_from("172.17.0.2", CONTAINER_MAC)),
        CONTINUE
    );
    assert_eq!(sends(&mut l, &tcp_from("172.17.0.9", CONTAINER_MAC)), SHOT);
    assert_eq!(l.drops_of(NETWORK_ID, "spoofed_ip", DIR_FROM_CONTAINER), 1);
    assert_eq!(
        sends(&mut l, &tcp_from("172.17.0.2", [2, 0, 0, 0, 0, 9])),
        SHOT
    );
    assert_eq!(l.drops_of(NETWORK_ID, "spoofed_mac", DIR_FROM_CONTAINER), 1);

    let own = arp(1, CONTAINER_MAC, "172.17.0.2", [0; 6], "172.17.0.10");
    assert_eq!(sends(&mut l, &own), CONTINUE);
    let probe = arp(1, CONTAINER_MAC, "0.0.0.0", [0; 6], "172.17.0.2");
    assert_eq!(sends(&mut l, &probe), CONTINUE);
    let claim = arp(2, CONTAINER_MAC, "172.17.0.10", LAN_HOST_MAC, "172.17.0.11");
    assert_eq!(sends(&mut l, &claim), SHOT);
    assert_eq!(l.drops_of(NETWORK_ID, "spoofed_arp", DIR_FROM_CONTAINER), 1);
    assert_eq!(sends(&mut l, &icmpv6(CONTAINER_MAC, 135, false)), SHOT);
}

#[test]
fn an_interface_netd_did_not_describe_sends_nothing() {
    if !privileged("an_interface_netd_did_not_describe_sends_nothing") {
        return;
    }
    // No endpoint on the test port (lo).
    let mut l = Programs::in_private_netns("netd-lan");
    let frame = tcp_from("172.17.0.2", CONTAINER_MAC);
    let verdict = sends(&mut l, &frame);
    assert_eq!(verdict, SHOT);
    assert_eq!(l.drops("unknown_endpoint"), 1);
}

#[test]
fn both_directions_are_counted_on_the_interface() {
    if !privileged("both_directions_are_counted_on_the_interface") {
        return;
    }
    let mut l = Programs::in_private_netns("netd-lan").with_container_port(0);
    l.dp.track(LO).unwrap();
    let out = tcp_from("172.17.0.2", CONTAINER_MAC);
    assert_eq!(sends(&mut l, &out), CONTINUE);
    let reply = with_macs(
        Builder::tcp("172.17.0.10:80", "172.17.0.2:40000", SYN).build(),
        CONTAINER_MAC,
        LAN_HOST_MAC,
    );
    assert_eq!(l.run(maps::PROG_LAN_INGRESS, &reply).0, CONTINUE);
    assert_eq!(l.run(maps::PROG_LAN_INGRESS, &reply).0, CONTINUE);
    let c = l.dp.port_counters(LO).expect("counters of the interface");
    // As a bridge port counts them: ingress from the container, egress to it.
    assert_eq!((c.ingress_packets, c.egress_packets), (1, 2));
    assert_eq!(c.ingress_bytes, out.len() as u64);
}
