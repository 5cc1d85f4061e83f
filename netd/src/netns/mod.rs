//! Network namespaces: create one bind-mounted at a path (as `ip netns add` does, but under the
//! daemon's state dir), remove it, enter one, and open sockets inside one.

use std::{
    fs::{self, File},
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use nix::{
    mount::{mount, umount2, MntFlags, MsFlags},
    sched::{setns, unshare, CloneFlags},
    sys::statfs::{statfs, NSFS_MAGIC},
};

mod identity;
pub use identity::{NsId, Protected};

fn nix_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Creates a new network namespace and bind-mounts it at `path`. The namespace lives as long
/// as the mount, whatever process created it.
pub fn create(path: &Path) -> io::Result<()> {
    File::create(path)?;
    let target = path.to_path_buf();
    // A fresh thread, so that the unshare does not move any thread of the runtime.
    let result = std::thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(nix_io)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(nix_io)
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?;
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result
}

/// Bind-mounts the namespace a process is in (`from`, its `/proc/PID/ns/net`) at `path`
/// again, after the mount was removed behind the daemon's back while the process kept the
/// namespace alive.
pub fn bind(from: &Path, path: &Path) -> io::Result<()> {
    if !path.exists() {
        File::create(path)?;
    }
    mount(
        Some(from),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(nix_io)
}

/// Unmounts and removes a namespace made by [`create`]. The namespace itself goes away with the
/// last process or mount that holds it. Missing or already unmounted paths are fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(nix_io(e)),
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether `path` is a live namespace (an nsfs mount), not just the file left behind.
pub fn is_namespace(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Moves the calling thread into the namespace at `path`.
pub fn enter(path: &Path) -> io::Result<()> {
    let ns = File::open(path)?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(nix_io)
}

/// Opens a NETLINK_ROUTE socket in the calling thread's namespace.
pub fn netlink_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the fd is owned by the returned OwnedFd.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a NETLINK_ROUTE socket that lives in the namespace at `path`; a socket stays in the
/// namespace it was created in, whichever thread uses it later.
pub fn netlink_socket_in(path: &Path) -> io::Result<OwnedFd> {
    let path = path.to_path_buf();
    std::thread::spawn(move || -> io::Result<OwnedFd> {
        enter(&path)?;
        netlink_socket()
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}

/// A UDP socket and a TCP listener bound to `addr` in the namespace at `path`, both
/// non-blocking (for tokio): a server there, run by the daemon. Bound with IP_FREEBIND: a
/// runtime's namespace may not have `lo` up yet (its loopback plugin may come later), and
/// the server serves once it is.
pub fn sockets_in(
    path: &Path,
    addr: std::net::SocketAddrV4,
) -> io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    use nix::sys::socket::{
        bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
        SockaddrIn,
    };
    let path = path.to_path_buf();
    std::thread::spawn(move || -> io::Result<_> {
        enter(&path)?;
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        let at = SockaddrIn::from(addr);
        let open = |kind| -> io::Result<OwnedFd> {
            let fd = socket(AddressFamily::Inet, kind, flags, None).map_err(nix_io)?;
            setsockopt(&fd, sockopt::IpFreebind, &true).map_err(nix_io)?;
            setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(nix_io)?;
            bind(fd.as_raw_fd(), &at).map_err(nix_io)?;
            Ok(fd)
        };
        let udp = open(SockType::Datagram)?;
        let tcp = open(SockType::Stream)?;
        listen(&tcp, Backlog::new(128).map_err(nix_io)?).map_err(nix_io)?;
        Ok((udp.into(), tcp.into()))
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}

/// Switches IPv6 off on interface `ifname` of the namespace at `path`. A kernel without IPv6
/// has nothing to switch off.
pub fn disable_ipv6_in(path: &Path, ifname: &str) -> io::Result<()> {
    let path = path.to_path_buf();
    // /proc/sys/net is the namespace of the thread that opens it: a fresh one, moved there.
    let sysctl = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    std::thread::spawn(move || -> io::Result<()> {
        enter(&path)?;
        match fs::write(&sysctl, "1") {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}

/// Waits for changes of the calling process's mount table (a namespace's mount removed),
/// calling `changed` after each: the kernel flags `/proc/self/mountinfo` with POLLPRI when
/// anything is mounted or unmounted. Returns only on an error of the poll.
pub async fn watch_mounts(changed: impl Fn()) -> io::Result<()> {
    use tokio::io::{unix::AsyncFd, Interest};
    let file = File::open("/proc/self/mountinfo")?;
    // SAFETY: the AsyncFd owns the File, whose descriptor stays open and the same until the
    // AsyncFd drops it.
    let table = unsafe { AsyncFd::register_with_interest(file, Interest::PRIORITY) }
        .map_err(|e| io::Error::other(e.to_string()))?;
    loop {
        let mut ready = table.ready(Interest::PRIORITY).await?;
        ready.clear_ready();
        changed();
    }
}
