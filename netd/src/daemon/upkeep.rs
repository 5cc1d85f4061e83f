//! The daemon's background work: following the host's addresses, collecting conntrack, and
//! repairing what was changed behind its back. Netlink change notifications wake the first
//! and the last at once; a period covers what a lost notification would hide.

use std::{sync::Arc, time::Duration};

use tokio::time::{interval, MissedTickBehavior};

use crate::{
    engine::linux::LinuxHost,
    link::events::{changed_or, ChangeCount},
};

/// Looks without a notification this often.
const BACKSTOP: Duration = Duration::from_secs(5);
const CONNTRACK_GC_EVERY: Duration = Duration::from_secs(10);

/// The host's address set (published ports answer on them, masquerade leaves from the
/// uplink's) and connection-tracking garbage collection.
pub async fn maintain(host: Arc<LinuxHost>, changes: Option<ChangeCount>) {
    tokio::spawn(collect_conntrack(Arc::clone(&host)));
    let mut changes = changes;
    let mut every = interval(BACKSTOP);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        changed_or(&mut changes, &mut every).await;
        if let Err(e) = host.refresh_local_addrs().await {
            log::warn!("refreshing host addresses: {e}");
        }
    }
}

async fn collect_conntrack(host: Arc<LinuxHost>) {
    let sweeper = match host.conntrack_sweeper() {
        Ok(s) => Arc::new(std::sync::Mutex::new(s)),
        Err(e) => {
            log::error!("conntrack garbage collection is off: {e}");
            return;
        }
    };
    let mut every = interval(CONNTRACK_GC_EVERY);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        // A blocking thread: reading a full table must not hold a runtime worker.
        let sweeper = Arc::clone(&sweeper);
        let removed = tokio::task::spawn_blocking(move || {
            let mut sweeper = sweeper.lock().unwrap_or_else(|p| p.into_inner());
            sweeper.gc(monotonic_ns())
        })
        .await
        .unwrap_or(0);
        if removed > 0 {
            log::debug!("conntrack gc removed {removed} entries");
        }
    }
}

/// Links deleted behind the daemon's back are made again, and containers whose namespace
/// died released, as soon as netlink tells of a change.
pub async fn repair(daemon: crate::shared::Shared, changes: Option<ChangeCount>) {
    let mut changes = changes;
    let mut every = interval(BACKSTOP);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        changed_or(&mut changes, &mut every).await;
        daemon.engine.lock().await.repair().await;
    }
}

/// CLOCK_MONOTONIC in ns, the clock of the datapath's last-seen times.
fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}
