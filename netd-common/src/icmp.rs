//! ICMP errors about translated connections. An error (destination unreachable, time
//! exceeded, parameter problem) carries the start of the packet it is about: that packet's
//! IPv4 header and the first 8 bytes of its L4 header (RFC 792). When that packet was
//! translated, the error names addresses and ports its receiver never used, and the
//! receiver's stack drops it: path-MTU discovery breaks, and so do traceroute and "port
//! unreachable". The datapath rewrites the embedded packet back to what its receiver sent,
//! with every checksum the rewrite touches. The logic is pure, so that it is unit-tested
//! here and run as is by the programs.

use crate::nat::{CtKey, PROTO_ICMP, PROTO_TCP, PROTO_UDP};

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
pub const ICMP_PARAMETER_PROBLEM: u8 = 12;

/// The ICMP header of an error: type, code, checksum and 4 bytes (unused, or the next hop's
/// MTU for "fragmentation needed").
pub const ICMP_HLEN: usize = 8;

/// What every error carries and the datapath rewrites: an IPv4 header without options and
/// the first 8 bytes of its L4 header (ports, and for UDP and echo the checksum too).
pub const EMBEDDED_LEN: usize = 28;

/// Offset of a TCP checksum from the start of the embedded packet: past the 8 bytes an
/// error must carry, present only when the sender included more (Linux includes up to 576
/// bytes of the packet).
pub const EMBEDDED_TCP_CSUM: usize = 20 + 16;

/// The ICMP types that carry an embedded packet and are translated with it.
#[inline(always)]
pub fn is_error(icmp_type: u8) -> bool {
    matches!(
        icmp_type,
        ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED | ICMP_PARAMETER_PROBLEM
    )
}

/// The tuple of the embedded packet as it was on the wire (its direction, not the error's),
/// in the form conntrack keys use (for echo the identifier plays a port, see
/// `parse::L4Packet`). `None` for what carries no ports: other protocols, IP options, a
/// fragment other than the first.
#[inline(always)]
pub fn embedded_tuple(h: &[u8; EMBEDDED_LEN]) -> Option<CtKey> {
    let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    if h[0] != 0x45 || frag_offset != 0 {
        return None;
    }
    let be16 = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
    let (sport_be, dport_be) = match h[9] {
        PROTO_TCP | PROTO_UDP => (be16(20), be16(22)),
        PROTO_ICMP => match h[20] {
            ICMP_ECHO_REQUEST => (be16(24), 0),
            ICMP_ECHO_REPLY => (0, be16(24)),
            _ => return None,
        },
        _ => return None,
    };
    Some(CtKey {
        saddr_be: u32::from_ne_bytes([h[12], h[13], h[14], h[15]]),
        daddr_be: u32::from_ne_bytes([h[16], h[17], h[18], h[19]]),
        sport_be,
        dport_be,
        proto: h[9],
        _pad: [0; 3],
    })
}

/// The embedded TCP checksum, when the error includes it. Not an `Option`: the programs run
/// this code, and LLVM reads the undefined payload of a `None` into registers the verifier
/// refuses.
#[derive(Clone, Copy)]
pub struct TcpCsum {
    pub present: bool,
    pub value: [u8; 2],
}

/// The embedded packet rewritten to the tuple `to`, with its IP checksum, its L4 checksum
/// where it carries one (UDP, echo; a UDP checksum of 0 stays "none") and the embedded TCP
/// checksum when present. `icmp_csum` is the error's own checksum, which covers all of it.
/// Checksums in wire order, as read from the packet.
pub struct Rewritten {
    pub header: [u8; EMBEDDED_LEN],
    pub tcp_csum: TcpCsum,
    pub icmp_csum: [u8; 2],
}

pub fn rewrite_embedded(
    old: &[u8; EMBEDDED_LEN],
    old_tcp_csum: TcpCsum,
    icmp_csum: [u8; 2],
    to: &CtKey,
) -> Rewritten {
    // Sums of word changes (RFC 1624) kept in scalars: byte arrays of the words cost the
    // programs stack they do not have.
    let word = |h: &[u8; EMBEDDED_LEN], i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let mut new = *old;
    new[12..16].copy_from_slice(&to.saddr_be.to_ne_bytes());
    new[16..20].copy_from_slice(&to.daddr_be.to_ne_bytes());
    let mut addrs = 0;
    let mut i = 12;
    while i < 20 {
        addrs = change(addrs, word(old, i), word(&new, i));
        i += 2;
    }
    // What the error's own checksum sees change, word by word.
    let ip_csum = apply(word(old, 10), addrs);
    new[10..12].copy_from_slice(&ip_csum.to_be_bytes());
    let mut icmp = change(addrs, word(old, 10), ip_csum);
    let mut tcp_csum = old_tcp_csum;
    if old[9] == PROTO_TCP || old[9] == PROTO_UDP {
        new[20..22].copy_from_slice(&to.sport_be.to_ne_bytes());
        new[22..24].copy_from_slice(&to.dport_be.to_ne_bytes());
        let sport = change(0, word(old, 20), word(&new, 20));
        let ports = change(sport, word(old, 22), word(&new, 22));
        icmp = fold(icmp + ports);
        // The L4 checksum covers the pseudo header's addresses and the ports.
        let l4 = fold(addrs + ports);
        if old[9] == PROTO_UDP {
            let stored = word(old, 26);
            // 0 means "no checksum"; a computed 0 is sent as its other form.
            if stored != 0 {
                let mut c = apply(stored, l4);
                if c == 0 {
                    c = 0xffff;
                }
                new[26..28].copy_from_slice(&c.to_be_bytes());
                icmp = change(icmp, stored, c);
            }
        } else if old_tcp_csum.present {
            let stored = u16::from_be_bytes(old_tcp_csum.value);
            let c = apply(stored, l4);
            tcp_csum.value = c.to_be_bytes();
            icmp = change(icmp, stored, c);
        }
    } else {
        // Echo: the identifier is whichever "port" is set; no pseudo header.
        new[24..26].copy_from_slice(&(to.sport_be | to.dport_be).to_ne_bytes());
        let id = change(0, word(old, 24), word(&new, 24));
        icmp = fold(icmp + id);
        let c = apply(word(old, 22), id);
        new[22..24].copy_from_slice(&c.to_be_bytes());
        icmp = change(icmp, word(old, 22), c);
    }
    Rewritten {
        header: new,
        tcp_csum,
        icmp_csum: apply(u16::from_be_bytes(icmp_csum), icmp).to_be_bytes(),
    }
}

/// `sum` plus the change of one 16-bit word from `old` to `new` (~m + m'), folded.
#[inline(always)]
fn change(sum: u32, old: u16, new: u16) -> u32 {
    fold(sum + u32::from(!old) + u32::from(new))
}

#[inline(always)]
fn fold(sum: u32) -> u32 {
    let sum = (sum & 0xffff) + (sum >> 16);
    (sum & 0xffff) + (sum >> 16)
}

/// The checksum `csum` after the changes summed in `changes`: HC' = ~(~HC + Σ(~m + m')).
#[inline(always)]
fn apply(csum: u16, changes: u32) -> u16 {
    !(fold(u32::from(!csum) + changes) as u16)
}

/// The internet checksum `csum` after the 16-bit words `old` of the data it covers became
/// `new` (RFC 1624). Lengths are even and equal.
pub fn replace(csum: [u8; 2], old: &[u8], new: &[u8]) -> [u8; 2] {
    let mut sum = 0;
    let mut i = 0;
    while i + 1 < old.len() && i + 1 < new.len() {
        sum = change(
            sum,
            u16::from_be_bytes([old[i], old[i + 1]]),
            u16::from_be_bytes([new[i], new[i + 1]]),
        );
        i += 2;
    }
    apply(u16::from_be_bytes(csum), sum).to_be_bytes()
}

/// How an error's outer addresses change with its embedded packet. `error_saddr_be` is who
/// sent the error: when that is the embedded packet's destination itself (the peer said
/// "port unreachable"), it becomes the destination the receiver used.
#[inline(always)]
pub fn outer_addresses(error_saddr_be: u32, embedded: &CtKey, rewritten: &CtKey) -> (u32, u32) {
    let saddr_be = if error_saddr_be == embedded.daddr_be {
        rewritten.daddr_be
    } else {
        error_saddr_be
    };
    // The error goes to whoever sent the embedded packet.
    (saddr_be, rewritten.saddr_be)
}

#[cfg(test)]
#[path = "icmp_tests.rs"]
mod tests;
