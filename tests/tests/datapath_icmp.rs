//! Tier 2: ICMP errors about translated connections, TTL and size on the redirect path, and
//! what a masqueraded network may not send out, run by BPF_PROG_TEST_RUN on crafted frames.
//! Each test runs in a private network namespace of its own thread.

use std::net::Ipv4Addr;

use integration_tests::{
    packet::{icmp_echo, icmp_error, parse, parse_error, parse_icmp, set_ttl, Builder, ACK, SYN},
    privileged,
    testrun::{routes_for_the_fib, Programs, CONTINUE, SHOT},
};
use netd::datapath::nat::Publication;
use netd_common::{isolation::NET_ROUTED, maps};

const HOST: &str = "10.9.0.1";
const CLIENT: &str = "192.0.2.9:40000";
const CONTAINER: &str = "172.17.0.2";
/// A router on the path, which sends the errors.
const ROUTER: &str = "203.0.113.1";
const UPLINK: &str = "10.99.0.1";
const SERVER: &str = "198.51.100.7:80";
/// TC_ACT_REDIRECT.
const REDIRECT: u32 = 7;
const FRAG_NEEDED: (u8, u8) = (3, 4);
const PORT_UNREACHABLE: (u8, u8) = (3, 3);
const TTL_EXCEEDED: (u8, u8) = (11, 0);

/// The test port (lo) is the container's (172.17.0.2 on 172.17.0.0/16); the host has
/// 10.9.0.1 and masquerades 172.17.0.0/16 behind 10.99.0.1 on lo.
fn lab(name: &str) -> Option<Programs> {
    if !privileged(name) {
        return None;
    }
    let mut l = Programs::in_private_netns("netd-icmp").with_container_port(NET_ROUTED);
    l.dp.set_local_addrs(&[HOST.parse().unwrap()]).unwrap();
    l.dp.set_uplink(1, UPLINK.parse().unwrap()).unwrap();
    l.dp.set_masq_subnets(&["172.17.0.0/16".parse().unwrap()])
        .unwrap();
    Some(l)
}

fn publish(l: &mut Programs, proto: u8, port: u16, target_port: u16) {
    let p = Publication {
        proto,
        host_ip: "0.0.0.0".parse().unwrap(),
        host_port: port,
        target_ip: CONTAINER.parse().unwrap(),
        target_port,
    };
    l.dp.publish(&[p]).unwrap();
}

fn assert_error_checksums(e: &integration_tests::packet::ParsedError) {
    assert!(e.icmp_checksum_ok, "{e:?}");
    assert!(e.embedded.ip_checksum_ok, "embedded IP checksum: {e:?}");
    assert!(e.embedded.l4_checksum_ok, "embedded L4 checksum: {e:?}");
}

#[test]
fn an_error_about_a_published_ports_reply_reaches_the_container_as_it_sent_it() {
    let Some(mut l) =
        lab("an_error_about_a_published_ports_reply_reaches_the_container_as_it_sent_it")
    else {
        return;
    };
    publish(&mut l, 6, 8080, 80);
    l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp(CLIENT, "10.9.0.1:8080", SYN).build(),
    );
    // The container's reply left as 10.9.0.1:8080; a router on the way found it too big.
    let reply = Builder::tcp("10.9.0.1:8080", CLIENT, SYN | ACK).build();
    let error = icmp_error(ROUTER, HOST, FRAG_NEEDED, 1280, &reply);
    let (verdict, out) = l.run(maps::PROG_UPLINK_INGRESS, &error);
    assert_eq!(verdict, CONTINUE, "no route here: the stack sends it on");
    let e = parse_error(&out);
    assert_eq!(
        (e.src, e.dst),
        (ROUTER.parse().unwrap(), CONTAINER.parse().unwrap())
    );
    assert_eq!(e.embedded.src.to_string(), "172.17.0.2:80");
    assert_eq!(e.embedded.dst.to_string(), CLIENT);
    assert_eq!(
        (e.icmp_type, e.mtu),
        (3, 1280),
        "the next hop's MTU is kept"
    );
    assert_error_checksums(&e);
}

#[test]
fn a_containers_port_unreachable_names_the_published_port() {
    let Some(mut l) = lab("a_containers_port_unreachable_names_the_published_port") else {
        return;
    };
    publish(&mut l, 17, 5353, 53);
    l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::udp(CLIENT, "10.9.0.1:5353").build(),
    );
    // What the container got, and its answer: nothing listens on 53.
    let got = Builder::udp(CLIENT, "172.17.0.2:53").build();
    let error = icmp_error(CONTAINER, "192.0.2.9", PORT_UNREACHABLE, 0, &got);
    let (_, out) = l.run(maps::PROG_PORT_INGRESS, &error);
    let e = parse_error(&out);
    assert_eq!(
        (e.src, e.dst),
        (HOST.parse().unwrap(), "192.0.2.9".parse().unwrap()),
        "from the address the client used"
    );
    assert_eq!(e.embedded.src.to_string(), CLIENT);
    assert_eq!(e.embedded.dst.to_string(), "10.9.0.1:5353");
    assert_error_checksums(&e);
}

#[test]
fn errors_about_masqueraded_connections_reach_the_container() {
    let Some(mut l) = lab("errors_about_masqueraded_connections_reach_the_container") else {
        return;
    };
    let syn = Builder::tcp("172.17.0.2:5555", SERVER, SYN).build();
    let (_, out) = l.run(maps::PROG_UPLINK_EGRESS, &syn);
    let sent = parse(&out);
    assert_eq!(sent.src.ip().to_string(), UPLINK);
    let error = icmp_error(ROUTER, UPLINK, TTL_EXCEEDED, 0, &out);
    let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &error);
    let e = parse_error(&out);
    assert_eq!(e.dst, CONTAINER.parse::<Ipv4Addr>().unwrap());
    assert_eq!(e.embedded.src.to_string(), "172.17.0.2:5555");
    assert_eq!(e.embedded.dst.to_string(), SERVER);
    assert_error_checksums(&e);

    // A ping's identifier is its port: traceroute by ICMP finds its way back too.
    let ping = icmp_echo(CONTAINER, "198.51.100.7", 77, false);
    let (_, out) = l.run(maps::PROG_UPLINK_EGRESS, &ping);
    let error = icmp_error(ROUTER, UPLINK, TTL_EXCEEDED, 0, &out);
    let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &error);
    let e = parse_error(&out);
    assert!(e.icmp_checksum_ok, "{e:?}");
    let (src, dst, id, ok) = parse_icmp(&e.inner);
    assert_eq!(
        (src.to_string(), dst.to_string(), id),
        (CONTAINER.into(), "198.51.100.7".into(), 77)
    );
    assert!(ok, "embedded echo checksums");
}

#[test]
fn errors_the_host_sends_about_packets_it_got_translated_are_translated_on_the_way_out() {
    let Some(mut l) =
        lab("errors_the_host_sends_about_packets_it_got_translated_are_translated_on_the_way_out")
    else {
        return;
    };
    publish(&mut l, 6, 8080, 80);
    let (_, translated) = l.run(
        maps::PROG_UPLINK_INGRESS,
        &Builder::tcp(CLIENT, "10.9.0.1:8080", SYN).build(),
    );
    // The stack, handed the translated packet, found its TTL spent.
    let error = icmp_error(HOST, "192.0.2.9", TTL_EXCEEDED, 0, &translated);
    let (verdict, out) = l.run(maps::PROG_UPLINK_EGRESS, &error);
    assert_eq!(verdict, CONTINUE);
    let e = parse_error(&out);
    assert_eq!(
        (e.src, e.dst),
        (HOST.parse().unwrap(), "192.0.2.9".parse().unwrap())
    );
    assert_eq!(e.embedded.src.to_string(), CLIENT);
    assert_eq!(e.embedded.dst.to_string(), "10.9.0.1:8080");
    assert_error_checksums(&e);
}

#[test]
fn errors_about_connections_netd_did_not_translate_are_untouched() {
    let Some(mut l) = lab("errors_about_connections_netd_did_not_translate_are_untouched") else {
        return;
    };
    let someone = Builder::tcp("10.9.0.1:22", CLIENT, SYN | ACK).build();
    let from_router = icmp_error(ROUTER, HOST, FRAG_NEEDED, 1280, &someone);
    let from_host = icmp_error(HOST, "192.0.2.9", TTL_EXCEEDED, 0, &someone);
    for (program, frame) in [
        (maps::PROG_UPLINK_INGRESS, &from_router),
        (maps::PROG_UPLINK_EGRESS, &from_host),
    ] {
        let (verdict, out) = l.run(program, frame);
        assert_eq!((verdict, &out), (CONTINUE, frame), "{program}");
    }
}

#[test]
fn redirected_packets_lose_a_ttl_and_spent_or_oversized_ones_go_to_the_stack() {
    let Some(mut l) =
        lab("redirected_packets_lose_a_ttl_and_spent_or_oversized_ones_go_to_the_stack")
    else {
        return;
    };
    routes_for_the_fib();
    publish(&mut l, 6, 8080, 80);
    let syn = Builder::tcp(CLIENT, "10.9.0.1:8080", SYN).build();
    let (verdict, out) = l.run(maps::PROG_UPLINK_INGRESS, &syn);
    assert_eq!(verdict, REDIRECT);
    let p = parse(&out);
    assert_eq!((p.dst.to_string(), out[22]), ("172.17.0.2:80".into(), 63));
    assert!(p.ip_checksum_ok && p.l4_checksum_ok, "{p:?}");

    // The container's reply with its TTL spent: to the stack as it was sent, so that the
    // stack's "time exceeded" names the container's own packet.
    let mut reply = Builder::tcp("172.17.0.2:80", CLIENT, SYN | ACK).build();
    set_ttl(&mut reply, 1);
    let (verdict, out) = l.run(maps::PROG_PORT_INGRESS, &reply);
    assert_eq!((verdict, &out), (CONTINUE, &reply));
    // From outside, spent: translated, for the stack to answer (its error is translated
    // back on the way out, see above).
    let mut spent = Builder::tcp(CLIENT, "10.9.0.1:8080", ACK).build();
    set_ttl(&mut spent, 1);
    let (verdict, out) = l.run(maps::PROG_UPLINK_INGRESS, &spent);
    assert_eq!(verdict, CONTINUE);
    assert_eq!(
        (parse(&out).dst.to_string(), out[22]),
        ("172.17.0.2:80".into(), 1)
    );

    // Bigger than the uplink's MTU and not GSO: to the stack as sent, which answers
    // "fragmentation needed" to the container (or fragments it).
    assert!(std::process::Command::new("ip")
        .args(["link", "set", "nup0", "mtu", "1280"])
        .status()
        .unwrap()
        .success());
    let mut big = Builder::tcp("172.17.0.2:80", CLIENT, ACK);
    big.payload = vec![7; 1400];
    let big = big.build();
    let (verdict, out) = l.run(maps::PROG_PORT_INGRESS, &big);
    assert_eq!((verdict, &out), (CONTINUE, &big));
    let mut small = Builder::tcp("172.17.0.2:80", CLIENT, ACK);
    small.payload = vec![7; 1000];
    let (verdict, out) = l.run(maps::PROG_PORT_INGRESS, &small.build());
    assert_eq!(verdict, REDIRECT);
    assert_eq!(parse(&out).src.to_string(), "10.9.0.1:8080");
}

#[test]
fn nothing_leaves_a_masqueraded_network_with_its_private_address() {
    let Some(mut l) = lab("nothing_leaves_a_masqueraded_network_with_its_private_address") else {
        return;
    };
    let mut gre = Builder::udp("172.17.0.2:1", "198.51.100.7:1").build();
    gre[23] = 47;
    // A later fragment whose first fragment was not seen.
    let mut fragment = Builder::udp("172.17.0.2:5000", "198.51.100.7:53");
    fragment.frag = 0x2000 | 185;
    let cases = [
        ("GRE", gre),
        ("a fragment", fragment.build()),
        (
            "a TCP segment of no connection",
            Builder::tcp("172.17.0.2:5555", SERVER, ACK).build(),
        ),
        (
            "an ICMP error about no connection",
            icmp_error(
                CONTAINER,
                "198.51.100.7",
                PORT_UNREACHABLE,
                0,
                &Builder::udp(SERVER, "172.17.0.2:9").build(),
            ),
        ),
    ];
    for (what, frame) in &cases {
        let (verdict, _) = l.run(maps::PROG_UPLINK_EGRESS, frame);
        assert_eq!(verdict, SHOT, "{what}");
    }
    assert_eq!(l.drops("untranslatable"), cases.len() as u64);
    // Not from a masqueraded network: none of netd's business.
    let mut other = Builder::udp("172.18.0.2:1", "198.51.100.7:1").build();
    other[23] = 47;
    let (verdict, out) = l.run(maps::PROG_UPLINK_EGRESS, &other);
    assert_eq!((verdict, &out), (CONTINUE, &other));
}
