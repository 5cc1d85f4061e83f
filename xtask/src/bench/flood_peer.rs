//! The conntrack flood benchmark's own traffic: idle connections held through the flood, a
//! flood of new flows from spoofed sources, and new connections counted while it lasts.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// Spoofed sources: 198.18.0.0/15, the benchmarking range (RFC 2544), 131,072 addresses.
const SPOOFED_BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
const SPOOFED_ADDRS: u32 = 1 << 17;

/// Opens `count` connections to `to`, one exchange on each, prints `ready`; at `secs` after
/// the start, one more exchange on each: prints how many answered within [`ANSWER_WAIT`].
pub fn hold(to: SocketAddr, count: usize, secs: u64) -> Result<()> {
    let start = Instant::now();
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut s = connect_within(to, Duration::from_secs(10))?;
        s.set_read_timeout(Some(ANSWER_WAIT))?;
        exchange(&mut s).with_context(|| format!("first exchange with {to}"))?;
        held.push(s);
    }
    println!("ready");
    std::io::stdout().flush()?;
    std::thread::sleep(Duration::from_secs(secs).saturating_sub(start.elapsed()));
    // Ask all, then read all against one deadline: lost connections cost one wait, not one
    // each.
    let asked: Vec<bool> = held.iter_mut().map(|s| s.write_all(&[9]).is_ok()).collect();
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut kept = 0;
    for (s, asked) in held.iter_mut().zip(asked) {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut b = [0u8; 1];
        if asked
            && s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .is_ok()
            && s.read_exact(&mut b).is_ok()
        {
            kept += 1;
        }
    }
    println!("{kept}");
    Ok(())
}

/// How long a held connection may take to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// A connection to `to`, tried again until `wait` has passed: the server may be starting.
fn connect_within(to: SocketAddr, wait: Duration) -> Result<TcpStream> {
    let deadline = Instant::now() + wait;
    loop {
        match TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("connect to {to}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn exchange(s: &mut TcpStream) -> Result<()> {
    let mut b = [9u8; 1];
    s.write_all(&b)?;
    s.read_exact(&mut b)?;
    Ok(())
}

/// New connections to `to` for `secs`, each given a second to connect and answer, whatever
/// the flood does to them: (connections per second, attempts that failed).
pub fn crr_counted(to: SocketAddr, secs: u64) -> Result<(f64, u64)> {
    let start = Instant::now();
    let (mut ok, mut failed) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(secs) {
        let attempt = TcpStream::connect_timeout(&to, Duration::from_secs(1)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            let mut b = [7u8; 1];
            s.write_all(&b)?;
            s.read_exact(&mut b)?;
            super::peer::close_with_reset(s);
            Ok(())
        });
        match attempt {
            Ok(()) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    Ok((ok as f64 / start.elapsed().as_secs_f64(), failed))
}

/// `count` UDP datagrams to `udp` and `count` SYNs to `tcp`, interleaved, evenly over
/// `secs`, each from its own spoofed address and port: 2 x `count` new flows nobody
/// completes. Returns the packets sent.
pub fn flood(udp: SocketAddrV4, tcp: SocketAddrV4, count: u32, secs: u64) -> Result<u64> {
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        bail!("raw socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let start = Instant::now();
    let per_packet = Duration::from_secs(secs).as_secs_f64() / f64::from(count * 2);
    let mut sent = 0u64;
    for i in 0..count {
        let (src, sport) = spoofed(i);
        for (to, packet) in [
            (udp, udp_datagram(src, sport, udp)),
            (tcp, syn(src, sport, tcp, i)),
        ] {
            if send_raw(&socket, &packet, *to.ip()) {
                sent += 1;
            }
        }
        // Paced: a burst of 64 at most ahead of schedule.
        if i % 32 == 31 {
            let due = Duration::from_secs_f64(per_packet * f64::from((i + 1) * 2));
            std::thread::sleep(due.saturating_sub(start.elapsed()));
        }
    }
    Ok(sent)
}

/// The source of flood flow `i`: every address of the range, then again with the next port.
fn spoofed(i: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from(SPOOFED_BASE + i % SPOOFED_ADDRS),
        1024 + (i / SPOOFED_ADDRS) as u16,
    )
}

fn send_raw(socket: &OwnedFd, packet: &[u8], to: Ipv4Addr) -> bool {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(to).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: the buffer and address are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            std::ptr::from_ref(&addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    // A full queue (ENOBUFS) is part of flooding.
    n > 0
}

/// An IPv4 header for `l4` (the kernel fills in the ID and the header checksum).
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(l4);
    p
}

fn udp_datagram(src: Ipv4Addr, sport: u16, to: SocketAddrV4) -> Vec<u8> {
    let payload = b"flood";
    let len = (8 + payload.len()) as u16;
    let mut l4 = Vec::with_capacity(len as usize);
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&to.port().to_be_bytes());
    l4.extend_from_slice(&len.to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(payload);
    let sum = l4_checksum(src, *to.ip(), libc::IPPROTO_UDP as u8, &l4);
    l4[6..8].copy_from_slice(&sum.to_be_bytes());
    ipv4(src, *to.ip(), libc::IPPROTO_UDP as u8, &l4)
}

fn syn(src: Ipv4Addr, sport: u16, to: SocketAddrV4, seq: u32) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(20);
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&to.port().to_be_bytes());
    l4.extend_from_slice(&seq.wrapping_mul(2_654_435_761).to_be_bytes());
    l4.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x02]);
    l4.extend_from_slice(&64240u16.to_be_bytes());
    l4.extend_from_slice(&[0, 0, 0, 0]);
    let sum = l4_checksum(src, *to.ip(), libc::IPPROTO_TCP as u8, &l4);
    l4[16..18].copy_from_slice(&sum.to_be_bytes());
    ipv4(src, *to.ip(), libc::IPPROTO_TCP as u8, &l4)
}

/// The Internet checksum of `l4` with its pseudo-header.
fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> u16 {
    let mut data = Vec::with_capacity(12 + l4.len() + 1);
    data.extend_from_slice(&src.octets());
    data.extend_from_slice(&dst.octets());
    data.extend_from_slice(&[0, proto]);
    data.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    data.extend_from_slice(l4);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u32 = data
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let sum = !(sum as u16);
    // UDP sends an all-ones checksum for a computed zero (zero means none).
    if sum == 0 {
        0xffff
    } else {
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        let to = SocketAddrV4::new(Ipv4Addr::new(10, 98, 0, 1), 8080);
        let src = Ipv4Addr::new(198, 18, 3, 4);
        for (proto, packet) in [
            (libc::IPPROTO_UDP as u8, udp_datagram(src, 1234, to)),
            (libc::IPPROTO_TCP as u8, syn(src, 1234, to, 7)),
        ] {
            let l4 = &packet[20..];
            // A segment with its own checksum in sums to all ones: complemented, zero.
            assert_eq!(l4_checksum(src, *to.ip(), proto, l4), 0xffff);
        }
    }

    #[test]
    fn every_flood_flow_is_new() {
        let flows: std::collections::HashSet<_> = (0..SPOOFED_ADDRS * 3).map(spoofed).collect();
        assert_eq!(flows.len() as u32, SPOOFED_ADDRS * 3);
        let (first, last) = (spoofed(0).0, spoofed(SPOOFED_ADDRS - 1).0);
        assert_eq!(
            (first, last),
            ([198, 18, 0, 0].into(), [198, 19, 255, 255].into())
        );
    }
}
