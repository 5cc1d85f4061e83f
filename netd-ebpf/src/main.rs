#![no_std]
#![no_main]

//! Entry points of the datapath, one per attach point. Each concern lives in its own module.

mod counters;
mod maps;

use aya_ebpf::{bindings::TC_ACT_UNSPEC, macros::classifier, programs::TcContext};
use netd_common::counters::Direction;

/// Ingress of a bridge port: what a container sends.
#[classifier]
pub fn netd_port_ingress(ctx: TcContext) -> i32 {
    counters::count(&ctx, Direction::Ingress);
    // TCX_NEXT: counting never decides a packet's fate; let later programs and the stack do.
    TC_ACT_UNSPEC
}

/// Egress of a bridge port: what is delivered to a container.
#[classifier]
pub fn netd_port_egress(ctx: TcContext) -> i32 {
    counters::count(&ctx, Direction::Egress);
    TC_ACT_UNSPEC
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
