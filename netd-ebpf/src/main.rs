#![no_std]
#![no_main]

//! Entry points of the datapath, one per attach point. Each concern lives in its own module.

mod conntrack;
mod counters;
mod maps;
mod masquerade;
mod nat;
mod parse;
mod ports;
mod sockets;

use aya_ebpf::{
    bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC},
    macros::{cgroup_sock_addr, classifier},
    programs::{SockAddrContext, TcContext},
};
use masquerade::Masquerade;
use netd_common::counters::Direction;

/// Translates a packet entering the host (from an uplink or from a container): an existing
/// connection's translation, or a new connection to a published port. Everything else is
/// left to the stack untouched.
#[inline(always)]
fn translate_ingress(ctx: &TcContext) -> i32 {
    let Some(p) = parse::l4_packet(ctx) else {
        return TC_ACT_UNSPEC;
    };
    let entry = match conntrack::lookup(&p) {
        Some(e) => e,
        None => match ports::publish(&p) {
            Some(Ok(e)) => e,
            // Conntrack full even after LRU eviction: let the stack answer (it will refuse).
            Some(Err(_)) => return TC_ACT_UNSPEC,
            None => {
                conntrack::forget_stale_reply(&p);
                return TC_ACT_UNSPEC;
            }
        },
    };
    match nat::rewrite(ctx, &p, &entry) {
        Ok(()) => nat::forward(ctx, &entry, p.proto),
        Err(nat::NatError::Rewrite) => TC_ACT_SHOT,
    }
}

/// Ingress of a bridge port: what a container sends.
#[classifier]
pub fn netd_port_ingress(ctx: TcContext) -> i32 {
    counters::count(&ctx, Direction::Ingress);
    translate_ingress(&ctx)
}

/// Egress of a bridge port: what is delivered to a container.
#[classifier]
pub fn netd_port_egress(ctx: TcContext) -> i32 {
    counters::count(&ctx, Direction::Egress);
    // TCX_NEXT / continue: counting never decides a packet's fate.
    TC_ACT_UNSPEC
}

/// Ingress of an uplink: clients of published ports, and replies to masqueraded connections.
#[classifier]
pub fn netd_uplink_ingress(ctx: TcContext) -> i32 {
    translate_ingress(&ctx)
}

/// Egress of an uplink: masquerade of containers' connections to the outside.
#[classifier]
pub fn netd_uplink_egress(ctx: TcContext) -> i32 {
    let Some(p) = parse::l4_packet(&ctx) else {
        return TC_ACT_UNSPEC;
    };
    let entry = match conntrack::lookup(&p) {
        Some(e) => e,
        None => {
            // SAFETY: the kernel hands every TC program a valid __sk_buff.
            let ifindex = unsafe { (*ctx.skb.skb).ifindex };
            match masquerade::masquerade(&p, ifindex) {
                Masquerade::Translated(e) => e,
                Masquerade::NotApplicable => return TC_ACT_UNSPEC,
                Masquerade::Exhausted => return TC_ACT_SHOT,
            }
        }
    };
    match nat::rewrite(&ctx, &p, &entry) {
        Ok(()) => TC_ACT_UNSPEC,
        Err(nat::NatError::Rewrite) => TC_ACT_SHOT,
    }
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
