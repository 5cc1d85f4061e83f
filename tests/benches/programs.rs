//! What netd's bridge-port programs cost per packet, timed by the kernel: BPF_PROG_TEST_RUN
//! runs each program a million times on a crafted frame and reports the mean time per run.
//! No traffic and nothing else of the machine in the figure, so that it moves only when the
//! programs do. Prints a markdown table; `cargo xtask bench --suites programs` runs it.

use std::time::Duration;

use integration_tests::{
    packet::{with_macs, Builder, ACK},
    testrun::{Programs, Skb, CONTAINER_MAC, CONTINUE, GATEWAY_MAC, LO, NETWORK_ID},
};
use netd::datapath::isolation::endpoint;
use netd_common::maps::{PROG_PORT_EGRESS, PROG_PORT_INGRESS};

const PEER_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0, 3];
const PEER_PORT: u32 = 42;
const REDIRECT: u32 = 7;
const REPEAT: u32 = 1_000_000;
/// Best of: other tenants of the machine only ever add time.
const TRIES: usize = 5;

/// A full-sized TCP segment of an established connection.
fn segment(src: &str, dst: &str, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
    let mut b = Builder::tcp(src, dst, ACK);
    b.payload = vec![0; 1400];
    with_macs(b.build(), dst_mac, src_mac)
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("the programs benchmark needs root (CAP_BPF, CAP_NET_ADMIN)");
        std::process::exit(1);
    }
    let mut l = Programs::in_private_netns("netd-cost").with_container_port(0);
    l.dp.track(LO).expect("counters of the test port");
    l.dp.track(PEER_PORT)
        .expect("counters of the member's port");
    let peer = endpoint("172.17.0.3".parse().unwrap(), PEER_MAC, NETWORK_ID);
    l.dp.set_endpoint(PEER_PORT, peer).expect("member");

    let from_bridge_port = Skb {
        ingress_ifindex: PEER_PORT,
        ifindex: LO,
    };
    let from_host = Skb {
        ingress_ifindex: 0,
        ifindex: LO,
    };
    let cases = [
        (
            "port ingress: to a member (direct path)",
            PROG_PORT_INGRESS,
            segment(
                "172.17.0.2:40000",
                "172.17.0.3:5201",
                CONTAINER_MAC,
                PEER_MAC,
            ),
            None,
            REDIRECT,
        ),
        (
            "port ingress: to the outside",
            PROG_PORT_INGRESS,
            segment(
                "172.17.0.2:40000",
                "198.51.100.7:443",
                CONTAINER_MAC,
                GATEWAY_MAC,
            ),
            None,
            CONTINUE,
        ),
        (
            "port egress: from another bridge port",
            PROG_PORT_EGRESS,
            segment(
                "172.17.0.3:5201",
                "172.17.0.2:40000",
                PEER_MAC,
                CONTAINER_MAC,
            ),
            Some(from_bridge_port),
            CONTINUE,
        ),
        (
            "port egress: from the host",
            PROG_PORT_EGRESS,
            segment(
                "198.51.100.7:443",
                "172.17.0.2:40000",
                GATEWAY_MAC,
                CONTAINER_MAC,
            ),
            Some(from_host),
            CONTINUE,
        ),
    ];
    println!("| program and packet | ns per packet |\n| --- | --- |");
    for (name, program, frame, skb, expected) in cases {
        let best = (0..TRIES)
            .map(|_| {
                let (verdict, per_run) = l.time(program, &frame, skb, REPEAT);
                assert_eq!(verdict, expected, "{name}: verdict");
                per_run
            })
            .min()
            .unwrap_or(Duration::ZERO);
        println!("| {name} | {} |", best.as_nanos());
    }
}
