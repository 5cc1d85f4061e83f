//! Socket-level translation for processes of the host: `connect`/`sendmsg` to a published
//! port (on 127.0.0.1 or a host address) go straight to the container, and to a virtual IP
//! straight to one of its backends; `getpeername`/`recvmsg` give back the address the process
//! asked for. No proxy, no route_localnet.
//!
//! The hooks sit on the root cgroup and so see every process of the machine; only sockets of
//! the daemon's own network namespace are translated.

use aya_ebpf::{
    bindings::bpf_sock_addr,
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    programs::SockAddrContext,
    EbpfContext,
};
use netd_common::{
    lb::MAGLEV_SIZE,
    nat::{PortKey, SockKey, SockOrig, PROTO_TCP, PROTO_UDP},
};

use crate::{
    maps::{CONFIG, LOCAL_ADDRS, PORTS, SOCK_REVNAT},
    vip,
};

#[inline(always)]
fn in_our_netns(ctx: &SockAddrContext) -> bool {
    let Some(cfg) = CONFIG.get(0) else {
        return false;
    };
    // SAFETY: a helper every sock_addr program may call.
    cfg.netns_cookie != 0 && unsafe { bpf_get_netns_cookie(ctx.as_ptr()) } == cfg.netns_cookie
}

/// Rewrites the destination of a socket call to a published port; remembers the original
/// for the reverse hooks.
#[inline(always)]
pub fn translate(ctx: &SockAddrContext, proto: u8) {
    if !in_our_netns(ctx) {
        return;
    }
    // SAFETY: the kernel hands every sock_addr program a valid bpf_sock_addr.
    let sa = unsafe { &mut *ctx.sock_addr };
    let addr_be = sa.user_ip4;
    let port_be = sa.user_port as u16;
    // SAFETY: a helper every sock_addr program may call.
    let cookie = || unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    if let Some(vip) = vip::at(addr_be) {
        // The socket is the connection: its cookie places it in the Maglev table.
        let Some(backend) = vip::pick(vip, || (cookie() % MAGLEV_SIZE as u64) as usize) else {
            return;
        };
        vip::count(vip, backend);
        redirect(sa, cookie(), (addr_be, port_be), (backend, port_be));
        return;
    }
    let loopback = addr_be.to_ne_bytes()[0] == 127;
    // SAFETY: read-only lookups of plain values.
    let local = loopback || unsafe { LOCAL_ADDRS.get(addr_be) }.is_some();
    if !local {
        return;
    }
    let mut key = PortKey {
        addr_be,
        port_be,
        proto,
        _pad: 0,
    };
    let target = match unsafe { PORTS.get(key) } {
        Some(t) => *t,
        None => {
            key.addr_be = 0;
            match unsafe { PORTS.get(key) } {
                Some(t) => *t,
                None => return,
            }
        }
    };
    redirect(
        sa,
        cookie(),
        (addr_be, port_be),
        (target.addr_be, target.port_be),
    );
}

/// Sends the socket call to `to` instead of `from` (address and port, network byte order),
/// remembering `from` for the reverse hooks.
#[inline(always)]
fn redirect(sa: &mut bpf_sock_addr, cookie: u64, from: (u32, u16), to: (u32, u16)) {
    let rev = SockKey {
        cookie,
        addr_be: to.0,
        port_be: to.1,
        _pad: 0,
    };
    let orig = SockOrig {
        addr_be: from.0,
        port_be: from.1,
        _pad: 0,
    };
    if SOCK_REVNAT.insert(rev, orig, 0).is_ok() {
        sa.user_ip4 = to.0;
        sa.user_port = u32::from(to.1);
    }
}

/// Gives back the published address a socket asked for in place of the container's.
#[inline(always)]
pub fn reverse(ctx: &SockAddrContext) {
    if !in_our_netns(ctx) {
        return;
    }
    // SAFETY: the kernel hands every sock_addr program a valid bpf_sock_addr.
    let sa = unsafe { &mut *ctx.sock_addr };
    let key = SockKey {
        cookie: unsafe { bpf_get_socket_cookie(ctx.as_ptr()) },
        addr_be: sa.user_ip4,
        port_be: sa.user_port as u16,
        _pad: 0,
    };
    // SAFETY: read-only lookup of a plain value.
    if let Some(orig) = unsafe { SOCK_REVNAT.get(key) } {
        sa.user_ip4 = orig.addr_be;
        sa.user_port = u32::from(orig.port_be);
    }
}

/// The protocol of a socket call: TCP for stream sockets, UDP for datagram ones.
#[inline(always)]
pub fn proto(ctx: &SockAddrContext) -> u8 {
    // SAFETY: the kernel hands every sock_addr program a valid bpf_sock_addr.
    let sa = unsafe { &*ctx.sock_addr };
    if sa.type_ == 2 {
        PROTO_UDP
    } else {
        PROTO_TCP
    }
}
