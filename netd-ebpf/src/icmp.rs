//! ICMP errors about translated connections, rewritten back to what their receiver sent:
//! the embedded packet and the outer addresses (see `netd_common::icmp`).

use aya_ebpf::{bindings::TC_ACT_UNSPEC, programs::TcContext};
use netd_common::{
    icmp::{
        embedded_tuple, is_error, outer_addresses, rewrite_embedded, TcpCsum, EMBEDDED_LEN,
        EMBEDDED_TCP_CSUM, ICMP_HLEN,
    },
    isolation::DropReason,
    nat::{PROTO_ICMP, PROTO_TCP},
};

use crate::{
    conntrack,
    isolation::{Seen, UNTOUCHED},
    nat::{self, Hop},
    parse::{self, Ipv4, ETH_HLEN, IP_DADDR, IP_SADDR},
};

/// Rewrites `ip`, if it is an ICMP error about a connection conntrack translated, and sends
/// it to the sender of the embedded packet: the program's action, or [`UNTOUCHED`].
#[inline(always)]
pub fn translate(ctx: &TcContext, ip: &Ipv4, seen: &Seen) -> i32 {
    match rewrite(ctx, ip) {
        Ok(Some(hop)) if seen.send_on => nat::send(ctx, &hop, ip.ttl),
        Ok(Some(_)) => TC_ACT_UNSPEC,
        Ok(None) => UNTOUCHED,
        Err(reason) => seen.drop(ctx, reason),
    }
}

#[inline(always)]
fn rewrite(ctx: &TcContext, ip: &Ipv4) -> Result<Option<Hop>, DropReason> {
    if ip.proto != PROTO_ICMP || !ip.unfragmented {
        return Ok(None);
    }
    let icmp_off = ip.l4_off();
    let Some(icmp) = parse::at::<[u8; 4]>(ctx, icmp_off) else {
        return Ok(None);
    };
    if !is_error(icmp[0]) {
        return Ok(None);
    }
    let inner_off = icmp_off + ICMP_HLEN;
    let Some(old) = parse::at::<[u8; EMBEDDED_LEN]>(ctx, inner_off) else {
        return Ok(None);
    };
    let Some(sent) = embedded_tuple(&old) else {
        return Ok(None);
    };
    // The embedded packet went the other way: its reverse is what conntrack keys. Read
    // only: an error is no sign of life of its connection.
    let Some(entry) = conntrack::peek(sent.reversed()) else {
        return Ok(None);
    };
    let to = entry.partner(sent.proto);
    let (saddr_be, daddr_be) = outer_addresses(ip.saddr_be, &sent, &to);
    let hop = nat::next_hop(ctx, (saddr_be, daddr_be), (PROTO_ICMP, 0, 0), ip.ttl);
    let tcp_csum_off = inner_off + EMBEDDED_TCP_CSUM;
    let carried = if sent.proto == PROTO_TCP {
        parse::at::<[u8; 2]>(ctx, tcp_csum_off)
    } else {
        None
    };
    let old_tcp_csum = TcpCsum {
        present: carried.is_some(),
        value: carried.unwrap_or([0, 0]),
    };
    let new = rewrite_embedded(&old, old_tcp_csum, [icmp[2], icmp[3]], &to);
    let r = |res: Result<(), i64>| res.map_err(|_| DropReason::NatRewrite);
    r(ctx.store(inner_off, &new.header, 0))?;
    if new.tcp_csum.present {
        r(ctx.store(tcp_csum_off, &new.tcp_csum.value, 0))?;
    }
    r(ctx.store(icmp_off + 2, &new.icmp_csum, 0))?;
    // ICMP has no pseudo header: the outer addresses are in the IP checksum only.
    nat::set_addr(ctx, ETH_HLEN + IP_SADDR, ip.saddr_be, saddr_be, None)?;
    nat::set_addr(ctx, ETH_HLEN + IP_DADDR, ip.daddr_be, daddr_be, None)?;
    Ok(Some(hop))
}
