//! `netd monitor`: one task reads the datapath's event ring and fans the events out to the
//! API streams that watch; the programs write events only while at least one stream is open.

use std::{
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use netd_common::monitor::Event;
use tokio::{io::unix::AsyncFd, sync::broadcast};

use crate::{datapath::monitor::Events, engine::host::Telemetry};

/// Events a slow watcher may fall behind by before it is told it lost some.
const BACKLOG: usize = 4096;

pub struct Monitor {
    tx: broadcast::Sender<Event>,
    watchers: AtomicUsize,
    telemetry: Arc<dyn Telemetry>,
}

/// An open watch; the programs stop writing events when the last one is dropped.
pub struct Watch {
    pub rx: broadcast::Receiver<Event>,
    monitor: Arc<Monitor>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.monitor.watchers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.monitor.telemetry.set_monitor(false);
        }
    }
}

struct Ring(Events);

impl AsRawFd for Ring {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0 .0.as_raw_fd()
    }
}

impl Monitor {
    /// Starts the reader of `events`.
    pub fn start(events: Events, telemetry: Arc<dyn Telemetry>) -> std::io::Result<Arc<Self>> {
        let (tx, _) = broadcast::channel(BACKLOG);
        let monitor = Arc::new(Self {
            tx: tx.clone(),
            watchers: AtomicUsize::new(0),
            telemetry,
        });
        // SAFETY: the ring owns its map fd, which stays open and the same for as long as the
        // AsyncFd owns the ring.
        let mut ring = unsafe { AsyncFd::register(Ring(events)) }.map_err(|e| e.into_parts().1)?;
        tokio::spawn(async move {
            loop {
                let Ok(mut ready) = ring.readable_mut().await else {
                    log::error!("monitor: the event ring cannot be polled");
                    return;
                };
                while let Some(ev) = ready.get_inner_mut().0.next_event() {
                    // No receiver: nobody watches any more; the event is of no use.
                    let _ = tx.send(ev);
                }
                ready.clear_ready();
            }
        });
        Ok(monitor)
    }

    pub fn watch(self: &Arc<Self>) -> Watch {
        let rx = self.tx.subscribe();
        if self.watchers.fetch_add(1, Ordering::SeqCst) == 0 {
            self.telemetry.set_monitor(true);
        }
        Watch {
            rx,
            monitor: Arc::clone(self),
        }
    }
}
