//! Rewriting a packet to its translated tuple with correct IPv4 and L4 checksums, and sending
//! it on by a FIB lookup as a router would (a rewritten source may be a host address, which
//! the stack's forwarding path would drop as martian).

use aya_ebpf::{
    bindings::{bpf_fib_lookup, BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, TC_ACT_UNSPEC},
    helpers::{bpf_check_mtu, bpf_fib_lookup as fib_lookup, bpf_redirect, bpf_redirect_neigh},
    programs::TcContext,
};
use netd_common::{
    isolation::DropReason,
    nat::{CtEntry, PROTO_ICMP, PROTO_UDP},
};

use crate::parse::{L4Packet, ETH_HLEN, IP_CSUM, IP_DADDR, IP_SADDR, IP_TTL};

const AF_INET: u8 = 2;
const BPF_FIB_LKUP_RET_SUCCESS: i64 = 0;
const BPF_FIB_LKUP_RET_FRAG_NEEDED: i64 = 8;
const BPF_FIB_LKUP_RET_NO_NEIGH: i64 = 7;

/// Rewrites every field of `p` that `e` changes.
#[inline(always)]
pub fn rewrite(ctx: &TcContext, p: &L4Packet, e: &CtEntry) -> Result<(), DropReason> {
    if p.later_fragment {
        // No L4 header here: the first fragment carried the ports and the checksum.
        set_addr(ctx, ETH_HLEN + IP_SADDR, p.saddr_be, e.new_saddr_be, None)?;
        return set_addr(ctx, ETH_HLEN + IP_DADDR, p.daddr_be, e.new_daddr_be, None);
    }
    let csum = p.l4_csum_off();
    // A UDP checksum of 0 means "none" and must stay so.
    let mangled = if p.proto == PROTO_UDP {
        u64::from(BPF_F_MARK_MANGLED_0)
    } else {
        0
    };
    // ICMP has no pseudo header: addresses are not in its checksum.
    let pseudo =
        (p.proto != PROTO_ICMP).then_some((csum, u64::from(BPF_F_PSEUDO_HDR) | mangled | 4));
    set_addr(ctx, ETH_HLEN + IP_SADDR, p.saddr_be, e.new_saddr_be, pseudo)?;
    set_addr(ctx, ETH_HLEN + IP_DADDR, p.daddr_be, e.new_daddr_be, pseudo)?;
    if p.proto == PROTO_ICMP {
        // One of the two "ports" is the echo identifier, the other 0 (see parse::L4Packet).
        let (old, new) = (p.sport_be | p.dport_be, e.new_sport_be | e.new_dport_be);
        return set_port(ctx, p.l4_off + 4, csum, old, new, 0);
    }
    set_port(ctx, p.l4_off, csum, p.sport_be, e.new_sport_be, mangled)?;
    set_port(ctx, p.l4_off + 2, csum, p.dport_be, e.new_dport_be, mangled)
}

/// Writes an IPv4 address and fixes the IP checksum, and the L4 one when it covers addresses.
#[inline(always)]
pub fn set_addr(
    ctx: &TcContext,
    off: usize,
    old: u32,
    new: u32,
    l4: Option<(usize, u64)>,
) -> Result<(), DropReason> {
    if old == new {
        return Ok(());
    }
    let r = |res: Result<(), i64>| res.map_err(|_| DropReason::NatRewrite);
    if let Some((csum, flags)) = l4 {
        r(ctx.l4_csum_replace(csum, old.into(), new.into(), flags))?;
    }
    r(ctx.l3_csum_replace(ETH_HLEN + IP_CSUM, old.into(), new.into(), 4))?;
    r(ctx.store(off, &new, 0))
}

/// Writes a 16-bit L4 field (port or echo identifier) and fixes the L4 checksum.
#[inline(always)]
fn set_port(
    ctx: &TcContext,
    off: usize,
    csum: usize,
    old: u16,
    new: u16,
    flags: u64,
) -> Result<(), DropReason> {
    if old == new {
        return Ok(());
    }
    let r = |res: Result<(), i64>| res.map_err(|_| DropReason::NatRewrite);
    r(ctx.l4_csum_replace(csum, old.into(), new.into(), flags | 2))?;
    r(ctx.store(off, &new, 0))
}

/// Where a translated packet goes next. Decided before the rewrite, so that a packet the
/// FIB will not send on can still go to the stack as it was.
pub enum Hop {
    /// Out of `ifindex` to the neighbour the FIB knows.
    Redirect { ifindex: u32, macs: [[u8; 6]; 2] },
    /// Out of `ifindex`, once the kernel resolved the neighbour.
    Neigh(u32),
    /// Too big for the way out (and not GSO), or its TTL spent: the stack answers with the
    /// ICMP error (or fragments it), as it does for what it forwards itself.
    Stack,
    /// No direct answer from the FIB (no route, forwarding off): the stack decides.
    Unrouted,
}

/// The next hop of a packet once rewritten to `saddr_be` → `daddr_be`; the ports tell a
/// multipath route which way the flow goes.
#[inline(always)]
pub fn next_hop(
    ctx: &TcContext,
    (saddr_be, daddr_be): (u32, u32),
    (proto, sport_be, dport_be): (u8, u16, u16),
    ttl: u8,
) -> Hop {
    // As the kernel's forwarding: a TTL that would reach 0 is not sent on.
    if ttl <= 1 {
        return Hop::Stack;
    }
    // SAFETY: an all-zero bpf_fib_lookup is a valid request to fill in.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.family = AF_INET;
    params.l4_protocol = proto;
    params.sport = sport_be;
    params.dport = dport_be;
    // tot_len stays 0: the kernel then checks the skb itself against the egress MTU, which
    // accepts GSO packets; a tot_len from the IP header would refuse them as too big.
    // SAFETY: the kernel hands every TC program a valid __sk_buff.
    params.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    params.__bindgen_anon_3.ipv4_src = saddr_be;
    params.__bindgen_anon_4.ipv4_dst = daddr_be;
    // SAFETY: params is a valid, writable bpf_fib_lookup of the size given.
    let rc = unsafe {
        fib_lookup(
            ctx.skb.skb.cast(),
            &mut params,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    match rc {
        BPF_FIB_LKUP_RET_SUCCESS => Hop::Redirect {
            ifindex: params.ifindex,
            macs: [params.dmac, params.smac],
        },
        // The FIB checks the size only when it knows the neighbour: check it here.
        BPF_FIB_LKUP_RET_NO_NEIGH if fits(ctx, params.ifindex) => Hop::Neigh(params.ifindex),
        BPF_FIB_LKUP_RET_NO_NEIGH => Hop::Stack,
        BPF_FIB_LKUP_RET_FRAG_NEEDED => Hop::Stack,
        _ => Hop::Unrouted,
    }
}

/// Whether the packet fits the MTU of `ifindex` (or is GSO, in segments that do).
#[inline(always)]
fn fits(ctx: &TcContext, ifindex: u32) -> bool {
    let mut mtu = 0u32;
    // SAFETY: plain helper call; `mtu` is a valid u32 for the helper to write.
    let rc = unsafe { bpf_check_mtu(ctx.skb.skb.cast(), ifindex, &mut mtu, 0, 0) };
    rc == 0
}

/// The next hop of `p` once translated by `e`.
#[inline(always)]
pub fn next_hop_of(ctx: &TcContext, p: &L4Packet, e: &CtEntry) -> Hop {
    next_hop(
        ctx,
        (e.new_saddr_be, e.new_daddr_be),
        (p.proto, e.new_sport_be, e.new_dport_be),
        p.ttl,
    )
}

/// Sends a rewritten packet on to `hop`, one TTL older, as a router would; the stack
/// handles what the FIB had no direct answer for.
#[inline(always)]
pub fn send(ctx: &TcContext, hop: &Hop, ttl: u8) -> i32 {
    match *hop {
        Hop::Redirect { ifindex, macs } => {
            if ctx.store(0, &macs, 0).is_err() || decrement_ttl(ctx, ttl).is_err() {
                return TC_ACT_UNSPEC;
            }
            // SAFETY: plain helper call with a kernel-provided ifindex.
            unsafe { bpf_redirect(ifindex, 0) as i32 }
        }
        Hop::Neigh(ifindex) => {
            if decrement_ttl(ctx, ttl).is_err() {
                return TC_ACT_UNSPEC;
            }
            // SAFETY: plain helper call; a null neighbour asks the kernel to resolve the
            // packet's own destination on that interface.
            unsafe { bpf_redirect_neigh(ifindex, core::ptr::null_mut(), 0, 0) as i32 }
        }
        Hop::Stack | Hop::Unrouted => TC_ACT_UNSPEC,
    }
}

/// The TTL is the first byte of the 16-bit word it shares with the protocol, which the
/// header checksum sums.
#[inline(always)]
fn decrement_ttl(ctx: &TcContext, ttl: u8) -> Result<(), i64> {
    let off = ETH_HLEN + IP_TTL;
    let [_, proto] = crate::parse::at::<[u8; 2]>(ctx, off).ok_or(-1i64)?;
    let old = u16::from_ne_bytes([ttl, proto]);
    let new = u16::from_ne_bytes([ttl - 1, proto]);
    ctx.l3_csum_replace(ETH_HLEN + IP_CSUM, old.into(), new.into(), 2)?;
    ctx.store(off, &(ttl - 1), 0)
}
