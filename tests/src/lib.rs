//! Helpers for the privileged test tiers: a root check, and [`Lab`], a throwaway "host"
//! namespace with its own netd daemon, state dir and bpffs dir, removed on drop.

pub mod child;
pub mod cluster;
pub mod cni;
pub mod docker;
mod lab;
pub mod lan;
pub mod packet;
pub mod podman;
pub mod testrun;

pub use lab::{
    dns_script, grown_netd_bin, netd_bin, peer_script, reach_script, vip_script, wait_until, Lab,
    DNS_UPSTREAM_PORT, EXTERNAL_IP, UPLINK_IP,
};

/// Set (to anything but `0`) by `.ci/run`: a privileged test that cannot run fails instead of
/// skipping, so that CI either runs every tier or fails.
pub const REQUIRE_PRIVILEGED: &str = "NETD_REQUIRE_PRIVILEGED";

/// Whether the test may run; prints `SKIP name: reason` when it may not, or panics when
/// [`REQUIRE_PRIVILEGED`] is set. CI runs as root.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    skip_unless(test, root, "needs root (CAP_NET_ADMIN, CAP_BPF)")
}

/// Whether etcd is installed (`cargo xtask test` installs it), as [`privileged`] does.
pub fn has_etcd(test: &str) -> bool {
    let found = std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    skip_unless(test, found, "needs etcd (Debian's etcd-server)")
}

/// `SKIP test: reason` and false when `can_run` is false, unless skipping is refused.
fn skip_unless(test: &str, can_run: bool, reason: &str) -> bool {
    if can_run {
        return true;
    }
    let required = std::env::var(REQUIRE_PRIVILEGED).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{test} cannot run ({reason}) and {REQUIRE_PRIVILEGED} is set"
    );
    println!("SKIP {test}: {reason}");
    false
}

/// A short name unique to this process and call, usable in interface and namespace names.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}-{}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The lines that `out` (a child's stdout or stderr) prints, sent to the returned channel as
/// they come; the channel closes at the end of the output.
pub fn lines_of(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
