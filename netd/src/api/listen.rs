//! Serving HTTP on a listener with bounds, so that no client (a local user on the metrics
//! port, a runtime on a socket) can exhaust the daemon: connections held at once, time to
//! send a request's head and body, one request a connection, and a shutdown that waits a
//! bounded time for whatever is still connected.
//!
//! A connection that has not sent its request head yet is "waiting". When the waiting ones
//! fill their share, the oldest is closed to make room if it has waited [`MIN_WAIT`] (a
//! real client sends its head within milliseconds), else the new one is: idle and slow
//! clients cannot hold the listener, nor evict a client that sends its request at once.

use std::{
    collections::VecDeque,
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::Request,
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    serve::Listener,
    Router,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{sync::oneshot, task::JoinSet};

/// The bounds of one listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once (requests under way, streams included).
    pub busy: usize,
    /// Connections that have not sent their request head yet (see the module's comment).
    pub waiting: usize,
    /// Time to send the request head.
    pub head: Duration,
    /// Time to send the request body, once the head is in.
    pub body: Duration,
    /// Largest body read.
    pub max_body: usize,
}

impl Limits {
    /// For the API and the plugin socket: a few hundred callers at once.
    pub const SOCKET: Limits = Limits {
        busy: 256,
        waiting: 512,
        head: Duration::from_secs(5),
        body: Duration::from_secs(10),
        max_body: crate::api::server::MAX_BODY,
    };
    /// For the metrics port, which any local user reaches: a scraper or two.
    pub const METRICS: Limits = Limits {
        busy: 16,
        waiting: 128,
        head: Duration::from_secs(5),
        body: Duration::from_secs(5),
        max_body: 4096,
    };
}

/// How long a waiting connection is safe from eviction.
pub const MIN_WAIT: Duration = Duration::from_secs(1);

/// How long a shutdown waits for connections under way before it closes them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What a listener turned away or cut short, logged when it stops.
#[derive(Debug, Default)]
struct Turned {
    /// Waiting connections closed to make room for a newer one.
    evicted: AtomicU64,
    /// Connections closed at once because every busy slot was taken.
    refused: AtomicU64,
}

/// How a listener's protocol answers a request it refuses (too large, too slow), in the
/// shape its clients read errors in.
pub type Reject = fn(StatusCode, String) -> Response;

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then gives the
/// connections under way [`SHUTDOWN_GRACE`] and closes the rest.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    (what, limits, reject): (&str, Limits, Reject),
    shutdown: impl Future<Output = ()>,
) where
    L: Listener,
    L::Io: Send + 'static,
{
    let router = router.layer(middleware::from_fn(move |req, next| {
        read_body_within(limits, reject, req, next)
    }));
    let turned = Turned::default();
    let waiting = Arc::new(Waiting::default());
    let busy = Arc::new(tokio::sync::Semaphore::new(limits.busy));
    let mut connections = JoinSet::new();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        next_id += 1;
        let (cancel, cancelled) = oneshot::channel();
        match waiting.push(next_id, cancel, limits.waiting) {
            Admitted::Yes => {}
            Admitted::InsteadOf(oldest) => {
                let _ = oldest.send(());
                turned.evicted.fetch_add(1, Ordering::Relaxed);
            }
            Admitted::No => {
                if turned.refused.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::warn!(
                        "{what}: {} connections wait for their request, none for {MIN_WAIT:?}; closing new ones",
                        limits.waiting
                    );
                }
                continue;
            }
        }
        let conn = Connection {
            id: next_id,
            waiting: Arc::clone(&waiting),
            busy: Arc::clone(&busy),
            reject,
        };
        let router = router.clone();
        connections.spawn(conn.serve(io, router, limits, cancelled));
    }
    drop(listener);
    let grace = tokio::time::sleep(SHUTDOWN_GRACE);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = connections.join_next() => if next.is_none() { break },
            () = &mut grace => break,
        }
    }
    connections.abort_all();
    log::info!(
        "{what} stopped; over its life it closed {} waiting connections for newer ones and refused {} past its bound",
        turned.evicted.load(Ordering::Relaxed),
        turned.refused.load(Ordering::Relaxed)
    );
}

/// Connections that have not sent their head yet, oldest first, each with when it came and
/// what closes it.
#[derive(Default)]
struct Waiting(Mutex<VecDeque<(u64, Instant, oneshot::Sender<()>)>>);

enum Admitted {
    Yes,
    /// Admitted in place of the oldest, which this closes.
    InsteadOf(oneshot::Sender<()>),
    No,
}

impl Waiting {
    /// Adds connection `id` if fewer than `max` wait, or in place of the oldest if that one
    /// has waited [`MIN_WAIT`].
    fn push(&self, id: u64, cancel: oneshot::Sender<()>, max: usize) -> Admitted {
        let mut queue = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let admitted = if queue.len() < max {
            Admitted::Yes
        } else if queue
            .front()
            .is_some_and(|(_, at, _)| now - *at >= MIN_WAIT)
        {
            let (_, _, oldest) = queue.pop_front().expect("checked");
            Admitted::InsteadOf(oldest)
        } else {
            return Admitted::No;
        };
        queue.push_back((id, now, cancel));
        admitted
    }

    /// Connection `id` sent its head (or ended): it waits no more.
    fn remove(&self, id: u64) {
        let mut queue = self.0.lock().unwrap_or_else(|e| e.into_inner());
        queue.retain(|(other, _, _)| *other != id);
    }
}

struct Connection {
    id: u64,
    waiting: Arc<Waiting>,
    /// Slots of requests under way, one taken when the head is in.
    busy: Arc<tokio::sync::Semaphore>,
    reject: Reject,
}

impl Connection {
    async fn serve<Io>(
        self,
        io: Io,
        router: Router,
        limits: Limits,
        cancelled: oneshot::Receiver<()>,
    ) where
        Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let waiting = Arc::clone(&self.waiting);
        let (id, busy, reject) = (self.id, Arc::clone(&self.busy), self.reject);
        // The slot lives as long as the connection (a stream's body outlives the handler).
        let slot = Arc::new(Mutex::new(None));
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                // The head is in: this connection no longer waits, and cannot be evicted.
                waiting.remove(id);
                let router = router.clone();
                let taken = Arc::clone(&busy).try_acquire_owned().ok().map(|permit| {
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(permit);
                });
                async move {
                    use tower::ServiceExt;
                    match taken {
                        Some(()) => router.oneshot(req.map(Body::new)).await,
                        None => Ok(reject(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "too many requests under way; try again".into(),
                        )),
                    }
                }
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.head)
            // One request a connection: an idle connection costs nothing past its head time.
            .keep_alive(false)
            .serve_connection(TokioIo::new(io), service);
        // A closer dropped unsent (the head came in) cancels nothing: only a sent one does.
        tokio::select! {
            _ = conn => {}
            Ok(()) = cancelled => {}
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.waiting.remove(self.id);
    }
}

/// A plain-text refusal (the metrics port).
pub fn reject_text(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

/// Reads the whole body within the body time, so that a client sending it slowly holds
/// its connection no longer than that.
async fn read_body_within(limits: Limits, reject: Reject, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, limits.max_body);
    let bytes = match tokio::time::timeout(limits.body, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is larger than the limit of {} bytes",
                    limits.max_body
                ),
            )
        }
        Err(_) => {
            return reject(
                StatusCode::REQUEST_TIMEOUT,
                format!("request body not sent within {} s", limits.body.as_secs()),
            )
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
