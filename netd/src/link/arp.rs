//! ARP probes (RFC 5227): whether some machine on a LAN already answers for an address,
//! before netd gives it to a container there.

use std::{
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

const ETH_P_ARP: u16 = 0x0806;
const FRAME: usize = 60;

/// The MAC of whoever answers ARP for `ip` on `iface` within `wait`, asked with a probe from
/// `iface`'s own MAC and sender address 0.0.0.0, so that no neighbour cache learns anything.
/// Runs in the calling thread's namespace and blocks for up to `wait`.
pub fn probe(iface: &str, ip: Ipv4Addr, wait: Duration) -> io::Result<Option<[u8; 6]>> {
    let name = std::ffi::CString::new(iface).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated name; the call only reads it.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ARP.to_be()),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mac = hardware_address(&fd, &name)?;
    // SAFETY: a zeroed sockaddr_ll is valid; the fields set are the ones bind reads.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ARP.to_be();
    addr.sll_ifindex = ifindex as i32;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
    let sockaddr = (&addr as *const libc::sockaddr_ll).cast();
    // SAFETY: addr lives across both calls and len is its size.
    if unsafe { libc::bind(fd.as_raw_fd(), sockaddr, len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let frame = request(mac, ip);
    // SAFETY: frame and addr are live buffers of the sizes given.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            sockaddr,
            len,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 128];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        set_timeout(&fd, left)?;
        // SAFETY: buf is a live buffer of buf.len() bytes.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => return Ok(None),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            }
        }
        if let Some(owner) = reply_for(&buf[..n as usize], ip) {
            return Ok(Some(owner));
        }
    }
}

/// A broadcast ARP request for `ip` with sender address 0.0.0.0 (a probe).
fn request(mac: [u8; 6], ip: Ipv4Addr) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    // Ethernet, IPv4, 6- and 4-byte addresses, a request.
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    // Sender IP (28..32) stays 0.0.0.0, target MAC (32..38) unknown.
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// The sender MAC of `frame` if it is an ARP reply saying `ip` is there.
fn reply_for(frame: &[u8], ip: Ipv4Addr) -> Option<[u8; 6]> {
    if frame.len() < 42 || frame[12..14] != ETH_P_ARP.to_be_bytes() {
        return None;
    }
    let is_reply = frame[20..22] == [0, 2];
    (is_reply && frame[28..32] == ip.octets()).then(|| frame[22..28].try_into().unwrap())
}

fn hardware_address(fd: &OwnedFd, name: &std::ffi::CStr) -> io::Result<[u8; 6]> {
    // SAFETY: a zeroed ifreq is valid; the name fits (the kernel checked it above).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.to_bytes()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills the ifreq it is given.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR set the hwaddr member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    Ok(std::array::from_fn(|i| data[i] as u8))
}

fn set_timeout(fd: &OwnedFd, wait: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_usec: wait.subsec_micros().max(1) as libc::suseconds_t,
    };
    // SAFETY: tv lives across the call and the size given is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_asks_for_the_address_from_nowhere() {
        let f = request([2, 0, 0, 0, 0, 1], Ipv4Addr::new(192, 168, 0, 10));
        assert_eq!(&f[..6], &[0xff; 6]);
        assert_eq!(&f[28..32], &[0, 0, 0, 0], "sender 0.0.0.0");
        assert_eq!(&f[38..42], &[192, 168, 0, 10]);
        assert_eq!(&f[20..22], &[0, 1], "a request");
    }

    #[test]
    fn only_a_reply_for_the_address_counts() {
        let ip = Ipv4Addr::new(192, 168, 0, 10);
        let mut reply = request([2, 0, 0, 0, 0, 9], Ipv4Addr::new(0, 0, 0, 0));
        reply[20..22].copy_from_slice(&[0, 2]);
        reply[28..32].copy_from_slice(&ip.octets());
        assert_eq!(reply_for(&reply, ip), Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(reply_for(&reply, Ipv4Addr::new(192, 168, 0, 11)), None);
        // Someone else's probe for the same address is not an answer.
        assert_eq!(reply_for(&request([2, 0, 0, 0, 0, 9], ip), ip), None);
        assert_eq!(reply_for(&reply[..30], ip), None);
    }
}
