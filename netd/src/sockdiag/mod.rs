//! Which ports the host's own sockets hold: NETLINK_SOCK_DIAG dumps of listening TCP and
//! bound UDP sockets in the calling thread's namespace. Unlike reading /proc/net/tcp, which
//! walks the kernel's whole connection hash on every read(), a dump of listeners only walks
//! the listening table, so a publish costs microseconds whatever the host is doing.

use std::{
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST_DUMP: u16 = 0x1 | 0x300;
const TCP_LISTEN: u32 = 10;
/// An unconnected UDP socket is in TCP_CLOSE; a connected one holds its port too.
const UDP_BOUND: u32 = 7;
const UDP_CONNECTED: u32 = 1;
/// nlmsghdr (16) + inet_diag_req_v2 (56).
const REQUEST_LEN: usize = 16 + 56;

/// The IPv4 (address, port) of every socket of `protocol` (IPPROTO_TCP: listening;
/// IPPROTO_UDP: bound) of the calling thread's namespace. IPv6 sockets count where they
/// take IPv4 ports too: on `::` (unless v6only, which the dump does not tell: counted, to be
/// safe) as 0.0.0.0, on a v4-mapped address as that address.
pub fn bound(protocol: u8) -> io::Result<Vec<(Ipv4Addr, u16)>> {
    let states = if i32::from(protocol) == libc::IPPROTO_TCP {
        1 << TCP_LISTEN
    } else {
        (1 << UDP_BOUND) | (1 << UDP_CONNECTED)
    };
    let mut all = Vec::new();
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        all.extend(dump(family, protocol, states)?);
    }
    all.sort();
    all.dedup();
    Ok(all)
}

fn dump(family: u8, protocol: u8, states: u32) -> io::Result<Vec<(Ipv4Addr, u16)>> {
    // SAFETY: plain socket(2); the descriptor is owned by the OwnedFd at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let request = request(family, protocol, states);
    // SAFETY: sends `request`'s bytes on our socket (the kernel is the default peer).
    let sent = unsafe { libc::send(sock.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: receives into `buf`, at most its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        match parse(&buf[..n as usize], &mut found)? {
            Parsed::More => continue,
            Parsed::Done => return Ok(found),
        }
    }
}

fn request(family: u8, protocol: u8, states: u32) -> [u8; REQUEST_LEN] {
    let mut r = [0u8; REQUEST_LEN];
    r[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    r[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    r[6..8].copy_from_slice(&NLM_F_REQUEST_DUMP.to_ne_bytes());
    // inet_diag_req_v2: family, protocol, ext, pad, states, then a zero socket id (any).
    r[16] = family;
    r[17] = protocol;
    r[20..24].copy_from_slice(&states.to_ne_bytes());
    r
}

enum Parsed {
    More,
    Done,
}

/// Walks the netlink messages of one datagram; each inet_diag_msg adds its local address.
fn parse(mut data: &[u8], found: &mut Vec<(Ipv4Addr, u16)>) -> io::Result<Parsed> {
    while data.len() >= 16 {
        let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(data[4..6].try_into().expect("2 bytes"));
        if len < 16 || len > data.len() {
            return Err(io::Error::other("truncated sock_diag message"));
        }
        match kind {
            NLMSG_DONE => return Ok(Parsed::Done),
            NLMSG_ERROR => {
                let errno = i32::from_ne_bytes(data[16..20].try_into().expect("4 bytes"));
                return Err(io::Error::from_raw_os_error(-errno));
            }
            _ => found.extend(local_address(&data[16..len])),
        }
        // Messages are 4-byte aligned.
        let next = ((len + 3) & !3).min(data.len());
        data = &data[next..];
    }
    Ok(Parsed::More)
}

/// inet_diag_msg: family, state, timer, retrans, then the socket id: sport and dport (network
/// order), src and dst (16 bytes each).
fn local_address(msg: &[u8]) -> Option<(Ipv4Addr, u16)> {
    if msg.len() < 24 {
        return None;
    }
    let port = u16::from_be_bytes([msg[4], msg[5]]);
    let src: [u8; 16] = msg[8..24].try_into().ok()?;
    match i32::from(msg[0]) {
        libc::AF_INET => Some((Ipv4Addr::new(src[0], src[1], src[2], src[3]), port)),
        libc::AF_INET6 => {
            let v6 = std::net::Ipv6Addr::from(src);
            if v6.is_unspecified() {
                Some((Ipv4Addr::UNSPECIFIED, port))
            } else {
                v6.to_ipv4_mapped().map(|v4| (v4, port))
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(family: u8, port: u16, src: [u8; 16]) -> Vec<u8> {
        let len = 16 + 72;
        let mut m = vec![0u8; len];
        m[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m[16] = family;
        m[20..22].copy_from_slice(&port.to_be_bytes());
        m[24..40].copy_from_slice(&src);
        m
    }

    #[test]
    fn dump_messages_give_local_addresses_of_both_families() {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[127, 0, 0, 1]);
        let mut mapped = [0u8; 16];
        mapped[10..12].copy_from_slice(&[0xff, 0xff]);
        mapped[12..].copy_from_slice(&[10, 0, 0, 7]);
        let mut fe80 = [0u8; 16];
        fe80[..2].copy_from_slice(&[0xfe, 0x80]);
        let mut data = message(libc::AF_INET as u8, 8080, v4);
        data.extend(message(libc::AF_INET6 as u8, 53, [0; 16]));
        data.extend(message(libc::AF_INET6 as u8, 9000, mapped));
        data.extend(message(libc::AF_INET6 as u8, 9001, fe80));
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        data.extend(done);
        let mut found = Vec::new();
        assert!(matches!(parse(&data, &mut found), Ok(Parsed::Done)));
        assert_eq!(
            found,
            vec![
                (Ipv4Addr::LOCALHOST, 8080),
                (Ipv4Addr::UNSPECIFIED, 53),
                (Ipv4Addr::new(10, 0, 0, 7), 9000),
            ]
        );
    }

    #[test]
    fn an_error_message_is_an_error() {
        let mut m = vec![0u8; 36];
        m[0..4].copy_from_slice(&36u32.to_ne_bytes());
        m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m[16..20].copy_from_slice(&(-libc::EINVAL).to_ne_bytes());
        let err = parse(&m, &mut Vec::new()).err().expect("an error");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn a_listener_of_this_process_is_found() {
        // Runs in whatever namespace the test runs in; needs no privilege.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = bound(libc::IPPROTO_TCP as u8).unwrap();
        assert!(tcp.contains(&(Ipv4Addr::LOCALHOST, port)), "{tcp:?}");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let udp = bound(libc::IPPROTO_UDP as u8).unwrap();
        assert!(udp.contains(&(Ipv4Addr::LOCALHOST, port)), "{udp:?}");
    }
}
