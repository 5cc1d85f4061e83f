//! Who keeps a node's lease alive. The daemon does not do it itself: a host whose daemon
//! crashed or restarts still forwards its containers' traffic, so its peers must go on
//! sending to it. A small process of its own (`netd cluster-heartbeat`) renews the lease; it
//! dies with the host, and it cannot renew from a host cut off from etcd, which is when
//! peers should stop sending. A restarted daemon adopts the heartbeat it finds.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::store::{ClusterStore, LeaseId};

/// Keeps one lease alive on behalf of the node.
pub trait LeaseKeeper: Send + Sync {
    /// The lease a keeper from before (an earlier daemon's) still renews, if any.
    fn adopt(&self) -> Option<LeaseId>;
    /// Renews `lease` from now on, instead of any lease before.
    fn start(
        &self,
        store: Arc<dyn ClusterStore>,
        lease: LeaseId,
        ttl_secs: i64,
    ) -> std::io::Result<()>;
}

/// The heartbeat's loop: renews every third of the TTL; returns when the lease is gone (the
/// daemon then takes a new one and starts a new heartbeat).
pub async fn renew(store: &dyn ClusterStore, lease: LeaseId, ttl_secs: i64) {
    let period = Duration::from_millis((ttl_secs as u64 * 1000 / 3).max(300));
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match store.keep_alive(lease).await {
            Ok(true) => {}
            Ok(false) => {
                log::warn!("lease {lease:x} expired: this heartbeat ends");
                return;
            }
            Err(e) => log::warn!("renewing lease {lease:x}: {e}"),
        }
    }
}

/// A keeper inside this process: for tests, and the engine's unit tests.
#[derive(Default)]
pub struct TaskKeeper(Mutex<Option<(LeaseId, tokio::task::JoinHandle<()>)>>);

impl LeaseKeeper for TaskKeeper {
    fn adopt(&self) -> Option<LeaseId> {
        let running = self.0.lock().unwrap_or_else(|p| p.into_inner());
        running
            .as_ref()
            .filter(|(_, task)| !task.is_finished())
            .map(|(lease, _)| *lease)
    }

    fn start(
        &self,
        store: Arc<dyn ClusterStore>,
        lease: LeaseId,
        ttl_secs: i64,
    ) -> std::io::Result<()> {
        let task = tokio::spawn(async move { renew(store.as_ref(), lease, ttl_secs).await });
        let mut running = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) = running.replace((lease, task)) {
            old.abort();
        }
        Ok(())
    }
}

/// What the daemon records of the heartbeat process it started.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    lease: LeaseId,
    pid: i32,
}

/// The heartbeat as a process of its own, in its own session: a daemon's crash or stop
/// leaves it running.
pub struct ProcessKeeper {
    /// Where the running heartbeat is recorded (in the state dir).
    record: PathBuf,
    /// `netd` and the cluster flags the heartbeat connects with.
    command: Vec<String>,
    log: PathBuf,
}

const MARK: &str = "cluster-heartbeat";

impl ProcessKeeper {
    pub fn new(state_dir: &Path, exe: &Path, store_flags: Vec<String>) -> Self {
        let mut command = vec![exe.display().to_string(), MARK.to_string()];
        command.extend(store_flags);
        Self {
            record: state_dir.join("cluster-heartbeat.json"),
            command,
            log: state_dir.join("cluster-heartbeat.log"),
        }
    }

    fn recorded(&self) -> Option<Record> {
        let text = std::fs::read(&self.record).ok()?;
        let record: Record = serde_json::from_slice(&text).ok()?;
        is_heartbeat(record.pid).then_some(record)
    }
}

/// Whether `pid` is a netd heartbeat (and not a process that took its pid since).
fn is_heartbeat(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == MARK.as_bytes()))
}

impl LeaseKeeper for ProcessKeeper {
    fn adopt(&self) -> Option<LeaseId> {
        self.recorded().map(|r| r.lease)
    }

    fn start(
        &self,
        _: Arc<dyn ClusterStore>,
        lease: LeaseId,
        ttl_secs: i64,
    ) -> std::io::Result<()> {
        let old = self.recorded();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(&self.command[0]);
        cmd.args(&self.command[1..])
            .args([
                "--lease",
                &lease.to_string(),
                "--node-ttl",
                &ttl_secs.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: setsid(2) is async-signal-safe; its own session keeps it out of the
        // daemon's process group, so that a signal to the daemon's group spares it.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        let record = Record {
            lease,
            pid: child.id() as i32,
        };
        // Reaped by the daemon while it lives; by init after.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        crate::state::store::write_atomic(&self.record, &serde_json::to_vec(&record)?)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if let Some(old) = old.filter(|o| o.pid != record.pid) {
            // SAFETY: kill(2) of a process checked to be a heartbeat just now.
            unsafe { libc::kill(old.pid, libc::SIGTERM) };
        }
        Ok(())
    }
}
