//! The direct path between members of a network. Once a packet one container sends to
//! another on the same network passed every rule, it goes straight into the receiver's
//! namespace (`bpf_redirect_peer`): past the bridge, the bridge's netfilter hooks, a second
//! trip through the backlog queue and the receiver port's own programs, whose one job for it
//! (counting) is done here. Anything else (other MACs, broadcast, ARP, IPv6) is the bridge's.
//! Connections to a VIP or to a published port whose backend is a member of the client's
//! network take the same path once translated.

use aya_ebpf::{bindings::TC_ACT_REDIRECT, helpers::bpf_redirect_peer, programs::TcContext};
use netd_common::{
    counters::Direction,
    isolation::{delivers_directly, Member},
};

use crate::{counters, isolation::Port, maps::MEMBERS, parse};

/// The redirect of a packet for a member of the sender's network, counted on the member's
/// port; `None` for the bridge to switch it.
#[inline(always)]
pub fn to_member(ctx: &TcContext, port: &Port, daddr_be: u32) -> Option<i32> {
    // Members are inside the subnet and are not the gateway: one compare spares traffic to
    // the host and the outside a lookup.
    if !port.net.contains(daddr_be) || daddr_be == port.net.gateway_be {
        return None;
    }
    // SAFETY: read-only lookup of a plain value.
    let member = unsafe { MEMBERS.get(daddr_be) }?;
    // Read again rather than kept from the sender check: fewer live values keep the
    // verifier's view of the packet bounds intact.
    let dst_mac: [u8; 6] = parse::at(ctx, 0)?;
    if !delivers_directly(&port.ep, port.ifindex, member, &dst_mac) {
        return None;
    }
    hand_over(ctx, member)
}

/// The member a translated packet (of a VIP's or a published port's connection) goes to
/// when its new destination is another member of the sender's network; `None` for the FIB
/// and the bridge to deliver it (the outside, the host, another network).
#[inline(always)]
pub fn translated_member(port: &Port, daddr_be: u32) -> Option<&'static Member> {
    if !port.net.contains(daddr_be) {
        return None;
    }
    // SAFETY: read-only lookup of a plain value.
    let member = unsafe { MEMBERS.get(daddr_be) }?;
    if member.network != port.ep.network || member.port_ifindex == port.ifindex {
        return None;
    }
    Some(member)
}

/// The redirect of a translated packet to `member` (see [`translated_member`]): addressed as
/// the gateway would address it, and handed over like untranslated traffic between members.
#[inline(always)]
pub fn translated(ctx: &TcContext, port: &Port, member: &Member) -> Option<i32> {
    let macs = [member.mac, port.net.gateway_mac];
    ctx.store(0, &macs, 0).ok()?;
    hand_over(ctx, member)
}

#[inline(always)]
fn hand_over(ctx: &TcContext, member: &Member) -> Option<i32> {
    // SAFETY: a helper call with plain arguments; it only records where the packet goes.
    let action = unsafe { bpf_redirect_peer(member.port_ifindex, 0) } as i32;
    if action != TC_ACT_REDIRECT {
        return None;
    }
    counters::count_on(ctx, member.port_ifindex, Direction::Egress);
    Some(action)
}
