//! What netd's programs cost per packet, timed by the kernel: BPF_PROG_TEST_RUN runs each
//! program a million times on a crafted frame and reports the mean time per run. No traffic
//! and nothing else of the machine in the figure, so that it moves only when the programs do.
//! The established cases (what every packet of a published or masqueraded connection after
//! the first pays) run with a conntrack entry and a FIB that answers, in the benchmark's own
//! namespace: lookup, rewrite, checksums, FIB lookup and redirect. Prints a markdown table;
//! `cargo xtask bench --suites programs` runs it.

use integration_tests::{
    packet::{fragments, icmp_error, with_macs, Builder, ACK, SYN},
    testrun::{
        routes_for_the_fib, Programs, Skb, CONTAINER_MAC, CONTINUE, GATEWAY_MAC, LO, NETWORK_ID,
        SHOT,
    },
};
use netd::datapath::{isolation::endpoint, nat::Publication};
use netd_common::isolation::DropReason;
use netd_common::maps::{
    PROG_PORT_EGRESS, PROG_PORT_INGRESS, PROG_UPLINK_EGRESS, PROG_UPLINK_INGRESS,
};

const PEER_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0, 3];
const PEER_PORT: u32 = 42;
const REDIRECT: u32 = 7;
const REPEAT: u32 = 1_000_000;
const TRIES: usize = 5;
/// Single runs (one syscall each, timed by the kernel) whose median is taken.
const SINGLE: usize = 20_000;

/// The host's address (published ports, masquerade) and an outside client.
const HOST: &str = "10.9.0.1";
const CLIENT: &str = "192.0.2.9:40000";
const OUTSIDE: &str = "198.51.100.7:80";

/// A 3,000-byte UDP datagram, to be cut in fragments.
fn udp_datagram(src: &str, dst: &str) -> Vec<u8> {
    let mut b = Builder::udp(src, dst);
    b.payload = vec![0; 3000];
    b.build()
}

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
    routes_for_the_fib();
    l.dp.set_local_addrs(&[HOST.parse().unwrap()]).unwrap();
    // Test runs see every packet on lo: it is the uplink here too.
    l.dp.set_uplink(LO, HOST.parse().unwrap()).unwrap();
    l.dp.set_masq_subnets(&["172.17.0.0/16".parse().unwrap()])
        .unwrap();
    l.dp.publish(&[Publication {
        proto: 6,
        host_ip: "0.0.0.0".parse().unwrap(),
        host_port: 8080,
        target_ip: "172.17.0.2".parse().unwrap(),
        target_port: 80,
    }])
    .unwrap();
    // The handshakes of a published and a masqueraded connection: established entries.
    let published = format!("{HOST}:8080");
    let masqueraded = format!("{HOST}:5555");
    let tcp = |src: &str, dst: &str, flags| Builder::tcp(src, dst, flags).build();
    let container_tcp =
        |src: &str, dst: &str, flags| with_macs(tcp(src, dst, flags), GATEWAY_MAC, CONTAINER_MAC);
    for (program, frame) in [
        (PROG_UPLINK_INGRESS, tcp(CLIENT, &published, SYN)),
        (
            PROG_PORT_INGRESS,
            container_tcp("172.17.0.2:80", CLIENT, SYN | ACK),
        ),
        (PROG_UPLINK_INGRESS, tcp(CLIENT, &published, ACK)),
        (PROG_UPLINK_EGRESS, tcp("172.17.0.2:5555", OUTSIDE, SYN)),
        (PROG_UPLINK_INGRESS, tcp(OUTSIDE, &masqueraded, SYN | ACK)),
        (PROG_UPLINK_EGRESS, tcp("172.17.0.2:5555", OUTSIDE, ACK)),
    ] {
        let (verdict, _) = l.run(program, &frame);
        assert_ne!(verdict, SHOT, "a handshake packet was dropped");
    }
    // A masqueraded UDP datagram in two fragments: the first records its ports.
    let (first_fragment, later_fragment) =
        fragments(&udp_datagram("172.17.0.2:5353", "198.51.100.7:53"), 1480);
    let (verdict, _) = l.run(PROG_UPLINK_EGRESS, &first_fragment);
    assert_ne!(verdict, SHOT, "the first fragment was dropped");
    // A router's "fragmentation needed" about the published connection's reply.
    let frag_needed = icmp_error(
        "203.0.113.1",
        HOST,
        (3, 4),
        1280,
        &tcp(&published, CLIENT, ACK),
    );
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
        (
            "uplink ingress: established, published port (conntrack, DNAT, FIB, redirect)",
            PROG_UPLINK_INGRESS,
            uplink_segment(CLIENT, &published),
            None,
            REDIRECT,
        ),
        (
            "port ingress: established reply of a published port (conntrack, SNAT, FIB, redirect)",
            PROG_PORT_INGRESS,
            segment("172.17.0.2:80", CLIENT, CONTAINER_MAC, GATEWAY_MAC),
            None,
            REDIRECT,
        ),
        (
            "uplink egress: established, masqueraded (conntrack, SNAT)",
            PROG_UPLINK_EGRESS,
            uplink_segment("172.17.0.2:5555", OUTSIDE),
            None,
            CONTINUE,
        ),
        (
            "uplink ingress: established reply of a masqueraded connection (conntrack, DNAT, FIB, redirect)",
            PROG_UPLINK_INGRESS,
            uplink_segment(OUTSIDE, &masqueraded),
            None,
            REDIRECT,
        ),
        (
            "uplink ingress: a router's fragmentation needed about a published reply (ICMP error NAT, FIB, redirect)",
            PROG_UPLINK_INGRESS,
            frag_needed,
            None,
            REDIRECT,
        ),
        (
            "uplink egress: a later fragment of a masqueraded datagram (fragment map, conntrack, SNAT)",
            PROG_UPLINK_EGRESS,
            later_fragment,
            None,
            CONTINUE,
        ),
    ];
    println!(
        "| program and packet | ns per packet: mean of {REPEAT} repeats, best of {TRIES} (all) | median of {SINGLE} single runs, best of {TRIES} (all) |\n| --- | --- | --- |"
    );
    for (name, program, frame, skb, expected) in cases {
        // A repeat runs on the skb the run before left: only a program that does not
        // rewrite its packet can be timed that way.
        let repeats = if rewrites(&mut l, program, &frame, skb) {
            "n/a: rewrites its packet".to_string()
        } else {
            best_of(|| {
                let (verdict, per_run) = l.time(program, &frame, skb, REPEAT);
                check(&l, name, verdict, expected);
                per_run.as_nanos()
            })
        };
        let singles = best_of(|| {
            let mut runs: Vec<u128> = (0..SINGLE)
                .map(|_| {
                    let (verdict, per_run) = l.time(program, &frame, skb, 1);
                    check(&l, name, verdict, expected);
                    per_run.as_nanos()
                })
                .collect();
            runs.sort();
            runs[runs.len() / 2]
        });
        println!("| {name} | {repeats} | {singles} |");
    }
}

/// `best (all tries)` of `TRIES` calls: other tenants of the machine only ever add time.
fn best_of(mut timed: impl FnMut() -> u128) -> String {
    let tries: Vec<u128> = (0..TRIES).map(|_| timed()).collect();
    let all: Vec<String> = tries.iter().map(u128::to_string).collect();
    format!("{} ({})", tries.iter().min().unwrap_or(&0), all.join(" "))
}

fn rewrites(l: &mut Programs, program: &'static str, frame: &[u8], skb: Option<Skb>) -> bool {
    l.run_with(program, frame, skb).1 != frame
}

fn check(l: &Programs, name: &str, verdict: u32, expected: u32) {
    if verdict != expected {
        let drops: Vec<&str> =
            l.dp.drops()
                .iter()
                .filter_map(|(k, _)| DropReason::from_u8(k.reason))
                .map(DropReason::name)
                .collect();
        panic!("{name}: verdict {verdict}, not {expected} (drops so far: {drops:?})");
    }
}

/// An established segment between the uplink's two ends (no MAC of netd's).
fn uplink_segment(src: &str, dst: &str) -> Vec<u8> {
    segment(src, dst, [0x02, 0, 0, 0, 0, 9], [0x02, 0, 0, 0, 0, 1])
}
