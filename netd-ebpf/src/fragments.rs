//! Fragmented UDP and ICMP datagrams: only the first fragment carries the ports (or the echo
//! identifier), so it records them under what the datagram's fragments share (addresses,
//! protocol, IP identification), and the later fragments are translated with the connection
//! those ports name: addresses only, the L4 checksum being in the first fragment. A later
//! fragment that comes before its first is not translated (as in cilium).

use aya_ebpf::{bindings::TC_ACT_UNSPEC, programs::TcContext};
use netd_common::{
    isolation::DIR_FROM_CONTAINER,
    nat::{FragKey, FragPorts, PROTO_ICMP, PROTO_UDP},
};

use crate::{
    conntrack,
    isolation::{Seen, UNTOUCHED},
    maps::FRAGMENTS,
    nat::{self, Hop},
    parse::{Ipv4, L4Packet},
};

#[inline(always)]
fn key(ip: &Ipv4) -> FragKey {
    FragKey {
        saddr_be: ip.saddr_be,
        daddr_be: ip.daddr_be,
        id_be: ip.id_be,
        proto: ip.proto,
        _pad: 0,
    }
}

/// A first fragment's ports, for the fragments after it.
#[inline(always)]
pub fn record(ip: &Ipv4, sport_be: u16, dport_be: u16) {
    let ports = FragPorts { sport_be, dport_be };
    // A full map evicts the oldest datagram's entry: its fragments are long gone.
    let _ = FRAGMENTS.insert(key(ip), ports, 0);
}

/// Rewrites a later fragment of a translated datagram with its connection's translation and
/// sends it on (see `icmp::translate` for `seen`): the program's action, or [`UNTOUCHED`].
#[inline(always)]
pub fn translate(ctx: &TcContext, ip: &Ipv4, seen: &Seen) -> i32 {
    if ip.proto != PROTO_UDP && ip.proto != PROTO_ICMP {
        return UNTOUCHED;
    }
    // SAFETY: read-only lookup of a plain value.
    let Some(ports) = (unsafe { FRAGMENTS.get(key(ip)) }).copied() else {
        return UNTOUCHED;
    };
    let p = L4Packet {
        l4_off: ip.l4_off(),
        proto: ip.proto,
        saddr_be: ip.saddr_be,
        daddr_be: ip.daddr_be,
        sport_be: ports.sport_be,
        dport_be: ports.dport_be,
        tcp_flags: 0,
        ttl: ip.ttl,
        later_fragment: true,
    };
    let Some(entry) = conntrack::lookup(&p) else {
        return UNTOUCHED;
    };
    let hop = if seen.send_on {
        nat::next_hop_of(ctx, &p, &entry)
    } else {
        Hop::Unrouted
    };
    // As its first fragment (see `translate` in main): a container's fragment the FIB will
    // not send on goes to the stack as it was sent.
    if seen.direction == DIR_FROM_CONTAINER && seen.send_on && matches!(hop, Hop::Stack) {
        return TC_ACT_UNSPEC;
    }
    if let Err(reason) = nat::rewrite(ctx, &p, &entry) {
        return seen.drop(ctx, reason);
    }
    if seen.send_on {
        nat::send(ctx, &hop, ip.ttl)
    } else {
        TC_ACT_UNSPEC
    }
}
