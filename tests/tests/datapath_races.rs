//! Tier 2: the first packets of one new flow seen by two CPUs at once, by BPF_PROG_TEST_RUN
//! from two threads pinned to two CPUs: one translation wins, and the other packet takes it
//! (BPF_NOEXIST), never a second backend or source port. Each test runs in a private network
//! namespace of its own thread.

use std::net::Ipv4Addr;

use integration_tests::{
    packet::{parse, Builder, SYN},
    privileged,
    testrun::{Programs, CONTAINER_IP, NETWORK_ID},
};
use netd::datapath::vips::VipSpec;
use netd_common::{isolation::NET_VIPS, maps, vip::Algorithm};

const FLOWS: u16 = 3000;

/// The first packet of each of [`FLOWS`] connections from the container to `dst`.
fn syns(dst: &str) -> Vec<Vec<u8>> {
    (0..FLOWS)
        .map(|i| Builder::tcp(&format!("{CONTAINER_IP}:{}", 10000 + i), dst, SYN).build())
        .collect()
}

#[test]
fn two_cpus_opening_one_flow_agree_on_its_backend() {
    if !privileged("two_cpus_opening_one_flow_agree_on_its_backend") {
        return;
    }
    let mut l = Programs::in_private_netns("netd-race").with_container_port(0);
    l.set_network(NETWORK_ID, "172.17.0.0/16", NET_VIPS, 0);
    let spec = VipSpec {
        id: 5,
        network: NETWORK_ID,
        addr: "172.17.0.200".parse().unwrap(),
        algorithm: Algorithm::RoundRobin,
        backends: ["172.17.0.10", "172.17.0.11"]
            .iter()
            .map(|b| b.parse().unwrap())
            .collect(),
    };
    l.dp.set_vips(&[spec]).unwrap();
    let outputs = l.run_on_two_cpus(maps::PROG_PORT_INGRESS, &syns("172.17.0.200:80"));
    for (i, [a, b]) in outputs.iter().enumerate() {
        assert_eq!(
            parse(a).dst,
            parse(b).dst,
            "flow {i}: the CPU that lost the race takes the winner's backend"
        );
    }
    // One connection each: two entries, counted once.
    assert_eq!(l.dp.conntrack_entries().len(), 2 * usize::from(FLOWS));
    let counted: u64 = l.dp.vip_connections(5).iter().map(|(_, n)| n).sum();
    assert_eq!(counted, u64::from(FLOWS));
}

#[test]
fn two_cpus_masquerading_one_flow_agree_on_its_source_port() {
    if !privileged("two_cpus_masquerading_one_flow_agree_on_its_source_port") {
        return;
    }
    let mut l = Programs::in_private_netns("netd-race").with_container_port(0);
    let uplink: Ipv4Addr = "10.99.0.1".parse().unwrap();
    l.dp.set_uplink(1, uplink).unwrap();
    l.dp.set_masq_subnets(&["172.17.0.0/16".parse().unwrap()])
        .unwrap();
    // Both CPUs try the container's own port first; the one that loses it draws another.
    let frames = syns("198.51.100.7:80");
    let outputs = l.run_on_two_cpus(maps::PROG_UPLINK_EGRESS, &frames);
    for (i, [a, b]) in outputs.iter().enumerate() {
        let (a, b) = (parse(a), parse(b));
        assert_eq!(*a.src.ip(), uplink);
        assert_eq!(a.src, b.src, "flow {i}: one source port for both packets");
    }
    // One connection each: no port the loser claimed stays taken.
    assert_eq!(l.dp.conntrack_entries().len(), 2 * frames.len());
}
