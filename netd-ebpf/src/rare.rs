//! Packets the entry points' fast path leaves to the stack as they are: ICMP errors (see
//! `icmp`) and fragments after the first (see `fragments`). Rare, and each hook gives them a
//! subprogram of their own that returns a plain scalar: inlined, their values crowded the
//! entry points' registers, and LLVM spilled undefined ones, which the verifier refuses.

use aya_ebpf::programs::TcContext;
use netd_common::{
    isolation::{DIR_FROM_CONTAINER, DIR_TO_CONTAINER, ETH_P_IP},
    nat::PROTO_ICMP,
};

use crate::{
    fragments, icmp,
    isolation::{self, Seen, Sent, UNTOUCHED},
    parse::{self, Ipv4, ETH_HLEN},
};

/// Whether the frame is IPv4 and ICMP or a fragment after the first: the entry points' test
/// before they call the subprograms below.
#[inline(always)]
pub fn worth_a_look(ctx: &TcContext) -> bool {
    if parse::at::<u16>(ctx, 12).map(u16::from_be) != Some(ETH_P_IP) {
        return false;
    }
    let Some(h) = parse::at::<[u8; 10]>(ctx, ETH_HLEN) else {
        return false;
    };
    h[9] == PROTO_ICMP || u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0
}

#[inline(always)]
fn handle(ctx: &TcContext, ip: &Ipv4, seen: &Seen) -> i32 {
    if ip.frag_offset != 0 {
        fragments::translate(ctx, ip, seen)
    } else {
        icmp::translate(ctx, ip, seen)
    }
}

/// What a container sends, once the sender checks passed: a refused sender is left to the
/// entry point, which counts the drop.
#[inline(never)]
pub fn from_container(ctx: &TcContext) -> i32 {
    let Ok(port) = isolation::port(ctx) else {
        return UNTOUCHED;
    };
    let Ok(Sent::Ipv4(ip)) = isolation::check_sender(ctx, &port) else {
        return UNTOUCHED;
    };
    let seen = Seen {
        network: port.ep.network,
        direction: DIR_FROM_CONTAINER,
        send_on: true,
    };
    handle(ctx, &ip, &seen)
}

/// What arrives on an uplink.
#[inline(never)]
pub fn from_outside(ctx: &TcContext) -> i32 {
    let Some(ip) = parse::ipv4(ctx) else {
        return UNTOUCHED;
    };
    let seen = Seen {
        network: isolation::network_of(ip.daddr_be).unwrap_or(0),
        direction: DIR_TO_CONTAINER,
        send_on: true,
    };
    handle(ctx, &ip, &seen)
}

/// What leaves through an uplink (the host's own ICMP errors, masqueraded fragments): already
/// on its way, only rewritten.
#[inline(never)]
pub fn to_outside(ctx: &TcContext) -> i32 {
    let Some(ip) = parse::ipv4(ctx) else {
        return UNTOUCHED;
    };
    let seen = Seen {
        network: isolation::network_of(ip.saddr_be).unwrap_or(0),
        direction: DIR_FROM_CONTAINER,
        send_on: false,
    };
    handle(ctx, &ip, &seen)
}
