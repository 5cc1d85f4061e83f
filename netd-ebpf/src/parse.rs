//! Bounds-checked header access. Every read goes through `bpf_skb_load_bytes`, which fails on
//! a short packet instead of reading past it.

use aya_ebpf::programs::TcContext;
use netd_common::nat::{CtKey, PROTO_ICMP, PROTO_TCP, PROTO_UDP};

pub const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
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

/// `None` for anything netd does not translate: non-IPv4, other protocols, fragments (only the
/// first carries ports, and rewriting it alone would break reassembly), malformed headers.
#[inline(always)]
pub fn l4_packet(ctx: &TcContext) -> Option<L4Packet> {
    let eth_type = u16::from_be(ctx.load::<u16>(12).ok()?);
    if eth_type != ETH_P_IP {
        return None;
    }
    let ver_ihl: u8 = ctx.load(ETH_HLEN).ok()?;
    let ihl = usize::from(ver_ihl & 0x0f) * 4;
    if ver_ihl >> 4 != 4 || ihl < 20 {
        return None;
    }
    let frag = u16::from_be(ctx.load::<u16>(ETH_HLEN + 6).ok()?);
    if frag & 0x3fff != 0 {
        return None;
    }
    let proto: u8 = ctx.load(ETH_HLEN + 9).ok()?;
    let l4_len = match proto {
        PROTO_TCP => 20,
        PROTO_UDP | PROTO_ICMP => 8,
        _ => return None,
    };
    let tot_len = usize::from(u16::from_be(ctx.load::<u16>(ETH_HLEN + 2).ok()?));
    let l4_off = ETH_HLEN + ihl;
    if tot_len < ihl + l4_len || (ctx.len() as usize) < l4_off + l4_len {
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
        saddr_be: ctx.load(ETH_HLEN + IP_SADDR).ok()?,
        daddr_be: ctx.load(ETH_HLEN + IP_DADDR).ok()?,
        sport_be,
        dport_be,
        tcp_flags,
    })
}
