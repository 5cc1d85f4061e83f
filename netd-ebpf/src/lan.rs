//! macvlan endpoints: the programs on a container's own macvlan, in its namespace (there is
//! no host end). What the container sends, seen at that interface's egress, is held to its
//! endpoint: its MAC, its address, its ARP claims, no IPv6. The LAN has no rules of netd's
//! beyond that: no bridge, translation or network policy.

use aya_ebpf::programs::TcContext;
use netd_common::isolation::{DropReason, NetworkPolicy, DIR_FROM_CONTAINER};

use crate::{
    isolation::{self, Drop, Port},
    maps::ENDPOINTS,
};

/// A macvlan endpoint's rules: its network's icc, internal and VIP flags do not apply.
const LAN: NetworkPolicy = NetworkPolicy {
    subnet_be: 0,
    mask_be: 0,
    gateway_be: 0,
    flags: 0,
    gateway_mac: [0; 6],
    _pad: [0; 2],
};

/// The endpoint behind the macvlan `ctx` runs on; one netd has not described sends nothing.
#[inline(always)]
fn port(ctx: &TcContext) -> Result<Port, Drop> {
    // SAFETY: the kernel hands every TC program a valid __sk_buff.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: read-only lookup of a plain value.
    let ep = *unsafe { ENDPOINTS.get(ifindex) }.ok_or(Drop {
        reason: DropReason::UnknownEndpoint,
        network: 0,
        direction: DIR_FROM_CONTAINER,
    })?;
    Ok(Port {
        ifindex,
        ep,
        net: LAN,
    })
}

/// What a container sends onto the LAN: passed once its sender checks out.
#[inline(always)]
pub fn from_container(ctx: &TcContext) -> Result<(), Drop> {
    let port = port(ctx)?;
    isolation::check_sender(ctx, &port).map(|_| ())
}
