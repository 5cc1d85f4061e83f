//! Events for `netd monitor`: written only while someone watches (one array lookup per drop or
//! new connection otherwise), at most `EVENTS_PER_CPU_SECOND` a second on each CPU.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::TcContext};
use netd_common::{
    isolation::ETH_P_IP,
    monitor::{Event, EVENT_DROP, EVENT_PUBLISHED, EVENT_VIP},
    nat::{CtEntry, CT_FLAG_VIP},
};

use crate::{
    isolation::{network_of, Drop},
    maps::{EVENTS, MONITOR, MONITOR_RATE},
    parse::{self, L4Packet},
};

#[inline(always)]
fn watched() -> bool {
    MONITOR.get(0).is_some_and(|on| *on != 0)
}

#[inline(always)]
fn emit(ev: &Event) {
    let Some(window) = MONITOR_RATE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU value, written by this CPU only, preemption off.
    let now = unsafe { bpf_ktime_get_ns() };
    if unsafe { (*window).admit(now) } {
        // A full ring drops the event: the monitor is a sample, never back-pressure.
        let _ = EVENTS.output::<Event>(ev, 0);
    }
}

#[inline(always)]
fn ifindex(ctx: &TcContext) -> u32 {
    // SAFETY: the kernel hands every TC program a valid __sk_buff.
    unsafe { (*ctx.skb.skb).ifindex }
}

/// A drop, with the packet's 5-tuple when it is IPv4.
#[inline(always)]
pub fn dropped(ctx: &TcContext, drop: &Drop) {
    if !watched() {
        return;
    }
    let mut ev = Event {
        kind: EVENT_DROP,
        reason: drop.reason as u8,
        direction: drop.direction,
        network: drop.network,
        ifindex: ifindex(ctx),
        ..Event::default()
    };
    if parse::at::<u16>(ctx, 12).map(u16::from_be) == Some(ETH_P_IP) {
        if let Some(ip) = parse::ipv4(ctx) {
            ev.proto = ip.proto;
            ev.saddr_be = ip.saddr_be;
            ev.daddr_be = ip.daddr_be;
            if let Some(p) = parse::l4(ctx, &ip) {
                ev.sport_be = p.sport_be;
                ev.dport_be = p.dport_be;
            }
        }
    }
    emit(&ev);
}

/// A new connection through a published port or to a VIP, and where it was sent.
#[inline(always)]
pub fn opened(ctx: &TcContext, p: &L4Packet, e: &CtEntry) {
    if !watched() {
        return;
    }
    let kind = if e.flags & CT_FLAG_VIP != 0 {
        EVENT_VIP
    } else {
        EVENT_PUBLISHED
    };
    emit(&Event {
        kind,
        proto: p.proto,
        network: network_of(e.new_daddr_be).unwrap_or(0),
        ifindex: ifindex(ctx),
        saddr_be: p.saddr_be,
        daddr_be: p.daddr_be,
        sport_be: p.sport_be,
        dport_be: p.dport_be,
        to_addr_be: e.new_daddr_be,
        to_port_be: e.new_dport_be,
        ..Event::default()
    });
}
