//! Real container runtimes in lab namespaces, for the end-to-end tests and the benchmarks:
//! a dockerd of the lab's own ([`docker::Dockerd`]), the busybox-static image their containers
//! run, and the teardown that leaves no process, mount or cgroup behind.

pub mod containerd;
pub mod docker;
pub mod etcd;
mod rootfs;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

pub use rootfs::busybox_rootfs;

/// A lab step that failed, with what it was doing.
#[derive(Debug)]
pub struct LabError(pub String);

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LabError {}

pub type Result<T> = std::result::Result<T, LabError>;

/// Polls `ready` every 50 ms until it holds (true) or `limit` has passed (false).
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes a cgroup and its children, waiting (bounded) for killed tasks to leave them.
pub fn remove_cgroup(dir: &Path) {
    wait_until(Duration::from_secs(10), || remove_cgroup_once(dir));
}

fn remove_cgroup_once(dir: &Path) -> bool {
    if !dir.exists() {
        return true;
    }
    for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if child.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_once(&child.path());
        }
    }
    std::fs::remove_dir(dir).is_ok()
}

/// Removes cgroup `name` (a top-level one) from every controller's hierarchy.
pub fn remove_cgroup_everywhere(name: &str) {
    for controller in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        remove_cgroup(&controller.path().join(name.trim_start_matches('/')));
    }
}

/// SIGKILLs every process whose command line mentions `root`, or that lives in one of the
/// network namespaces `netns` (files bind-mounted by a runtime).
pub fn kill_processes_of(root: &Path, netns: &[PathBuf]) {
    use std::os::unix::fs::MetadataExt;
    let root = root.to_string_lossy().into_owned();
    let namespaces: Vec<(u64, u64)> = netns
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    for proc in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = proc.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let cmdline = std::fs::read(proc.path().join("cmdline")).unwrap_or_default();
        let ours = String::from_utf8_lossy(&cmdline).contains(&root);
        let inside = std::fs::metadata(proc.path().join("ns/net"))
            .is_ok_and(|m| namespaces.contains(&(m.dev(), m.ino())));
        if ours || inside {
            // SAFETY: plain kill(2) on a process of this lab's runtime.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Unmounts everything under `root`, deepest first.
pub fn unmount_under(root: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(root))
        .collect();
    points.sort();
    for point in points.iter().rev() {
        let Ok(c) = std::ffi::CString::new(point.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: umount2 on a path under the lab's root; MNT_DETACH for one still busy.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}
