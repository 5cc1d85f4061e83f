extern crate std;
use std::vec::Vec;

use super::*;

fn sum(data: &[u8]) -> u16 {
    let mut s: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn key(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, proto: u8) -> CtKey {
    CtKey {
        saddr_be: u32::from_ne_bytes(src),
        daddr_be: u32::from_ne_bytes(dst),
        sport_be: sport.to_be(),
        dport_be: dport.to_be(),
        proto,
        _pad: [0; 3],
    }
}

/// A whole packet (IPv4 header, then a TCP header, a UDP header or an echo request with no
/// payload) with correct checksums, for the tuple `k`.
fn packet(k: &CtKey) -> Vec<u8> {
    let l4_len: usize = if k.proto == PROTO_TCP { 20 } else { 8 };
    let mut p = std::vec![0u8; 20 + l4_len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = k.proto;
    p[12..16].copy_from_slice(&k.saddr_be.to_ne_bytes());
    p[16..20].copy_from_slice(&k.daddr_be.to_ne_bytes());
    let ip = sum(&p[..20]);
    p[10..12].copy_from_slice(&ip.to_be_bytes());
    if k.proto == PROTO_ICMP {
        p[20] = ICMP_ECHO_REQUEST;
        p[24..26].copy_from_slice(&k.sport_be.to_ne_bytes());
        p[26..28].copy_from_slice(&[0, 7]);
        let c = sum(&p[20..]);
        p[22..24].copy_from_slice(&c.to_be_bytes());
        return p;
    }
    p[20..22].copy_from_slice(&k.sport_be.to_ne_bytes());
    p[22..24].copy_from_slice(&k.dport_be.to_ne_bytes());
    if k.proto == PROTO_TCP {
        p[32] = 0x50;
    } else {
        p[24..26].copy_from_slice(&8u16.to_be_bytes());
    }
    let c = sum(&[&pseudo(&p), &p[20..]].concat());
    let at = if k.proto == PROTO_TCP { 36 } else { 26 };
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
    p
}

fn pseudo(p: &[u8]) -> Vec<u8> {
    let mut h = p[12..20].to_vec();
    h.extend_from_slice(&[0, p[9]]);
    h.extend_from_slice(&((p.len() - 20) as u16).to_be_bytes());
    h
}

/// An error of type 3 code 4 (fragmentation needed, next hop MTU 1280) about `inner`: its
/// ICMP message, checksum included.
fn error_about(inner: &[u8]) -> Vec<u8> {
    let mut m = std::vec![ICMP_DEST_UNREACH, 4, 0, 0, 0, 0, 0x05, 0x00];
    m.extend_from_slice(inner);
    let c = sum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// Rewrites the error's embedded packet to `to` as the programs do, in place.
fn translate(message: &mut [u8], to: &CtKey) {
    let old: [u8; EMBEDDED_LEN] = message[8..36].try_into().unwrap();
    let tcp = match message.get(8 + 36..8 + 38) {
        Some(c) if message[8 + 9] == PROTO_TCP => TcpCsum {
            present: true,
            value: [c[0], c[1]],
        },
        _ => TcpCsum {
            present: false,
            value: [0, 0],
        },
    };
    let r = rewrite_embedded(&old, tcp, [message[2], message[3]], to);
    message[8..36].copy_from_slice(&r.header);
    if r.tcp_csum.present {
        message[8 + 36..8 + 38].copy_from_slice(&r.tcp_csum.value);
    }
    message[2..4].copy_from_slice(&r.icmp_csum);
}

/// Every checksum of a message holds: the error's, the embedded IP header's and the
/// embedded L4 header's (the whole embedded packet is there).
fn assert_checksums(message: &[u8]) {
    assert_eq!(sum(message), 0, "ICMP checksum");
    let inner = &message[8..];
    assert_eq!(sum(&inner[..20]), 0, "embedded IP checksum");
    let l4 = if inner[9] == PROTO_ICMP {
        sum(&inner[20..])
    } else {
        sum(&[&pseudo(inner), &inner[20..]].concat())
    };
    assert_eq!(l4, 0, "embedded L4 checksum");
}

#[test]
fn every_checksum_holds_after_the_rewrite() {
    for proto in [PROTO_TCP, PROTO_UDP, PROTO_ICMP] {
        let (sport, dport) = if proto == PROTO_ICMP {
            (77, 0)
        } else {
            (8080, 40000)
        };
        let sent = key([10, 9, 0, 1], sport, [192, 0, 2, 9], dport, proto);
        let mut m = error_about(&packet(&sent));
        assert_eq!(embedded_tuple(m[8..36].try_into().unwrap()), Some(sent));
        let (nsport, ndport) = if proto == PROTO_ICMP {
            (5, 0)
        } else {
            (80, 40000)
        };
        let to = key([172, 17, 0, 2], nsport, [192, 0, 2, 9], ndport, proto);
        translate(&mut m, &to);
        assert_checksums(&m);
        assert_eq!(embedded_tuple(m[8..36].try_into().unwrap()), Some(to));
        // What is past the embedded ports stays: the MTU in the header, the TTL inside.
        assert_eq!(&m[4..8], &[0, 0, 0x05, 0x00]);
        assert_eq!(m[8 + 8], 64);
    }
}

#[test]
fn a_udp_checksum_of_none_stays_none() {
    let sent = key([10, 9, 0, 1], 53, [192, 0, 2, 9], 40000, PROTO_UDP);
    let mut inner = packet(&sent);
    inner[26..28].copy_from_slice(&[0, 0]);
    let mut m = error_about(&inner);
    translate(
        &mut m,
        &key([172, 17, 0, 2], 53, [192, 0, 2, 9], 40000, PROTO_UDP),
    );
    assert_eq!(&m[8 + 26..8 + 28], &[0, 0]);
    assert_eq!(sum(&m), 0, "ICMP checksum");
}

#[test]
fn a_tcp_error_with_only_the_ports_keeps_a_valid_icmp_checksum() {
    let sent = key([10, 9, 0, 1], 8080, [192, 0, 2, 9], 40000, PROTO_TCP);
    // Only the 8 bytes an error must carry.
    let mut m = error_about(&packet(&sent)[..28]);
    translate(
        &mut m,
        &key([172, 17, 0, 2], 80, [192, 0, 2, 9], 40000, PROTO_TCP),
    );
    assert_eq!(sum(&m), 0, "ICMP checksum");
    assert_eq!(sum(&m[8..28]), 0, "embedded IP checksum");
}

#[test]
fn only_errors_about_first_fragments_of_known_protocols_have_a_tuple() {
    let sent = key([10, 9, 0, 1], 8080, [192, 0, 2, 9], 40000, PROTO_UDP);
    let whole: [u8; EMBEDDED_LEN] = packet(&sent).try_into().unwrap();
    let mut later_fragment = whole;
    later_fragment[7] = 1;
    let mut options = whole;
    options[0] = 0x46;
    let mut gre = whole;
    gre[9] = 47;
    for h in [later_fragment, options, gre] {
        assert_eq!(embedded_tuple(&h), None);
    }
    let mut first_fragment = whole;
    first_fragment[6] = 0x20;
    assert_eq!(embedded_tuple(&first_fragment), Some(sent));
    assert!(is_error(3) && is_error(11) && is_error(12));
    assert!(!is_error(ICMP_ECHO_REQUEST) && !is_error(ICMP_ECHO_REPLY) && !is_error(5));
}

#[test]
fn the_error_goes_to_the_embedded_sender_and_a_peer_keeps_its_role() {
    let router = u32::from_ne_bytes([203, 0, 113, 1]);
    let sent = key([10, 9, 0, 1], 8080, [192, 0, 2, 9], 40000, PROTO_TCP);
    let to = key([172, 17, 0, 2], 80, [192, 0, 2, 9], 40000, PROTO_TCP);
    // A router on the path: its address stays.
    assert_eq!(outer_addresses(router, &sent, &to), (router, to.saddr_be));
    // The peer itself: it becomes the destination the receiver used.
    let from_container = key([172, 17, 0, 2], 80, [192, 0, 2, 9], 40000, PROTO_UDP);
    let as_sent = key([10, 9, 0, 1], 8080, [192, 0, 2, 9], 40000, PROTO_UDP);
    let peer = from_container.daddr_be;
    assert_eq!(
        outer_addresses(peer, &from_container, &as_sent),
        (as_sent.daddr_be, as_sent.saddr_be)
    );
}

#[test]
fn replace_matches_a_checksum_computed_from_scratch() {
    let mut data =
        std::vec![0x45u8, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
    let c = sum(&data);
    let old = data.clone();
    data[12..16].copy_from_slice(&[255, 255, 255, 254]);
    assert_eq!(
        replace(c.to_be_bytes(), &old, &data),
        sum(&data).to_be_bytes()
    );
}
