//! The cgroup socket hooks that let processes of the host reach published ports, attached to
//! the root of the cgroup2 hierarchy with their links pinned under the daemon's bpffs dir.

use std::{
    fs,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use aya::programs::{
    links::{FdLink, PinnedLink},
    CgroupAttachMode, CgroupSockAddr,
};
use netd_common::{maps, nat::DatapathConfig};

use super::{Datapath, DatapathError};

pub(super) const SOCKET_PROGRAMS: [&str; 4] = [
    maps::PROG_CONNECT4,
    maps::PROG_SENDMSG4,
    maps::PROG_RECVMSG4,
    maps::PROG_GETPEERNAME4,
];

pub(super) fn sock_addr<'a>(
    ebpf: &'a mut aya::Ebpf,
    name: &'static str,
) -> Result<&'a mut CgroupSockAddr, DatapathError> {
    super::loader::program(ebpf, name)
}

/// Where cgroup2 is mounted (not always /sys/fs/cgroup: hybrid layouts put it elsewhere).
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, path, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(path))
    })
}

/// The cookie of the calling thread's network namespace (SO_NETNS_COOKIE, Linux 5.14).
pub fn netns_cookie() -> std::io::Result<u64> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    const SO_NETNS_COOKIE: libc::c_int = 71;
    // SAFETY: getsockopt writes at most `len` bytes into `cookie`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            std::ptr::from_mut(&mut cookie).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cookie)
}

impl Datapath {
    /// Attaches the socket hooks for the calling thread's namespace. Links pinned by an
    /// earlier run are replaced, so the hooks are never attached twice.
    pub fn attach_socket_hooks(&mut self, cgroup: &Path) -> Result<(), DatapathError> {
        let cookie = netns_cookie().map_err(|source| DatapathError::Bpffs {
            op: "read the namespace cookie of",
            path: "SO_NETNS_COOKIE".into(),
            source,
        })?;
        self.config
            .set(
                0,
                DatapathConfig {
                    netns_cookie: cookie,
                },
                0,
            )
            .map_err(|source| DatapathError::Map {
                name: maps::CONFIG,
                source,
            })?;
        let cgroup_dir = fs::File::open(cgroup).map_err(|source| DatapathError::Bpffs {
            op: "open cgroup",
            path: cgroup.to_path_buf(),
            source,
        })?;
        let links = self.pin_dir.join("links");
        fs::create_dir_all(&links).map_err(|source| DatapathError::Bpffs {
            op: "create",
            path: links.clone(),
            source,
        })?;
        for name in SOCKET_PROGRAMS {
            let pin = links.join(name);
            // An earlier run's link that runs this program already (the programs were
            // reused) stays: no moment without the hook.
            let linked = PinnedLink::from_pin(&pin)
                .ok()
                .and_then(|l| FdLink::from(l).info().ok())
                .map(|info| info.program_id());
            if linked.is_some() && linked == self.program_id(name) {
                continue;
            }
            // Unpinning an earlier run's link detaches its program.
            let _ = fs::remove_file(&pin);
            let err = |op: &'static str| {
                move |e: Box<dyn std::error::Error + Send + Sync>| DatapathError::Port {
                    op,
                    port: name.to_string(),
                    source: e,
                }
            };
            let program = sock_addr(&mut self.ebpf, name)?;
            // A bpf_link attachment takes no flags: links to one cgroup always coexist, so
            // several daemons (in several namespaces) each attach their own.
            let id = program
                .attach(&cgroup_dir, CgroupAttachMode::Single)
                .map_err(|e| err("attach socket hook")(e.into()))?;
            let link = program
                .take_link(id)
                .map_err(|e| err("take link")(e.into()))?;
            let link = FdLink::try_from(link).map_err(|e| err("link fd")(e.into()))?;
            link.pin(&pin).map_err(|e| err("pin")(e.into()))?;
        }
        Ok(())
    }
}
