//! Helpers for the privileged test tiers: a root check, and [`Lab`], a throwaway "host"
//! namespace with its own netd daemon, state dir and bpffs dir, removed on drop.

mod lab;
pub mod packet;
pub mod testrun;

pub use lab::{
    dns_script, netd_bin, peer_script, reach_script, vip_script, Lab, DNS_UPSTREAM_PORT,
    EXTERNAL_IP, UPLINK_IP,
};

/// Whether the test may run; prints `SKIP name: reason` when it may not. CI runs as root.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP {test}: needs root (CAP_NET_ADMIN, CAP_BPF)");
        return false;
    }
    true
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
