//! Published ports: a new connection to a host address and published port is translated to
//! its container, and the container's replies back.

use netd_common::{
    isolation::{NetworkPolicy, NET_ICC_OFF},
    nat::{
        CtKey, PortKey, CT_FLAG_DNAT, CT_FLAG_HOST, PROTO_TCP, PROTO_UDP, TCP_FLAG_ACK,
        TCP_FLAG_SYN,
    },
};

use crate::{
    conntrack,
    maps::{LOCAL_ADDRS, PORTS},
    parse::L4Packet,
};

/// 127.0.0.0/8 in network byte order, as loaded from a packet.
#[inline(always)]
fn is_loopback(addr_be: u32) -> bool {
    addr_be.to_ne_bytes()[0] == 127
}

/// Records a host socket's UDP flow that leaves from a published port's number as a
/// connection of the host's own, untranslated: its replies arrive at the published port,
/// and without the entry they would be translated into the container. The kernel gives no
/// published port to a host socket as its ephemeral port (netd reserves them), so this is a
/// socket bound to the number explicitly.
#[inline(always)]
pub fn own_host_flow(p: &L4Packet) {
    if p.proto != PROTO_UDP {
        // TCP: only a SYN opens a published connection, and a reply is no SYN.
        return;
    }
    let mut key = PortKey {
        addr_be: p.saddr_be,
        port_be: p.sport_be,
        proto: p.proto,
        _pad: 0,
    };
    // SAFETY: read-only lookups of plain values.
    if unsafe { PORTS.get(key) }.is_none() {
        key.addr_be = 0;
        if unsafe { PORTS.get(key) }.is_none() {
            return;
        }
    }
    // A container's reply, translated at its port and sent out here: its connection is
    // the container's (the client's packets are its key).
    if conntrack::has(p.key().reversed()) {
        return;
    }
    // SAFETY: read-only lookup of a plain value.
    if unsafe { LOCAL_ADDRS.get(p.saddr_be) }.is_none() {
        return;
    }
    let _ = conntrack::create(p, &p.key(), CT_FLAG_HOST);
}

/// The translation of a new connection to a published port, recorded in conntrack; `None`
/// when `p` is not for one. Ports published on 127.0.0.1 never match here: packets for a
/// loopback address arriving from a network are an attack (moby#41872), not a client.
/// `client_net` is the network of a container client.
#[inline(always)]
pub fn publish(p: &L4Packet, client_net: Option<&NetworkPolicy>) -> Option<conntrack::Opened> {
    if is_loopback(p.daddr_be) {
        return None;
    }
    // Only a SYN opens a TCP connection; anything else without conntrack state (a reply to a
    // host socket whose port happens to be published, a stray ACK) is left alone.
    if p.proto == PROTO_TCP && p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) != TCP_FLAG_SYN {
        return None;
    }
    // SAFETY: read-only lookup of a plain value.
    unsafe { LOCAL_ADDRS.get(p.daddr_be) }?;
    let mut key = PortKey {
        addr_be: p.daddr_be,
        port_be: p.dport_be,
        proto: p.proto,
        _pad: 0,
    };
    // SAFETY: read-only lookups of plain values.
    let target = match unsafe { PORTS.get(key) } {
        Some(t) => *t,
        None => {
            key.addr_be = 0;
            *unsafe { PORTS.get(key) }?
        }
    };
    // A container reaching its own published port (hairpin): its reply would stay inside
    // it unless the source is a host address, the one it connected to. The same on an
    // icc=false network for a member's port: the gateway is the only peer a member may answer.
    let same_icc_off_net =
        client_net.is_some_and(|n| n.has(NET_ICC_OFF) && n.contains(target.addr_be));
    let saddr_be = if p.saddr_be == target.addr_be || same_icc_off_net {
        p.daddr_be
    } else {
        p.saddr_be
    };
    let to = CtKey {
        saddr_be,
        daddr_be: target.addr_be,
        sport_be: p.sport_be,
        dport_be: target.port_be,
        proto: p.proto,
        _pad: [0; 3],
    };
    Some(conntrack::create(p, &to, CT_FLAG_DNAT))
}
