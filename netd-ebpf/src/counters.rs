//! Per-interface packet and byte counters, and drop counters by network, reason and direction.

use aya_ebpf::{bindings::TC_ACT_SHOT, programs::TcContext};
use netd_common::{
    counters::{Direction, IfaceKey},
    isolation::{DropCounters, DropKey},
    nat::{CtEntry, PortStats, PortStatsKey, CT_FLAG_DNAT, CT_FLAG_REPLY, CT_FLAG_VIP},
};

use crate::{
    isolation::Drop,
    maps::{DROPS, IFACE_COUNTERS, PORT_STATS},
    parse::L4Packet,
};

/// Counts the packet on the interface it was seen on. Interfaces netd does not manage have no
/// entry and are not counted.
#[inline(always)]
pub fn count(ctx: &TcContext, direction: Direction) {
    // SAFETY: the kernel hands every TC program a valid __sk_buff.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    count_on(ctx, ifindex, direction);
}

/// Counts the packet on the port `ifindex` in `direction`: for the port that sees it, or
/// for the port a packet is delivered to past that port's own programs.
#[inline(always)]
pub fn count_on(ctx: &TcContext, ifindex: u32, direction: Direction) {
    if cfg!(feature = "no-counters") {
        return;
    }
    let key = IfaceKey { ifindex };
    if let Some(counters) = IFACE_COUNTERS.get_ptr_mut(key) {
        // SAFETY: per-CPU value, so no other CPU writes it concurrently; preemption is off
        // while a TC program runs.
        unsafe { (*counters).count(direction, u64::from(ctx.len())) };
    }
}

/// Counts a packet of a connection through a published port, in the direction of its entry;
/// `opened` for the first packet of a connection.
#[inline(always)]
pub fn published(ctx: &TcContext, p: &L4Packet, e: &CtEntry, opened: bool) {
    if cfg!(feature = "no-counters") {
        return;
    }
    if e.flags & (CT_FLAG_DNAT | CT_FLAG_VIP) != CT_FLAG_DNAT {
        return;
    }
    let reply = e.flags & CT_FLAG_REPLY != 0;
    let key = if reply {
        PortStatsKey {
            target_addr_be: p.saddr_be,
            target_port_be: p.sport_be,
            host_port_be: e.new_sport_be,
            proto: p.proto,
            _pad: [0; 3],
        }
    } else {
        PortStatsKey {
            target_addr_be: e.new_daddr_be,
            target_port_be: e.new_dport_be,
            host_port_be: p.dport_be,
            proto: p.proto,
            _pad: [0; 3],
        }
    };
    let bytes = u64::from(ctx.len());
    let add = |s: &mut PortStats| {
        if reply {
            s.out_packets += 1;
            s.out_bytes += bytes;
        } else {
            s.in_packets += 1;
            s.in_bytes += bytes;
        }
        s.connections += u64::from(opened);
    };
    match PORT_STATS.get_ptr_mut(key) {
        // SAFETY: per-CPU value, written by this CPU only, preemption off.
        Some(s) => add(unsafe { &mut *s }),
        None => {
            let mut first = PortStats::default();
            add(&mut first);
            let _ = PORT_STATS.insert(key, first, 0);
        }
    }
}

/// Counts a dropped packet under its reason and returns the action that drops it: the one
/// place where a program decides to drop.
#[inline(always)]
pub fn drop(ctx: &TcContext, drop: &Drop) -> i32 {
    crate::monitor::dropped(ctx, drop);
    let key = DropKey {
        network: drop.network,
        reason: drop.reason as u8,
        direction: drop.direction,
        _pad: [0; 2],
    };
    let bytes = u64::from(ctx.len());
    match DROPS.get_ptr_mut(key) {
        // SAFETY: per-CPU value, written by this CPU only, preemption off.
        Some(c) => unsafe {
            (*c).packets += 1;
            (*c).bytes += bytes;
        },
        None => {
            // The first drop of its kind on this CPU; the other CPUs' slots start at zero.
            let first = DropCounters { packets: 1, bytes };
            let _ = DROPS.insert(key, first, 0);
        }
    }
    TC_ACT_SHOT
}
