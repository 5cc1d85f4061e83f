//! Rewriting a packet to its translated tuple with correct IPv4 and L4 checksums, and sending
//! it on by a FIB lookup (a rewritten source may be a host address, which the stack's
//! forwarding path would drop as martian).

use aya_ebpf::{
    bindings::{bpf_fib_lookup, BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, TC_ACT_UNSPEC},
    helpers::{bpf_fib_lookup as fib_lookup, bpf_redirect, bpf_redirect_neigh},
    programs::TcContext,
};
use netd_common::nat::{CtEntry, PROTO_ICMP, PROTO_UDP};

use crate::parse::{L4Packet, ETH_HLEN, IP_CSUM, IP_DADDR, IP_SADDR};

const AF_INET: u8 = 2;
const BPF_FIB_LKUP_RET_SUCCESS: i64 = 0;
const BPF_FIB_LKUP_RET_NO_NEIGH: i64 = 7;

/// Why a translation could not be applied.
#[derive(Clone, Copy)]
pub enum NatError {
    Rewrite,
}

/// Rewrites every field of `p` that `e` changes.
#[inline(always)]
pub fn rewrite(ctx: &TcContext, p: &L4Packet, e: &CtEntry) -> Result<(), NatError> {
    let csum = p.l4_csum_off();
    // A UDP checksum of 0 means "none" and must stay so.
    let mangled = if p.proto == PROTO_UDP {
        u64::from(BPF_F_MARK_MANGLED_0)
    } else {
        0
    };
    let addr_flags = u64::from(BPF_F_PSEUDO_HDR) | mangled | 4;
    let r = |res: Result<(), i64>| res.map_err(|_| NatError::Rewrite);
    if p.proto == PROTO_ICMP {
        return rewrite_icmp(ctx, p, e);
    }
    if e.new_saddr_be != p.saddr_be {
        r(ctx.l4_csum_replace(csum, p.saddr_be.into(), e.new_saddr_be.into(), addr_flags))?;
        r(ctx.l3_csum_replace(
            ETH_HLEN + IP_CSUM,
            p.saddr_be.into(),
            e.new_saddr_be.into(),
            4,
        ))?;
        r(ctx.store(ETH_HLEN + IP_SADDR, &e.new_saddr_be, 0))?;
    }
    if e.new_daddr_be != p.daddr_be {
        r(ctx.l4_csum_replace(csum, p.daddr_be.into(), e.new_daddr_be.into(), addr_flags))?;
        r(ctx.l3_csum_replace(
            ETH_HLEN + IP_CSUM,
            p.daddr_be.into(),
            e.new_daddr_be.into(),
            4,
        ))?;
        r(ctx.store(ETH_HLEN + IP_DADDR, &e.new_daddr_be, 0))?;
    }
    if e.new_sport_be != p.sport_be {
        r(ctx.l4_csum_replace(csum, p.sport_be.into(), e.new_sport_be.into(), mangled | 2))?;
        r(ctx.store(p.l4_off, &e.new_sport_be, 0))?;
    }
    if e.new_dport_be != p.dport_be {
        r(ctx.l4_csum_replace(csum, p.dport_be.into(), e.new_dport_be.into(), mangled | 2))?;
        r(ctx.store(p.l4_off + 2, &e.new_dport_be, 0))?;
    }
    Ok(())
}

/// ICMP echo: addresses are not in the ICMP checksum (no pseudo header); the identifier is.
#[inline(always)]
fn rewrite_icmp(ctx: &TcContext, p: &L4Packet, e: &CtEntry) -> Result<(), NatError> {
    let r = |res: Result<(), i64>| res.map_err(|_| NatError::Rewrite);
    if e.new_saddr_be != p.saddr_be {
        r(ctx.l3_csum_replace(
            ETH_HLEN + IP_CSUM,
            p.saddr_be.into(),
            e.new_saddr_be.into(),
            4,
        ))?;
        r(ctx.store(ETH_HLEN + IP_SADDR, &e.new_saddr_be, 0))?;
    }
    if e.new_daddr_be != p.daddr_be {
        r(ctx.l3_csum_replace(
            ETH_HLEN + IP_CSUM,
            p.daddr_be.into(),
            e.new_daddr_be.into(),
            4,
        ))?;
        r(ctx.store(ETH_HLEN + IP_DADDR, &e.new_daddr_be, 0))?;
    }
    // One of the two "ports" is the identifier, the other 0 (see parse::L4Packet).
    let (old_id, new_id) = (p.sport_be | p.dport_be, e.new_sport_be | e.new_dport_be);
    if new_id != old_id {
        r(ctx.l4_csum_replace(p.l4_csum_off(), old_id.into(), new_id.into(), 2))?;
        r(ctx.store(p.l4_off + 4, &new_id, 0))?;
    }
    Ok(())
}

/// Sends a rewritten packet out of the interface the FIB picks for its new destination, with
/// the right MAC addresses; lets the stack handle it when the FIB has no direct answer.
#[inline(always)]
pub fn forward(ctx: &TcContext, e: &CtEntry, proto: u8) -> i32 {
    // SAFETY: an all-zero bpf_fib_lookup is a valid request to fill in.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.family = AF_INET;
    params.l4_protocol = proto;
    params.sport = e.new_sport_be;
    params.dport = e.new_dport_be;
    // tot_len stays 0: the kernel then checks the skb itself against the egress MTU, which
    // accepts GSO packets; a tot_len from the IP header would refuse them as too big.
    // SAFETY: the kernel hands every TC program a valid __sk_buff.
    params.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    params.__bindgen_anon_3.ipv4_src = e.new_saddr_be;
    params.__bindgen_anon_4.ipv4_dst = e.new_daddr_be;
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
        BPF_FIB_LKUP_RET_SUCCESS => {
            let macs = [params.dmac, params.smac];
            if ctx.store(0, &macs, 0).is_err() {
                return TC_ACT_UNSPEC;
            }
            // SAFETY: plain helper call with a kernel-provided ifindex.
            unsafe { bpf_redirect(params.ifindex, 0) as i32 }
        }
        // SAFETY: plain helper call; a null neighbour asks the kernel to resolve the
        // packet's own destination on that interface.
        BPF_FIB_LKUP_RET_NO_NEIGH => unsafe {
            bpf_redirect_neigh(params.ifindex, core::ptr::null_mut(), 0, 0) as i32
        },
        _ => TC_ACT_UNSPEC,
    }
}
