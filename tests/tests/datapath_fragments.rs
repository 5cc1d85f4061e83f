//! Tier 2: fragmented UDP datagrams through published ports and masquerade, run by
//! BPF_PROG_TEST_RUN on crafted fragments: the first fragment is translated with its ports
//! and its checksum (which covers the whole datagram), the later ones with the connection
//! the first opened. Each test runs in a private network namespace of its own thread.

use integration_tests::{
    packet::{fragments, parse, Builder},
    privileged,
    testrun::{Programs, CONTINUE, SHOT},
};
use netd::datapath::nat::Publication;
use netd_common::{isolation::NET_ROUTED, maps};

const CLIENT: &str = "192.0.2.9:40000";

fn lab(name: &str) -> Option<Programs> {
    if !privileged(name) {
        return None;
    }
    let mut l = Programs::in_private_netns("netd-frag").with_container_port(NET_ROUTED);
    l.dp.set_local_addrs(&["10.9.0.1".parse().unwrap()])
        .unwrap();
    l.dp.set_uplink(1, "10.99.0.1".parse().unwrap()).unwrap();
    l.dp.set_masq_subnets(&["172.17.0.0/16".parse().unwrap()])
        .unwrap();
    Some(l)
}

/// A 3,000-byte UDP datagram from `src` to `dst`.
fn datagram(src: &str, dst: &str) -> Vec<u8> {
    let mut b = Builder::udp(src, dst);
    b.payload = (0..3000u32).map(|i| (i % 251) as u8).collect();
    b.build()
}

/// The UDP checksum field (in a first fragment or a whole datagram).
fn udp_checksum(frame: &[u8]) -> [u8; 2] {
    [frame[34 + 6], frame[34 + 7]]
}

#[test]
fn a_fragmented_datagram_reaches_a_published_udp_port_and_its_reply_comes_back() {
    let Some(mut l) =
        lab("a_fragmented_datagram_reaches_a_published_udp_port_and_its_reply_comes_back")
    else {
        return;
    };
    let web = Publication {
        proto: 17,
        host_ip: "0.0.0.0".parse().unwrap(),
        host_port: 5353,
        target_ip: "172.17.0.2".parse().unwrap(),
        target_port: 53,
    };
    l.dp.publish(&[web]).unwrap();
    let (first, later) = fragments(&datagram(CLIENT, "10.9.0.1:5353"), 1480);
    let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &first);
    let p = parse(&out);
    assert_eq!(p.dst.to_string(), "172.17.0.2:53");
    assert!(p.ip_checksum_ok);
    // The checksum of the whole datagram as the container receives it.
    let expected = udp_checksum(&datagram(CLIENT, "172.17.0.2:53"));
    assert_eq!(udp_checksum(&out), expected);
    let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &later);
    let p = parse(&out);
    assert_eq!(
        p.dst.ip().to_string(),
        "172.17.0.2",
        "the later fragment follows"
    );
    assert!(p.ip_checksum_ok);
    assert_eq!(&out[34..], &later[34..], "its payload untouched");

    // The container's reply, fragmented: both from the published port.
    let (first, later) = fragments(&datagram("172.17.0.2:53", CLIENT), 1480);
    let (_, out) = l.run(maps::PROG_PORT_INGRESS, &first);
    assert_eq!(parse(&out).src.to_string(), "10.9.0.1:5353");
    assert_eq!(
        udp_checksum(&out),
        udp_checksum(&datagram("10.9.0.1:5353", CLIENT))
    );
    let (_, out) = l.run(maps::PROG_PORT_INGRESS, &later);
    let p = parse(&out);
    assert_eq!(p.src.ip().to_string(), "10.9.0.1");
    assert!(p.ip_checksum_ok);
}

#[test]
fn a_fragmented_datagram_leaves_masqueraded_and_a_lone_later_fragment_does_not_leave() {
    let Some(mut l) =
        lab("a_fragmented_datagram_leaves_masqueraded_and_a_lone_later_fragment_does_not_leave")
    else {
        return;
    };
    let (first, later) = fragments(&datagram("172.17.0.2:5000", "198.51.100.7:53"), 1480);
    let (_, out) = l.run(maps::PROG_UPLINK_EGRESS, &first);
    let p = parse(&out);
    assert_eq!(p.src.ip().to_string(), "10.99.0.1");
    assert_eq!(
        udp_checksum(&out),
        udp_checksum(&datagram(&p.src.to_string(), "198.51.100.7:53"))
    );
    let (verdict, out) = l.run(maps::PROG_UPLINK_EGRESS, &later);
    assert_eq!(verdict, CONTINUE);
    let q = parse(&out);
    assert_eq!(q.src.ip().to_string(), "10.99.0.1");
    assert!(q.ip_checksum_ok);

    // The server's reply, fragmented, back to the container.
    let (first, later) = fragments(&datagram("198.51.100.7:53", &p.src.to_string()), 1480);
    let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &first);
    assert_eq!(parse(&out).dst.to_string(), "172.17.0.2:5000");
    let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &later);
    assert_eq!(parse(&out).dst.ip().to_string(), "172.17.0.2");

    // A later fragment whose first was never seen has no translation: it does not leave
    // with the container's address.
    let mut other = datagram("172.17.0.2:5001", "198.51.100.7:53");
    other[18..20].copy_from_slice(&[0x43, 0x21]);
    let (_, lone) = fragments(&other, 1480);
    let (verdict, _) = l.run(maps::PROG_UPLINK_EGRESS, &lone);
    assert_eq!(verdict, SHOT);
    assert_eq!(l.drops("untranslatable"), 1);
}
