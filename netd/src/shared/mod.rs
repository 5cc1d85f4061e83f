//! The daemon's state that every front door shares (the API, the metrics, the Docker
//! plugin): the engine under its lock, the count of calls, and the monitor.

mod operations;

use std::sync::Arc;

use tokio::sync::Mutex;

pub use operations::{OpCount, Operations};

use crate::{
    cluster::joining::ClusterNode,
    engine::{containers::Started, Engine},
    monitor::Monitor,
    process,
    state::model::Process,
};

pub struct Daemon {
    pub(crate) engine: Mutex<Engine>,
    /// API calls and errors, for the metrics.
    pub(crate) operations: Operations,
    /// `netd monitor` events; none when the datapath's ring could not be read.
    pub(crate) monitor: Option<Arc<Monitor>>,
    /// This host's place in a cluster (`--cluster-store`).
    pub(crate) cluster: Option<Arc<ClusterNode>>,
}

pub type Shared = Arc<Daemon>;

impl Daemon {
    pub fn new(
        engine: Engine,
        monitor: Option<Arc<Monitor>>,
        cluster: Option<Arc<ClusterNode>>,
    ) -> Shared {
        Arc::new(Self {
            engine: Mutex::new(engine),
            operations: Operations::default(),
            monitor,
            cluster,
        })
    }

    /// Waits for a process the daemon started, and records how it ended.
    pub(crate) fn watch_child(self: &Arc<Self>, started: Started) {
        let daemon = Arc::clone(self);
        tokio::spawn(async move {
            let Started {
                container_id,
                mut child,
            } = started;
            let pid = child.id().unwrap_or_default() as i32;
            let code = match child.wait().await {
                Ok(status) => exit_code(status),
                Err(_) => -1,
            };
            daemon
                .engine
                .lock()
                .await
                .process_exited(&container_id, pid, code);
        });
    }

    /// Polls a process of an earlier daemon run, which cannot be waited for.
    pub fn watch_adopted(self: &Arc<Self>, container_id: String, process: Process) {
        let daemon = Arc::clone(self);
        tokio::spawn(async move {
            while process::alive(&process) {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            daemon
                .engine
                .lock()
                .await
                .process_exited(&container_id, process.pid, -1);
        });
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or(status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}
