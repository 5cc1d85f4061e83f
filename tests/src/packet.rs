//! A small packet builder and checker for program test-runs: Ethernet + IPv4 + TCP/UDP with
//! real checksums, and a parser that verifies them.

use std::net::{Ipv4Addr, SocketAddrV4};

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, segment: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
    fold(sum16(&pseudo) + sum16(segment))
}

/// Builds a frame; `tcp_flags` is ignored for UDP. `udp_checksum: false` sends 0 ("none").
pub struct Builder {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub proto: u8,
    pub tcp_flags: u8,
    pub payload: Vec<u8>,
    pub udp_checksum: bool,
    /// Raw value of the IPv4 flags/fragment-offset field.
    pub frag: u16,
    pub ttl: u8,
}

impl Builder {
    pub fn tcp(src: &str, dst: &str, flags: u8) -> Self {
        Self::new(src, dst, TCP, flags)
    }

    pub fn udp(src: &str, dst: &str) -> Self {
        Self::new(src, dst, UDP, 0)
    }

    fn new(src: &str, dst: &str, proto: u8, tcp_flags: u8) -> Self {
        Self {
            src: src.parse().expect("src ip:port"),
            dst: dst.parse().expect("dst ip:port"),
            proto,
            tcp_flags,
            payload: b"netd test payload".to_vec(),
            udp_checksum: true,
            frag: 0x4000,
            ttl: 64,
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&self.src.port().to_be_bytes());
        l4.extend_from_slice(&self.dst.port().to_be_bytes());
        if self.proto == TCP {
            l4.extend_from_slice(&1000u32.to_be_bytes());
            l4.extend_from_slice(&0u32.to_be_bytes());
            l4.extend_from_slice(&[0x50, self.tcp_flags, 0xff, 0xff, 0, 0, 0, 0]);
        } else {
            l4.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
        }
        l4.extend_from_slice(&self.payload);
        let csum = l4_checksum(*self.src.ip(), *self.dst.ip(), self.proto, &l4);
        let (off, csum) = if self.proto == TCP {
            (16, csum)
        } else if self.udp_checksum {
            (6, if csum == 0 { 0xffff } else { csum })
        } else {
            (6, 0)
        };
        l4[off..off + 2].copy_from_slice(&csum.to_be_bytes());
        let mut f = frame(*self.src.ip(), *self.dst.ip(), self.proto, self.frag, &l4);
        set_ttl(&mut f, self.ttl);
        f
    }
}

/// An unfragmented IPv4 frame cut in two fragments: the first with `first_len` bytes of the
/// IP payload (a multiple of 8), the second with the rest, both with the frame's
/// identification and valid IP checksums.
pub fn fragments(frame: &[u8], first_len: usize) -> (Vec<u8>, Vec<u8>) {
    let payload = &frame[34..];
    let part = |data: &[u8], frag: u16| {
        let mut f = frame[..34].to_vec();
        f.extend_from_slice(data);
        f[16..18].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        f[20..22].copy_from_slice(&frag.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = fold(sum16(&f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    };
    (
        part(&payload[..first_len], 0x2000),
        part(&payload[first_len..], (first_len / 8) as u16),
    )
}

/// Sets a frame's TTL, with its IP checksum.
pub fn set_ttl(frame: &mut [u8], ttl: u8) {
    frame[22] = ttl;
    frame[24..26].copy_from_slice(&[0, 0]);
    let c = fold(sum16(&frame[14..34]));
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// An ICMP error of `icmp_type`/`code` from `src` to `dst` about `about` (a frame: its IP
/// packet is embedded whole, as Linux embeds short packets). For "fragmentation needed"
/// `mtu` is the next hop's.
pub fn icmp_error(
    src: &str,
    dst: &str,
    (icmp_type, code): (u8, u8),
    mtu: u16,
    about: &[u8],
) -> Vec<u8> {
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse().expect("ip"), dst.parse().expect("ip"));
    let mut icmp = vec![icmp_type, code, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(&about[14..]);
    let csum = fold(sum16(&icmp));
    icmp[2..4].copy_from_slice(&csum.to_be_bytes());
    frame(src, dst, 1, 0, &icmp)
}

/// What a test checks in an ICMP error a program returned: its addresses, the packet it
/// embeds (as a frame of its own, parsed), its type and MTU, and the checksums that only the
/// error has (its own, over the whole message).
#[derive(Debug)]
pub struct ParsedError {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub icmp_type: u8,
    pub mtu: u16,
    pub ttl: u8,
    pub icmp_checksum_ok: bool,
    /// The embedded packet as a frame (with the error's Ethernet header), and parsed as TCP
    /// or UDP.
    pub inner: Vec<u8>,
    pub embedded: Parsed,
}

pub fn parse_error(frame: &[u8]) -> ParsedError {
    let ip = &frame[14..34];
    let icmp = &frame[34..];
    let mut inner = frame[..14].to_vec();
    inner.extend_from_slice(&icmp[8..]);
    ParsedError {
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        icmp_type: icmp[0],
        mtu: u16::from_be_bytes([icmp[6], icmp[7]]),
        ttl: ip[8],
        icmp_checksum_ok: fold(sum16(ip)) == 0 && fold(sum16(icmp)) == 0,
        embedded: parse(&inner),
        inner,
    }
}

/// Ethernet and IPv4 headers (valid checksum) around an L4 segment.
fn frame(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34]);
    ip.extend_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&[64, proto, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let ip_csum = fold(sum16(&ip));
    ip[10..12].copy_from_slice(&ip_csum.to_be_bytes());
    let mut frame = vec![
        0x02, 0x42, 0xac, 0x11, 0, 1, 0x02, 0x42, 0xac, 0x11, 0, 2, 0x08, 0x00,
    ];
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(l4);
    frame
}

pub const BROADCAST: [u8; 6] = [0xff; 6];

/// The frame with other destination and source MACs.
pub fn with_macs(mut frame: Vec<u8>, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame
}

/// A raw Ethernet frame of any ethertype.
pub fn raw_ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An Ethernet/IPv4 ARP request (`op` 1, broadcast) or reply (`op` 2, to `target_mac`).
pub fn arp(
    op: u16,
    sender_mac: [u8; 6],
    sender: &str,
    target_mac: [u8; 6],
    target: &str,
) -> Vec<u8> {
    let ip = |s: &str| s.parse::<Ipv4Addr>().expect("ip").octets();
    let mut body = vec![0, 1, 8, 0, 6, 4];
    body.extend_from_slice(&op.to_be_bytes());
    body.extend_from_slice(&sender_mac);
    body.extend_from_slice(&ip(sender));
    body.extend_from_slice(&target_mac);
    body.extend_from_slice(&ip(target));
    let dst = if op == 1 { BROADCAST } else { target_mac };
    raw_ethernet(dst, sender_mac, 0x0806, &body)
}

/// An IPv6 packet from fe80::1 to ff02::1 carrying ICMPv6 of `icmp_type` (134: router
/// advertisement), behind a hop-by-hop options header when asked.
pub fn icmpv6(src_mac: [u8; 6], icmp_type: u8, hop_by_hop: bool) -> Vec<u8> {
    let icmp = [
        icmp_type, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut ext = Vec::new();
    if hop_by_hop {
        // Next header ICMPv6, length 0 (8 bytes), PadN.
        ext.extend_from_slice(&[58, 0, 1, 4, 0, 0, 0, 0]);
    }
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&((ext.len() + icmp.len()) as u16).to_be_bytes());
    ip.push(if hop_by_hop { 0 } else { 58 });
    ip.push(255);
    let mut src = [0u8; 16];
    src[0..2].copy_from_slice(&[0xfe, 0x80]);
    src[15] = 1;
    let mut dst = [0u8; 16];
    dst[0..2].copy_from_slice(&[0xff, 0x02]);
    dst[15] = 1;
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(&ext);
    ip.extend_from_slice(&icmp);
    raw_ethernet([0x33, 0x33, 0, 0, 0, 1], src_mac, 0x86dd, &ip)
}

/// An ICMP echo request (`reply: false`) or reply with identifier `id`.
pub fn icmp_echo(src: &str, dst: &str, id: u16, reply: bool) -> Vec<u8> {
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse().expect("ip"), dst.parse().expect("ip"));
    let mut icmp = vec![if reply { 0 } else { 8 }, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&7u16.to_be_bytes());
    icmp.extend_from_slice(b"netd ping");
    let csum = fold(sum16(&icmp));
    icmp[2..4].copy_from_slice(&csum.to_be_bytes());
    frame(src, dst, 1, 0x4000, &icmp)
}

/// Source, destination and identifier of an ICMP echo frame, and whether both checksums hold.
pub fn parse_icmp(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr, u16, bool) {
    let ip = &frame[14..34];
    let icmp = &frame[34..];
    let ok = fold(sum16(ip)) == 0 && fold(sum16(icmp)) == 0;
    (
        Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        u16::from_be_bytes([icmp[4], icmp[5]]),
        ok,
    )
}

/// What a test checks in a frame a program returned.
#[derive(Debug)]
pub struct Parsed {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub dmac: [u8; 6],
    pub smac: [u8; 6],
    pub ip_checksum_ok: bool,
    pub l4_checksum_ok: bool,
    pub l4_checksum: u16,
}

pub fn parse(frame: &[u8]) -> Parsed {
    let ip = &frame[14..34];
    let proto = ip[9];
    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let l4 = &frame[34..];
    let port = |o: usize| u16::from_be_bytes([l4[o], l4[o + 1]]);
    let off = if proto == TCP { 16 } else { 6 };
    let stored = port(off);
    // Summing a segment with its own checksum in place gives 0 when the checksum is right.
    let l4_checksum_ok =
        (proto == UDP && stored == 0) || l4_checksum(src_ip, dst_ip, proto, l4) == 0;
    Parsed {
        src: SocketAddrV4::new(src_ip, port(0)),
        dst: SocketAddrV4::new(dst_ip, port(2)),
        dmac: frame[0..6].try_into().unwrap(),
        smac: frame[6..12].try_into().unwrap(),
        ip_checksum_ok: fold(sum16(ip)) == 0,
        l4_checksum_ok,
        l4_checksum: stored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_frames_have_valid_checksums() {
        for frame in [
            Builder::tcp("10.0.0.1:1000", "10.0.0.2:80", SYN).build(),
            Builder::udp("10.0.0.1:1000", "10.0.0.2:53").build(),
        ] {
            let p = parse(&frame);
            assert!(p.ip_checksum_ok && p.l4_checksum_ok, "{p:?}");
        }
        let mut bad = Builder::tcp("10.0.0.1:1000", "10.0.0.2:80", SYN).build();
        bad[30] ^= 1;
        let p = parse(&bad);
        assert!(!p.ip_checksum_ok && !p.l4_checksum_ok);
    }
}
