//! Tier 2: the real eBPF object, loaded and run on crafted packets with BPF_PROG_TEST_RUN.
//! No namespace and no attachment: the kernel runs the program as if the packet arrived on lo.

use aya::programs::{TestRun, TestRunOptions};
use integration_tests::{
    privileged,
    testrun::{Programs, CONTINUE, LO, SHOT},
};
use netd::datapath::Datapath;
use netd_common::maps;

/// TCX_NEXT: counting never decides a packet's fate.
const TCX_NEXT: u32 = CONTINUE;

/// The test port (lo) is a container's interface on an ordinary network.
fn load() -> Programs {
    Programs::load("netd-tr").with_container_port(0)
}

/// An Ethernet + IPv4 + UDP frame with `payload` bytes of data.
fn udp_frame(payload: usize) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + payload];
    f[0..6].copy_from_slice(&[0x02, 0x42, 0xac, 0x11, 0, 3]);
    f[6..12].copy_from_slice(&[0x02, 0x42, 0xac, 0x11, 0, 2]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + 8 + payload) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[172, 17, 0, 2]);
    ip[16..20].copy_from_slice(&[172, 17, 0, 3]);
    f
}

fn run(dp: &mut Datapath, program: &'static str, frame: &[u8], repeat: u32) -> u32 {
    let prog = dp.classifier(program).expect("program is loaded");
    let mut out = vec![0u8; frame.len() + 64];
    let result = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!(
        &out[..result.data_size_out as usize],
        frame,
        "counting and policing must not change the packet"
    );
    result.return_value
}

#[test]
fn ingress_counts_packets_and_bytes_of_a_tracked_port() {
    if !privileged("ingress_counts_packets_and_bytes_of_a_tracked_port") {
        return;
    }
    let mut l = load();
    l.dp.track(LO).unwrap();
    let frame = udp_frame(100);
    assert_eq!(run(&mut l.dp, maps::PROG_PORT_INGRESS, &frame, 1), TCX_NEXT);
    assert_eq!(run(&mut l.dp, maps::PROG_PORT_INGRESS, &frame, 9), TCX_NEXT);
    let c = l.dp.port_counters(LO).expect("tracked");
    assert_eq!(
        (c.ingress_packets, c.ingress_bytes),
        (10, 10 * frame.len() as u64)
    );
    assert_eq!((c.egress_packets, c.egress_bytes), (0, 0));
}

#[test]
fn egress_counts_into_its_own_direction() {
    if !privileged("egress_counts_into_its_own_direction") {
        return;
    }
    let mut l = load();
    l.dp.track(LO).unwrap();
    let frame = udp_frame(1000);
    assert_eq!(run(&mut l.dp, maps::PROG_PORT_EGRESS, &frame, 3), TCX_NEXT);
    let c = l.dp.port_counters(LO).expect("tracked");
    assert_eq!(
        (c.egress_packets, c.egress_bytes),
        (3, 3 * frame.len() as u64)
    );
    assert_eq!(c.ingress_packets, 0);
}

#[test]
fn untracked_interfaces_are_neither_counted_nor_added() {
    if !privileged("untracked_interfaces_are_neither_counted_nor_added") {
        return;
    }
    // No endpoint either: a port netd has not described is closed.
    let mut l = Programs::load("netd-tr");
    l.dp.track(LO + 1000).unwrap();
    assert_eq!(
        run(&mut l.dp, maps::PROG_PORT_INGRESS, &udp_frame(10), 5),
        SHOT
    );
    assert_eq!(l.drops("unknown_endpoint"), 5);
    assert_eq!(
        l.dp.port_counters(LO),
        None,
        "the program must not insert entries"
    );
    assert_eq!(l.dp.port_counters(LO + 1000).unwrap().ingress_packets, 0);
    assert_eq!(l.dp.counted_ifindexes(), vec![LO + 1000]);
    l.dp.untrack(LO + 1000).unwrap();
    assert!(l.dp.counted_ifindexes().is_empty());
}

#[test]
fn counters_survive_a_reload_through_the_pinned_map() {
    if !privileged("counters_survive_a_reload_through_the_pinned_map") {
        return;
    }
    let mut l = load();
    l.dp.track(LO).unwrap();
    run(&mut l.dp, maps::PROG_PORT_INGRESS, &udp_frame(10), 4);
    let again = Datapath::load(l.bpffs()).expect("reloading");
    assert_eq!(again.port_counters(LO).unwrap().ingress_packets, 4);
}

#[test]
fn truncated_frames_are_counted_by_their_length_and_dropped() {
    if !privileged("truncated_frames_are_counted_by_their_length_and_dropped") {
        return;
    }
    let mut l = load();
    l.dp.track(LO).unwrap();
    // An IPv4 header whose length field says 8 bytes.
    let mut runt = udp_frame(0);
    runt[14] = 0x42;
    assert_eq!(run(&mut l.dp, maps::PROG_PORT_INGRESS, &runt, 1), SHOT);
    assert_eq!(
        l.dp.port_counters(LO).unwrap().ingress_bytes,
        runt.len() as u64
    );
    assert_eq!(l.drops("malformed"), 1);
}

#[test]
fn the_conntrack_table_is_sized_at_start_and_a_new_size_keeps_its_connections() {
    if !privileged("the_conntrack_table_is_sized_at_start_and_a_new_size_keeps_its_connections") {
        return;
    }
    let mut l = load();
    l.dp.set_uplink(LO, "10.99.0.1".parse().unwrap()).unwrap();
    l.dp.set_masq_subnets(&["172.17.0.0/16".parse().unwrap()])
        .unwrap();
    let syn = integration_tests::packet::Builder::tcp(
        "172.17.0.2:5555",
        "198.51.100.7:80",
        integration_tests::packet::SYN,
    )
    .build();
    l.run(maps::PROG_UPLINK_EGRESS, &syn);
    assert_eq!(l.dp.conntrack_stats().opened, 1);
    let capacity = |dp: &Datapath| {
        dp.usage()
            .maps
            .iter()
            .find(|m| m.name == maps::CONNTRACK)
            .map(|m| m.capacity)
    };
    // The same size: the pinned table and its connection stay.
    let same = Datapath::load(l.bpffs()).expect("reloading");
    assert_eq!(capacity(&same), Some(maps::CONNTRACK_MAX));
    assert_eq!(same.conntrack_entries().len(), 2);
    drop(same);
    // Another size: a new table, the connection moved into it.
    let resized = Datapath::load_sized(l.bpffs(), 4096).expect("reloading resized");
    assert_eq!(capacity(&resized), Some(4096));
    assert_eq!(resized.conntrack_entries().len(), 2);
}
