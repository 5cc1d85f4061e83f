//! Masquerade: connections from container subnets leaving through an uplink take the uplink's
//! address and a source port that no other connection to the same destination uses.

use aya_ebpf::{
    bindings::{bpf_sock_tuple, bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1},
    helpers::{
        bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_sk_lookup_udp, bpf_sk_release,
        bpf_skc_lookup_tcp,
    },
    maps::lpm_trie::Key,
    programs::TcContext,
};
use netd_common::nat::{
    ct_ticks, tcp_next, CtEntry, CtKey, TcpState, CT_FLAG_REPLY, CT_FLAG_SNAT, PROTO_TCP,
    PROTO_UDP, SNAT_PORT_MAX, SNAT_PORT_MIN, SNAT_TRIES, TCP_FLAG_ACK, TCP_FLAG_SYN,
};

use crate::{
    conntrack::{self, Table},
    maps::{CONNTRACK, CT_NEW, MASQ_SUBNETS, UPLINKS},
    parse::L4Packet,
};

pub enum Masquerade {
    /// Not a container's connection leaving through an uplink.
    NotApplicable,
    Translated(CtEntry),
    /// Every candidate source port was taken.
    Exhausted,
    /// A container's packet leaving through an uplink that opens no connection (a TCP
    /// segment other than a SYN, with no entry): sent as it is, it would carry the
    /// container's private address out.
    Untranslatable,
}

/// Whether `saddr_be` is a container address that leaves `ifindex` masqueraded.
#[inline(always)]
pub fn is_masqueraded(saddr_be: u32, ifindex: u32) -> bool {
    // SAFETY: read-only lookups of plain values.
    match unsafe { UPLINKS.get(ifindex) } {
        Some(uplink) => {
            saddr_be != uplink.addr_be && MASQ_SUBNETS.get(Key::new(32, saddr_be)).is_some()
        }
        None => false,
    }
}

/// Whether a socket of the host would take packets from `remote` to `local`: an established
/// (or closing) TCP connection with that tuple or a TCP listener on the port, a connected or
/// bound UDP socket. A masqueraded connection on that tuple would take its replies.
#[inline(always)]
fn host_socket_at(ctx: &TcContext, proto: u8, remote: (u32, u16), local: (u32, u16)) -> bool {
    // SAFETY: an all-zero tuple is valid; the IPv4 half is filled in below.
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    tuple.__bindgen_anon_1.ipv4 = bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1 {
        saddr: remote.0,
        daddr: local.0,
        sport: remote.1,
        dport: local.1,
    };
    let size = core::mem::size_of::<bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1>() as u32;
    let skb = ctx.skb.skb.cast();
    // SAFETY: helper calls with a valid tuple of the size given; a socket found is released.
    unsafe {
        let sk = match proto {
            PROTO_TCP => bpf_skc_lookup_tcp(skb, &mut tuple, size, CURRENT_NETNS, 0),
            PROTO_UDP => bpf_sk_lookup_udp(skb, &mut tuple, size, CURRENT_NETNS, 0),
            _ => return false,
        };
        if sk.is_null() {
            return false;
        }
        bpf_sk_release(sk.cast());
    }
    true
}

/// BPF_F_CURRENT_NETNS: the namespace of the packet's device.
const CURRENT_NETNS: u64 = u64::MAX;

#[inline(always)]
pub fn masquerade(ctx: &TcContext, p: &L4Packet, ifindex: u32) -> Masquerade {
    // SAFETY: read-only lookups of plain values.
    let Some(uplink) = (unsafe { UPLINKS.get(ifindex) }) else {
        return Masquerade::NotApplicable;
    };
    let uplink_be = uplink.addr_be;
    let host = p.saddr_be == uplink_be;
    if host {
        if !tuple_held_by_masquerade(p) {
            return Masquerade::NotApplicable;
        }
    } else if MASQ_SUBNETS.get(Key::new(32, p.saddr_be)).is_none() {
        return Masquerade::NotApplicable;
    } else if p.proto == PROTO_TCP && !opens(p) {
        // Only a SYN opens a TCP connection. Replies of connections from outside come from
        // routed networks, which are not masqueraded.
        return Masquerade::Untranslatable;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    let original = p.key();
    let mut forward = CtEntry {
        last_seen_ns: now,
        new_saddr_be: uplink_be,
        new_daddr_be: p.daddr_be,
        new_sport_be: p.sport_be,
        new_dport_be: p.dport_be,
        flags: CT_FLAG_SNAT,
        tcp_state: tcp_next(TcpState::None, p.tcp_flags, false) as u8,
        opened_ticks: ct_ticks(now),
    };
    let reply = CtEntry {
        new_saddr_be: p.daddr_be,
        new_daddr_be: p.saddr_be,
        new_sport_be: p.dport_be,
        new_dport_be: p.sport_be,
        flags: CT_FLAG_SNAT | CT_FLAG_REPLY,
        ..forward
    };
    let span = u32::from(SNAT_PORT_MAX - SNAT_PORT_MIN) + 1;
    for attempt in 0..SNAT_TRIES {
        // Keep the container's own port when it is free, as Linux's masquerade does.
        let port = if attempt == 0 {
            p.sport_be
        } else {
            let r = unsafe { bpf_get_prandom_u32() } % span;
            (SNAT_PORT_MIN + r as u16).to_be()
        };
        // A host socket's tuple is not ours to take: its replies would go to the container.
        if host_socket_at(ctx, p.proto, (p.daddr_be, p.dport_be), (uplink_be, port)) {
            continue;
        }
        let reply_key = CtKey {
            saddr_be: p.daddr_be,
            daddr_be: uplink_be,
            sport_be: p.dport_be,
            dport_be: port,
            proto: p.proto,
            _pad: [0; 3],
        };
        // An answered connection holds this tuple in the main table.
        if CONNTRACK.get_ptr(reply_key).is_some() {
            continue;
        }
        // NOEXIST claims the port atomically against other CPUs, in the pending table (the
        // connection moves to the main one with its first reply).
        if Table::Pending.add(&reply_key, &reply) {
            forward.new_sport_be = port;
            // NOEXIST again: another CPU's first packet of this flow may have claimed another
            // port meanwhile. Its translation is the connection's; ours is given back.
            if !Table::Pending.add(&original, &forward) {
                Table::Pending.remove(&reply_key);
                // SAFETY: read-only lookup of a plain value.
                return match unsafe { CT_NEW.get(original) } {
                    Some(winner) => Masquerade::Translated(*winner),
                    None => exhausted(host),
                };
            }
            conntrack::count(false);
            return Masquerade::Translated(forward);
        }
    }
    exhausted(host)
}

/// No port was free: a container's packet is dropped, the host's goes as it is (its
/// replies may then reach the container that holds the tuple, as before netd knew).
#[inline(always)]
fn exhausted(host: bool) -> Masquerade {
    if host {
        Masquerade::NotApplicable
    } else {
        Masquerade::Exhausted
    }
}

#[inline(always)]
fn opens(p: &L4Packet) -> bool {
    p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) == TCP_FLAG_SYN
}

/// Whether a host socket's new flow `p` leaves on a tuple that a masqueraded connection
/// holds. The kernel picks a socket's port knowing nothing of masquerade's, so the replies
/// of one would reach the other. The host's flow then takes a source port of its own, as
/// Linux's NAT gives a local connection a tuple no other connection has.
#[inline(always)]
fn tuple_held_by_masquerade(p: &L4Packet) -> bool {
    let new_flow = match p.proto {
        PROTO_TCP => opens(p),
        PROTO_UDP => true,
        _ => false,
    };
    new_flow
        && conntrack::peek(p.key().reversed()).is_some_and(|e| {
            e.flags & (CT_FLAG_SNAT | CT_FLAG_REPLY) == CT_FLAG_SNAT | CT_FLAG_REPLY
        })
}
