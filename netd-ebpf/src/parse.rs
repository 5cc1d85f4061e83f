//! Bounds-checked header access: direct packet reads, after [`linearize`] made the headers
//! part of the skb's linear data. A read past the data fails instead of reading past it.

use aya_ebpf::programs::TcContext;

use crate::fragments;
use netd_common::{
    icmp::{ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST},
    nat::{CtKey, PROTO_ICMP, PROTO_TCP, PROTO_UDP},
};

pub const ETH_HLEN: usize = 14;

/// Ethernet, an IPv4 header without options and the start of a TCP header: what a packet's
/// parse needs in the common case.
const HEADERS: u32 = 54;

/// Makes the headers direct-readable: a no-op unless the skb keeps them in fragments, which
/// some drivers do. Entry points call it before parsing. Only the headers: pulling payload
/// into the linear part would copy it (the stack keeps TCP payload in page fragments), and
/// that costs more than everything else the programs do.
#[inline(always)]
pub fn linearize(ctx: &TcContext) {
    let want = ctx.len().min(HEADERS);
    if ctx.data() + want as usize > ctx.data_end() {
        // On failure the reads below find a short frame and give up.
        let _ = ctx.pull_data(want);
    }
}

/// The `T` at byte `off` of the frame. A direct read costs a bounds check where
/// `bpf_skb_load_bytes` costs a call, and per-packet calls add up at line rate.
#[inline(always)]
pub fn at<T: Copy>(ctx: &TcContext, off: usize) -> Option<T> {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + off + core::mem::size_of::<T>() > end {
        return None;
    }
    // SAFETY: the bytes are inside the packet's linear data, checked just above in the form
    // the verifier tracks (packet pointer + offset against data_end).
    Some(unsafe { ((start + off) as *const T).read_unaligned() })
}

/// Offsets inside the IPv4 header.
pub const IP_TTL: usize = 8;
pub const IP_CSUM: usize = 10;
pub const IP_SADDR: usize = 12;
pub const IP_DADDR: usize = 16;

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
    pub ttl: u8,
    /// A fragment after the first: no L4 header, ports from the first (see `fragments`).
    pub later_fragment: bool,
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

// Each header is read whole, once: when the compiler folds the bounds checks of several
// reads into one, the verifier loses track of the packet range of the others.

#[inline(always)]
pub fn ethernet(ctx: &TcContext) -> Option<Ethernet> {
    let h: [u8; ETH_HLEN] = at(ctx, 0)?;
    Some(Ethernet {
        dst: [h[0], h[1], h[2], h[3], h[4], h[5]],
        src: [h[6], h[7], h[8], h[9], h[10], h[11]],
        ethertype: u16::from_be_bytes([h[12], h[13]]),
    })
}

/// The fields of an IPv4 header the programs decide on.
pub struct Ipv4 {
    pub saddr_be: u32,
    pub daddr_be: u32,
    pub proto: u8,
    pub ttl: u8,
    /// Neither a fragment nor the first of several: the L4 header, if any, is whole here.
    pub unfragmented: bool,
    /// In 8-byte units: 0 for a whole packet and a first fragment.
    pub frag_offset: u16,
    /// The identification field, which the fragments of a datagram share.
    pub id_be: u16,
    ihl: usize,
    tot_len: usize,
}

impl Ipv4 {
    /// Offset of the L4 header in the frame.
    pub fn l4_off(&self) -> usize {
        ETH_HLEN + self.ihl
    }
}

/// `None` for a header that is not a readable IPv4 header. The caller checked the ethertype.
#[inline(always)]
pub fn ipv4(ctx: &TcContext) -> Option<Ipv4> {
    let h: [u8; 20] = at(ctx, ETH_HLEN)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if h[0] >> 4 != 4 || ihl < 20 {
        return None;
    }
    let frag = u16::from_be_bytes([h[6], h[7]]);
    Some(Ipv4 {
        saddr_be: u32::from_ne_bytes([h[12], h[13], h[14], h[15]]),
        daddr_be: u32::from_ne_bytes([h[16], h[17], h[18], h[19]]),
        proto: h[9],
        ttl: h[8],
        unfragmented: frag & 0x3fff == 0,
        frag_offset: frag & 0x1fff,
        id_be: u16::from_ne_bytes([h[4], h[5]]),
        ihl,
        tot_len: usize::from(u16::from_be_bytes([h[2], h[3]])),
    })
}

/// `None` for anything netd does not translate here: other protocols, TCP fragments (a TCP
/// connection's state needs every segment's flags; with path-MTU discovery TCP is not
/// fragmented), later fragments (see `fragments`), truncated headers. A first fragment
/// records its ports for the later ones.
#[inline(always)]
pub fn l4(ctx: &TcContext, ip: &Ipv4) -> Option<L4Packet> {
    let proto = ip.proto;
    let l4_len = match proto {
        PROTO_TCP if !ip.unfragmented => return None,
        PROTO_TCP => 20,
        PROTO_UDP | PROTO_ICMP => 8,
        _ => return None,
    };
    let ihl = ip.ihl;
    let l4_off = ip.l4_off();
    // A later fragment has no L4 header: see `fragments`.
    if ip.frag_offset != 0 || ip.tot_len < ihl + l4_len {
        return None;
    }
    let be16 = |a: u8, b: u8| u16::from_ne_bytes([a, b]);
    let (sport_be, dport_be, tcp_flags) = match proto {
        PROTO_TCP => {
            let h: [u8; 14] = at(ctx, l4_off)?;
            (be16(h[0], h[1]), be16(h[2], h[3]), h[13])
        }
        PROTO_UDP => {
            let h: [u8; 4] = at(ctx, l4_off)?;
            (be16(h[0], h[1]), be16(h[2], h[3]), 0)
        }
        _ => {
            let h: [u8; 8] = at(ctx, l4_off)?;
            let id = be16(h[4], h[5]);
            match h[0] {
                ICMP_ECHO_REQUEST => (id, 0, 0),
                ICMP_ECHO_REPLY => (0, id, 0),
                _ => return None,
            }
        }
    };
    if !ip.unfragmented {
        fragments::record(ip, sport_be, dport_be);
    }
    Some(L4Packet {
        l4_off,
        proto,
        saddr_be: ip.saddr_be,
        daddr_be: ip.daddr_be,
        sport_be,
        dport_be,
        tcp_flags,
        ttl: ip.ttl,
        later_fragment: false,
    })
}

/// The sender and target of an Ethernet/IPv4 ARP packet.
pub struct Arp {
    /// Host byte order: 1 request, 2 reply.
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_be: u32,
    pub target_be: u32,
}

/// `None` unless the packet is ARP for IPv4 over Ethernet, the only kind the kernel's
/// neighbour tables take (arp_rcv drops the others).
#[inline(always)]
pub fn arp(ctx: &TcContext) -> Option<Arp> {
    let h: [u8; 28] = at(ctx, ETH_HLEN)?;
    // htype 1, ptype 0x0800, hlen 6, plen 4.
    if h[..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    Some(Arp {
        op: u16::from_be_bytes([h[6], h[7]]),
        sender_mac: [h[8], h[9], h[10], h[11], h[12], h[13]],
        sender_be: u32::from_ne_bytes([h[14], h[15], h[16], h[17]]),
        target_be: u32::from_ne_bytes([h[24], h[25], h[26], h[27]]),
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
    let Some(mut next) = at::<u8>(ctx, ETH_HLEN + 6) else {
        return false;
    };
    let mut off = ETH_HLEN + IPV6_HLEN;
    for _ in 0..3 {
        if !matches!(next, IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS) {
            break;
        }
        // Past the headers made readable: treated as one rather than let through unread.
        let Some([nh, len]) = at::<[u8; 2]>(ctx, off) else {
            return true;
        };
        next = nh;
        off += (usize::from(len) + 1) * 8;
    }
    // Deeper than we look: treated as one rather than let through unread.
    if matches!(next, IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS) {
        return true;
    }
    // Type, code and checksum read whole: a one-byte read at a variable offset compiles to a
    // comparison the verifier does not take as a bound.
    next == IPPROTO_ICMPV6 && at::<[u8; 4]>(ctx, off).is_some_and(|h| h[0] == ND_ROUTER_ADVERT)
}
