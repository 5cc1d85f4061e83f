#![no_std]
#![no_main]
// atomic_xadd: the round robin of virtual IPs advances a shared counter.
#![allow(internal_features)]
#![feature(core_intrinsics)]

//! Entry points of the datapath, one per attach point. Each concern lives in its own module;
//! every drop goes through `counters::drop`, once, with its reason.

mod arp;
mod conntrack;
mod counters;
mod deliver;
mod fragments;
mod icmp;
mod isolation;
mod lan;
mod maps;
mod masquerade;
mod monitor;
mod nat;
mod parse;
mod ports;
mod rare;
mod sockets;
mod vip;

use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    macros::{cgroup_sock_addr, classifier},
    programs::{SockAddrContext, TcContext},
};
use isolation::{Drop, Port, Sent};
use masquerade::Masquerade;
use nat::Hop;
use netd_common::{
    counters::Direction,
    isolation::{
        may_be_translated, DropReason, NetworkPolicy, DIR_FROM_CONTAINER, DIR_TO_CONTAINER,
        ETH_P_IP, NET_INTERNAL,
    },
    nat::{CT_FLAG_DNAT, CT_FLAG_HOST},
    vip::Vip,
};
use parse::L4Packet;

/// Continue: the stack (or the next program) handles the packet.
const PASS: i32 = TC_ACT_UNSPEC;

#[inline(always)]
fn verdict(ctx: &TcContext, result: Result<i32, Drop>) -> i32 {
    match result {
        Ok(action) => action,
        Err(drop) => counters::drop(ctx, &drop),
    }
}

/// An existing connection's translation, or a new connection to a VIP or a published port:
/// the packet is rewritten and sent on, and the action returned. `None` when none applies.
/// `from` is the port of a container client (`None` from outside): for published ports of
/// its own network, internal networks reach none, and a new destination on the client's own
/// network is reached directly.
#[inline(always)]
fn translate(
    ctx: &TcContext,
    p: &L4Packet,
    from: Option<&Port>,
    vip: Option<*mut Vip>,
) -> Result<Option<i32>, DropReason> {
    let client_net = from.map(|port| &port.net);
    let (entry, opened) = match conntrack::lookup(p) {
        Some(e) => (e, false),
        // A later fragment belongs to the connection its first fragment opened, or to none.
        None if p.later_fragment => return Ok(None),
        None => match open(p, client_net, vip)? {
            // Conntrack full even after LRU eviction: let the stack answer (it will refuse).
            Some(o) if o.full => return Ok(Some(PASS)),
            Some(o) => (o.entry, o.first),
            None => {
                conntrack::forget_stale_reply(p);
                return Ok(None);
            }
        },
    };
    // A host socket's own flow (see `ports::own_host_flow`): the stack's, as it is.
    if entry.flags & CT_FLAG_HOST != 0 {
        return Ok(Some(PASS));
    }
    counters::published(ctx, p, &entry, opened);
    if opened && entry.flags & CT_FLAG_DNAT != 0 {
        monitor::opened(ctx, p, &entry);
    }
    let member = from.and_then(|port| deliver::translated_member(port, entry.new_daddr_be));
    let hop = match member {
        Some(_) => Hop::Unrouted,
        None => nat::next_hop_of(ctx, p, &entry),
    };
    // A container's packet the FIB will not send on (too big for the way out, its TTL
    // spent) goes to the stack as the container sent it: the stack's ICMP error then names
    // the container's own packet, and what the stack sends on is translated on the uplink's
    // way out. From outside the stack gets it translated (a host address is nobody's to
    // answer for), and its errors are translated back on the uplink's way out.
    if from.is_some() && matches!(hop, Hop::Stack) {
        return Ok(Some(PASS));
    }
    nat::rewrite(ctx, p, &entry)?;
    if let (Some(port), Some(member)) = (from, member) {
        if let Some(action) = deliver::translated(ctx, port, member) {
            return Ok(Some(action));
        }
    }
    Ok(Some(nat::send(ctx, &hop, p.ttl)))
}

/// The translation of a connection conntrack does not know yet, if `p` opens one.
#[inline(always)]
fn open(
    p: &L4Packet,
    client_net: Option<&NetworkPolicy>,
    vip: Option<*mut Vip>,
) -> Result<Option<conntrack::Opened>, DropReason> {
    if let Some(vip) = vip {
        return vip::open(p, vip, client_net);
    }
    if client_net.is_some_and(|n| n.has(NET_INTERNAL)) {
        return Ok(None);
    }
    Ok(ports::publish(p, client_net))
}

/// What a container sends: checked against spoofing, translated when it belongs to a
/// translated connection (published ports stay reachable from every network), else held to
/// its network's rules.
// A subprogram: its stack and the ICMP errors' are never on the stack at once.
#[inline(never)]
fn from_container(ctx: &TcContext) -> Result<i32, Drop> {
    let port = isolation::port(ctx)?;
    let ip = match isolation::check_sender(ctx, &port)? {
        Sent::Ipv4(ip) => ip,
        Sent::ArpForVip(req) => return Ok(arp::answer(ctx, &port, &req).unwrap_or(PASS)),
        Sent::Other => return Ok(PASS),
    };
    let l4 = parse::l4(ctx, &ip);
    let vip = vip::of_network(&port.net, port.ep.network, ip.daddr_be);
    if vip.is_some() || may_be_translated(&port.ep, &port.net, ip.daddr_be) {
        if let Some(p) = &l4 {
            let translated = translate(ctx, p, Some(&port), vip).map_err(|r| port.drop(r))?;
            if let Some(action) = translated {
                return Ok(action);
            }
        }
    }
    isolation::check_destination(&port, &ip, l4.as_ref())?;
    Ok(deliver::to_member(ctx, &port, ip.daddr_be).unwrap_or(PASS))
}

/// Ingress of a bridge port: what a container sends.
#[classifier]
pub fn netd_port_ingress(ctx: TcContext) -> i32 {
    counters::count(&ctx, Direction::Ingress);
    parse::linearize(&ctx);
    if rare::worth_a_look(&ctx) {
        let action = rare::from_container(&ctx);
        if action != isolation::UNTOUCHED {
            return action;
        }
    }
    verdict(&ctx, from_container(&ctx))
}

/// Egress of a bridge port: what is delivered to a container.
#[classifier]
pub fn netd_port_egress(ctx: TcContext) -> i32 {
    counters::count(&ctx, Direction::Egress);
    parse::linearize(&ctx);
    verdict(&ctx, isolation::check_foreign_source(&ctx).map(|()| PASS))
}

/// Egress of a container's macvlan, in its namespace: what the container sends onto the LAN.
#[classifier]
pub fn netd_lan_egress(ctx: TcContext) -> i32 {
    // From the container, as a bridge port's ingress counts it.
    counters::count(&ctx, Direction::Ingress);
    parse::linearize(&ctx);
    verdict(&ctx, lan::from_container(&ctx).map(|()| PASS))
}

/// Ingress of a container's macvlan: what reaches the container from the LAN.
#[classifier]
pub fn netd_lan_ingress(ctx: TcContext) -> i32 {
    counters::count(&ctx, Direction::Egress);
    PASS
}

/// What arrives on an uplink: clients of published ports and replies to masqueraded
/// connections are translated; nothing else reaches a container address unless its network
/// is routed.
// A subprogram: its stack and the ICMP errors' are never on the stack at once.
#[inline(never)]
fn from_outside(ctx: &TcContext) -> Result<i32, Drop> {
    if parse::at::<u16>(ctx, 12).map(u16::from_be) != Some(ETH_P_IP) {
        return Ok(PASS);
    }
    // Not readable as IPv4: the stack drops it, and it reaches no container.
    let Some(ip) = parse::ipv4(ctx) else {
        return Ok(PASS);
    };
    if let Some(p) = parse::l4(ctx, &ip) {
        let translated = translate(ctx, &p, None, None)
            .map_err(|r| outside_drop(r, isolation::network_of(ip.daddr_be).unwrap_or(0)))?;
        if let Some(action) = translated {
            return Ok(action);
        }
    }
    isolation::check_outside_destination(ip.daddr_be)?;
    Ok(PASS)
}

fn outside_drop(reason: DropReason, network: u32) -> Drop {
    Drop {
        reason,
        network,
        direction: DIR_TO_CONTAINER,
    }
}

/// Ingress of an uplink.
#[classifier]
pub fn netd_uplink_ingress(ctx: TcContext) -> i32 {
    parse::linearize(&ctx);
    if rare::worth_a_look(&ctx) {
        let action = rare::from_outside(&ctx);
        if action != isolation::UNTOUCHED {
            return action;
        }
    }
    verdict(&ctx, from_outside(&ctx))
}

/// Masquerade of containers' connections to the outside, and ICMP errors the host sends
/// about packets it was handed translated. Nothing of a masqueraded network leaves with its
/// private address.
// A subprogram: its stack and the ICMP errors' are never on the stack at once.
#[inline(never)]
fn to_outside(ctx: &TcContext) -> Result<i32, Drop> {
    if parse::at::<u16>(ctx, 12).map(u16::from_be) != Some(ETH_P_IP) {
        return Ok(PASS);
    }
    let Some(ip) = parse::ipv4(ctx) else {
        return Ok(PASS);
    };
    let from_container = |reason| Drop {
        reason,
        network: isolation::network_of(ip.saddr_be).unwrap_or(0),
        direction: DIR_FROM_CONTAINER,
    };
    // SAFETY: the kernel hands every TC program a valid __sk_buff.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let Some(p) = parse::l4(ctx, &ip) else {
        if masquerade::is_masqueraded(ip.saddr_be, ifindex) {
            return Err(from_container(DropReason::Untranslatable));
        }
        return Ok(PASS);
    };
    let entry = match conntrack::lookup(&p) {
        Some(e) => e,
        None if p.later_fragment && masquerade::is_masqueraded(p.saddr_be, ifindex) => {
            return Err(from_container(DropReason::Untranslatable));
        }
        None if p.later_fragment => return Ok(PASS),
        None => match masquerade::masquerade(ctx, &p, ifindex) {
            Masquerade::Translated(e) => e,
            Masquerade::NotApplicable => {
                ports::own_host_flow(&p);
                return Ok(PASS);
            }
            Masquerade::Exhausted => return Err(from_container(DropReason::PortsExhausted)),
            Masquerade::Untranslatable => return Err(from_container(DropReason::Untranslatable)),
        },
    };
    nat::rewrite(ctx, &p, &entry).map_err(from_container)?;
    Ok(PASS)
}

/// Egress of an uplink.
#[classifier]
pub fn netd_uplink_egress(ctx: TcContext) -> i32 {
    parse::linearize(&ctx);
    if rare::worth_a_look(&ctx) {
        let action = rare::to_outside(&ctx);
        if action != isolation::UNTOUCHED {
            return action;
        }
    }
    verdict(&ctx, to_outside(&ctx))
}

/// Allow the socket call (sock_addr programs return 1 to let it proceed).
const SOCK_ALLOW: i32 = 1;

#[cgroup_sock_addr(connect4)]
pub fn netd_connect4(ctx: SockAddrContext) -> i32 {
    sockets::translate(&ctx, sockets::proto(&ctx));
    SOCK_ALLOW
}

#[cgroup_sock_addr(sendmsg4)]
pub fn netd_sendmsg4(ctx: SockAddrContext) -> i32 {
    sockets::translate(&ctx, sockets::proto(&ctx));
    SOCK_ALLOW
}

#[cgroup_sock_addr(recvmsg4)]
pub fn netd_recvmsg4(ctx: SockAddrContext) -> i32 {
    sockets::reverse(&ctx);
    SOCK_ALLOW
}

#[cgroup_sock_addr(getpeername4)]
pub fn netd_getpeername4(ctx: SockAddrContext) -> i32 {
    sockets::reverse(&ctx);
    SOCK_ALLOW
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
