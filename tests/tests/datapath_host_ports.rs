//! Tier 2: host sockets keep their tuples: one bound to a published UDP port's number keeps
//! its replies, and masquerade never gives a container a host socket's tuple. Run by
//! BPF_PROG_TEST_RUN on crafted frames in a private network namespace of the test's thread.

use integration_tests::{
    packet::{parse, Builder, SYN},
    privileged,
    testrun::{routes_for_the_fib, Programs, CONTINUE},
};
use netd::datapath::nat::Publication;
use netd_common::{isolation::NET_ROUTED, maps};

#[test]
fn a_host_sockets_flow_from_a_published_port_number_keeps_its_replies() {
    if !privileged("a_host_sockets_flow_from_a_published_port_number_keeps_its_replies") {
        return;
    }
    let mut l = Programs::in_private_netns("netd-hostport").with_container_port(NET_ROUTED);
    l.dp.set_local_addrs(&["10.99.0.1".parse().unwrap()])
        .unwrap();
    l.dp.set_uplink(1, "10.99.0.1".parse().unwrap()).unwrap();
    l.dp.set_masq_subnets(&["172.17.0.0/16".parse().unwrap()])
        .unwrap();
    let dns = Publication {
        proto: 17,
        host_ip: "0.0.0.0".parse().unwrap(),
        host_port: 5353,
        target_ip: "172.17.0.2".parse().unwrap(),
        target_port: 53,
    };
    l.dp.publish(&[dns]).unwrap();
    // The host's own query, from 5353, and its answer: neither is translated.
    let query = Builder::udp("10.99.0.1:5353", "198.51.100.7:53").build();
    let (verdict, out) = l.run(maps::PROG_UPLINK_EGRESS, &query);
    assert_eq!((verdict, &out), (CONTINUE, &query));
    let answer = Builder::udp("198.51.100.7:53", "10.99.0.1:5353").build();
    let (verdict, out) = l.run(maps::PROG_UPLINK_INGRESS, &answer);
    assert_eq!(
        (verdict, &out),
        (CONTINUE, &answer),
        "the host socket's answer"
    );
    let (_, out) = l.run(maps::PROG_UPLINK_EGRESS, &query);
    assert_eq!(out, query, "and its next query");
    // Anyone else reaching the published port reaches the container, and its replies,
    // translated at its port, leave as the published port's without taking the flow.
    let client = Builder::udp("192.0.2.9:40000", "10.99.0.1:5353").build();
    for _ in 0..2 {
        let (_, out) = l.run(maps::PROG_UPLINK_INGRESS, &client);
        assert_eq!(parse(&out).dst.to_string(), "172.17.0.2:53");
        let reply = Builder::udp("172.17.0.2:53", "192.0.2.9:40000").build();
        let (_, out) = l.run(maps::PROG_PORT_INGRESS, &reply);
        assert_eq!(parse(&out).src.to_string(), "10.99.0.1:5353");
        let (verdict, sent) = l.run(maps::PROG_UPLINK_EGRESS, &out);
        assert_eq!((verdict, &sent), (CONTINUE, &out));
    }
}

#[test]
fn masquerade_never_takes_a_host_sockets_tuple() {
    if !privileged("masquerade_never_takes_a_host_sockets_tuple") {
        return;
    }
    let mut l = Programs::in_private_netns("netd-hostsk").with_container_port(NET_ROUTED);
    // 10.9.0.1 is this namespace's own address (the uplink's), with a default route.
    routes_for_the_fib();
    l.dp.set_uplink(1, "10.9.0.1".parse().unwrap()).unwrap();
    l.dp.set_masq_subnets(&["172.17.0.0/16".parse().unwrap()])
        .unwrap();
    // Host sockets of this thread's namespace: a UDP client of 198.51.100.7:53 on port 5555,
    // and a TCP listener on 6666.
    let udp = std::net::UdpSocket::bind("10.9.0.1:5555").unwrap();
    udp.connect("198.51.100.7:53").unwrap();
    let _tcp = std::net::TcpListener::bind("10.9.0.1:6666").unwrap();
    let mut source = |frame: Vec<u8>| {
        let (verdict, out) = l.run(maps::PROG_UPLINK_EGRESS, &frame);
        assert_eq!(verdict, CONTINUE);
        parse(&out).src
    };
    // A container's flow from the same ports would keep them, as masquerade does when free.
    let taken = source(Builder::udp("172.17.0.2:5555", "198.51.100.7:53").build());
    assert_eq!(taken.ip().to_string(), "10.9.0.1");
    assert_ne!(taken.port(), 5555, "the host socket's tuple");
    let listener = source(Builder::tcp("172.17.0.2:6666", "198.51.100.7:80", SYN).build());
    assert_ne!(listener.port(), 6666, "the host listener's port");
    // Free: kept.
    let free = source(Builder::udp("172.17.0.2:5556", "198.51.100.7:53").build());
    assert_eq!(free.port(), 5556);
    drop(udp);
}

#[test]
fn a_host_flow_on_a_masqueraded_tuple_takes_a_port_of_its_own() {
    if !privileged("a_host_flow_on_a_masqueraded_tuple_takes_a_port_of_its_own") {
        return;
    }
    let mut l = Programs::in_private_netns("netd-hostmasq").with_container_port(NET_ROUTED);
    // 10.9.0.1 is this namespace's own address (the uplink's): replies to it are the stack's.
    routes_for_the_fib();
    l.dp.set_uplink(1, "10.9.0.1".parse().unwrap()).unwrap();
    l.dp.set_masq_subnets(&["172.17.0.0/16".parse().unwrap()])
        .unwrap();
    for (proto, first) in [
        (
            "udp",
            Builder::udp("172.17.0.2:45000", "198.51.100.7:53").build(),
        ),
        (
            "tcp",
            Builder::tcp("172.17.0.2:45001", "198.51.100.7:80", SYN).build(),
        ),
    ] {
        let tcp = proto == "tcp";
        let frame = |src: &str, dst: &str| {
            if tcp {
                Builder::tcp(src, dst, SYN).build()
            } else {
                Builder::udp(src, dst).build()
            }
        };
        let (_, out) = l.run(maps::PROG_UPLINK_EGRESS, &first);
        let masqueraded = parse(&out).src;
        let server = parse(&out).dst.to_string();
        // The kernel gives a host socket the same port to the same server: it knows
        // nothing of masquerade's.
        let (verdict, out) = l.run(
            maps::PROG_UPLINK_EGRESS,
            &frame(&masqueraded.to_string(), &server),
        );
        assert_eq!(verdict, CONTINUE);
        let host = parse(&out).src;
        assert_eq!(
            host.ip(),
            masqueraded.ip(),
            "{proto}: the host's own address"
        );
        assert_ne!(
            host.port(),
            masqueraded.port(),
            "{proto}: a port of its own"
        );
        // Each side's replies reach their own socket.
        let (_, out) = l.run(
            maps::PROG_UPLINK_INGRESS,
            &frame(&server, &masqueraded.to_string()),
        );
        assert_eq!(
            parse(&out).dst,
            parse(&first).src,
            "{proto}: the container's reply"
        );
        let (verdict, out) = l.run(
            maps::PROG_UPLINK_INGRESS,
            &frame(&server, &host.to_string()),
        );
        assert_eq!(verdict, CONTINUE, "{proto}: the stack's");
        assert_eq!(parse(&out).dst, masqueraded, "{proto}: the host's reply");
        // The host flow's next packet keeps its port.
        let (_, out) = l.run(
            maps::PROG_UPLINK_EGRESS,
            &frame(&masqueraded.to_string(), &server),
        );
        assert_eq!(parse(&out).src, host, "{proto}: the same port again");
    }
    // A host flow on a tuple nobody holds goes as it is.
    let free = Builder::udp("10.9.0.1:45002", "198.51.100.7:53").build();
    let (_, out) = l.run(maps::PROG_UPLINK_EGRESS, &free);
    assert_eq!(out, free);
}
