//! Per-interface packet and byte counters.

use aya_ebpf::programs::TcContext;
use netd_common::counters::{Direction, IfaceKey};

use crate::maps::IFACE_COUNTERS;

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
