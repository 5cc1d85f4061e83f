//! What the engine reads of the host it runs in: bound ports, addresses, the ephemeral
//! range. All of the calling thread's namespace, the daemon's.

use std::net::Ipv4Addr;

use crate::{config::port::Proto, sockdiag};

pub(super) fn bound_ports() -> Vec<(Proto, Ipv4Addr, u16)> {
    // The calling thread's namespace: the daemon's.
    let mut bound = Vec::new();
    for (proto, number) in [
        (Proto::Tcp, libc::IPPROTO_TCP),
        (Proto::Udp, libc::IPPROTO_UDP),
    ] {
        match sockdiag::bound(number as u8) {
            Ok(ports) => bound.extend(ports.into_iter().map(|(ip, port)| (proto, ip, port))),
            Err(e) => log::warn!("listing bound {proto} ports of the host: {e}"),
        }
    }
    bound
}

pub(super) fn has_address(ip: Ipv4Addr) -> bool {
    // The calling thread's namespace: the daemon's.
    ip.is_loopback()
        || nix::ifaddrs::getifaddrs().is_ok_and(|mut all| {
            all.any(|a| {
                a.address
                    .and_then(|s| s.as_sockaddr_in().map(|s| s.ip()))
                    .is_some_and(|a| a == ip)
            })
        })
}

pub(super) fn ephemeral_ports() -> (u16, u16) {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = range.split_whitespace().filter_map(|p| p.parse().ok());
    match (it.next(), it.next()) {
        (Some(lo), Some(hi)) if lo <= hi => (lo, hi),
        _ => (32768, 60999),
    }
}
