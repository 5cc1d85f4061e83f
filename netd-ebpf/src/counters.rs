//! Per-interface packet and byte counters, and drop counters by network, reason and direction.

use aya_ebpf::{bindings::TC_ACT_SHOT, programs::TcContext};
use netd_common::{
    counters::{Direction, IfaceKey},
    isolation::{DropCounters, DropKey},
};

use crate::{
    isolation::Drop,
    maps::{DROPS, IFACE_COUNTERS},
};

/// Counts the packet on the interface it was seen on. Interfaces netd does not manage have no
/// entry and are not counted.
#[inline(always)]
pub fn count(ctx: &TcContext, direction: Direction) {
    // SAFETY: the kernel hands every TC program a valid __sk_buff.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let key = IfaceKey { ifindex };
    if let Some(counters) = IFACE_COUNTERS.get_ptr_mut(key) {
        // SAFETY: per-CPU value, so no other CPU writes it concurrently; preemption is off
        // while a TC program runs.
        unsafe { (*counters).count(direction, u64::from(ctx.len())) };
    }
}

/// Counts a dropped packet under its reason and returns the action that drops it: the one
/// place where a program decides to drop.
#[inline(always)]
pub fn drop(ctx: &TcContext, drop: &Drop) -> i32 {
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
