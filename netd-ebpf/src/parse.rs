//! Bounds-checked header access. Every read goes through `bpf_skb_load_bytes`, which fails on
//! a short packet instead of reading past it.

use aya_ebpf::programs::TcContext;
use netd_common::{
    isolation::ETH_P_IP,
    nat::{CtKey, PROTO_ICMP, PROTO_TCP, PROTO_UDP},
};

pub const ETH_HLEN: usize = 14;
/// Offsets inside the IPv4 header.
pub const IP_CSUM: usize = 10;
pub const IP_SADDR: usize = 12;
pub const IP_DADDR: usize = 16;

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;

/// An IPv4 TCP, UDP or ICMP echo packet that can be translated: not a fragment, headers
/// complete. For ICMP echo the identifier plays the port: in `sport_be` for a request, in
/// `dport_be` for a reply (the other is 0), so that a reply's tuple is the reverse of its
/// request's, as with ports.
pub struct L4Packet {
    pub l4_off: usize,
    pub proto: u8,
    pub saddr_be: u32,
    pub daddr_be: u32,
    pub sport_be: u16,
    pub dport_be: u16,
    /// TCP flags byte; 0 for UDP.
    pub tcp_flags: u8,
}

impl L4Packet {
    pub fn key(&self) -> CtKey {
        CtKey {
            saddr_be: self.saddr_be,
            daddr_be: self.daddr_be,
            sport_be: self.sport_be,
            dport_be: self.dport_be,
            proto: self.proto,
            _pad: [0; 3],
        }
    }

    /// Offset of the L4 checksum.
    pub fn l4_csum_off(&self) -> usize {
        match self.proto {
            PROTO_TCP => self.l4_off + 16,
            PROTO_ICMP => self.l4_off + 2,
            _ => self.l4_off + 6,
        }
    }
}

/// The Ethernet header.
pub struct Ethernet {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// Host byte order.
    pub ethertype: u16,
}

#[inline(always)]
pub fn ethernet(ctx: &TcContext) -> Option<Ethernet> {
    Some(Ethernet {
        dst: ctx.load(0).ok()?,
        src: ctx.load(6).ok()?,
        ethertype: u16::from_be(ctx.load::<u16>(12).ok()?),
    })
}

/// The fields of an IPv4 header the programs decide on.
pub struct Ipv4 {
    pub saddr_be: u32,
    pub daddr_be: u32,
    pub proto: u8,
    /// Neither a fragment nor the first of several: the L4 header, if any, is whole here.
    pub unfragmented: bool,
    ihl: usize,
    tot_len: usize,
}

/// `None` for a header that is not a readable IPv4 header. The caller checked the ethertype.
#[inline(always)]
pub fn ipv4(ctx: &TcContext) -> Option<Ipv4> {
    let ver_ihl: u8 = ctx.load(ETH_HLEN).ok()?;
    let ihl = usize::from(ver_ihl & 0x0f) * 4;
    if ver_ihl >> 4 != 4 || ihl < 20 {
        return None;
    }
    let frag = u16::from_be(ctx.load::<u16>(ETH_HLEN + 6).ok()?);
    Some(Ipv4 {
        saddr_be: ctx.load(ETH_HLEN + IP_SADDR).ok()?,
        daddr_be: ctx.load(ETH_HLEN + IP_DADDR).ok()?,
        proto: ctx.load(ETH_HLEN + 9).ok()?,
        unfragmented: frag & 0x3fff == 0,
        ihl,
        tot_len: usize::from(u16::from_be(ctx.load::<u16>(ETH_HLEN + 2).ok()?)),
    })
}

/// An IPv4 packet netd translates, from the frame's start.
#[inline(always)]
pub fn l4_packet(ctx: &TcContext) -> Option<L4Packet> {
    if u16::from_be(ctx.load::<u16>(12).ok()?) != ETH_P_IP {
        return None;
    }
    l4(ctx, &ipv4(ctx)?)
}

/// `None` for anything netd does not translate: other protocols, fragments (only the first
/// carries ports, and rewriting it alone would break reassembly), truncated headers.
#[inline(always)]
pub fn l4(ctx: &TcContext, ip: &Ipv4) -> Option<L4Packet> {
    if !ip.unfragmented {
        return None;
    }
    let proto = ip.proto;
    let l4_len = match proto {
        PROTO_TCP => 20,
        PROTO_UDP | PROTO_ICMP => 8,
        _ => return None,
    };
    let ihl = ip.ihl;
    let l4_off = ETH_HLEN + ihl;
    if ip.tot_len < ihl + l4_len || (ctx.len() as usize) < l4_off + l4_len {
        return None;
    }
    let tcp_flags = if proto == PROTO_TCP {
        ctx.load(l4_off + 13).ok()?
    } else {
        0
    };
    let (sport_be, dport_be) = if proto == PROTO_ICMP {
        let id: u16 = ctx.load(l4_off + 4).ok()?;
        match ctx.load::<u8>(l4_off).ok()? {
            ICMP_ECHO_REQUEST => (id, 0),
            ICMP_ECHO_REPLY => (0, id),
            _ => return None,
        }
    } else {
        (ctx.load(l4_off).ok()?, ctx.load(l4_off + 2).ok()?)
    };
    Some(L4Packet {
        l4_off,
        proto,
        saddr_be: ip.saddr_be,
        daddr_be: ip.daddr_be,
        sport_be,
        dport_be,
        tcp_flags,
    })
}

/// The sender and target of an Ethernet/IPv4 ARP packet.
pub struct Arp {
    pub sender_mac: [u8; 6],
    pub sender_be: u32,
    pub target_be: u32,
}

/// `None` unless the packet is ARP for IPv4 over Ethernet, the only kind the kernel's
/// neighbour tables take (arp_rcv drops the others).
#[inline(always)]
pub fn arp(ctx: &TcContext) -> Option<Arp> {
    // htype 1, ptype 0x0800, hlen 6, plen 4.
    let header: [u8; 6] = ctx.load(ETH_HLEN).ok()?;
    if header != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    Some(Arp {
        sender_mac: ctx.load(ETH_HLEN + 8).ok()?,
        sender_be: ctx.load(ETH_HLEN + 14).ok()?,
        target_be: ctx.load(ETH_HLEN + 24).ok()?,
    })
}

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_ICMPV6: u8 = 58;
const ND_ROUTER_ADVERT: u8 = 134;
const IPV6_HLEN: usize = 40;

/// Whether an IPv6 packet is (or may be) an ICMPv6 router advertisement, looking past up to
/// three extension headers (an RA hidden behind options is still an RA to the receiver).
#[inline(always)]
pub fn is_router_advert(ctx: &TcContext) -> bool {
    let Ok(mut next) = ctx.load::<u8>(ETH_HLEN + 6) else {
        return false;
    };
    let mut off = ETH_HLEN + IPV6_HLEN;
    for _ in 0..3 {
        if !matches!(next, IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS) {
            break;
        }
        let Ok([nh, len]) = ctx.load::<[u8; 2]>(off) else {
            return false;
        };
        next = nh;
        off += (usize::from(len) + 1) * 8;
    }
    // Deeper than we look: treated as one rather than let through unread.
    if matches!(next, IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS) {
        return true;
    }
    next == IPPROTO_ICMPV6 && ctx.load::<u8>(off).ok() == Some(ND_ROUTER_ADVERT)
}
