//! Changes of links, addresses and routes in the daemon's namespace, from rtnetlink's
//! multicast groups, and of its mount table (namespaces are mounts): the daemon repairs and
//! follows renumbering when something changed, within milliseconds, instead of finding out
//! at its next look.

use std::time::Duration;

use futures::{Stream, StreamExt};
use rtnetlink::MulticastGroup;
use tokio::sync::watch;

use super::LinkError;

/// A count of the bursts of changes seen; each waiter looks again when it moves.
pub type ChangeCount = watch::Receiver<u64>;

/// Changes that follow one another within this are one burst (a `netd run` makes a veth,
/// moves its peer, sets addresses and routes: one look for all of them).
const SETTLE: Duration = Duration::from_millis(50);

/// Subscribes to the daemon namespace's link, IPv4 address and IPv4 route changes. The
/// returned count moves once per burst of changes, for as long as the socket lives.
pub fn watch_changes() -> Result<ChangeCount, LinkError> {
    let groups = [
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv4Route,
    ];
    let (conn, _handle, messages) =
        rtnetlink::new_multicast_connection(&groups).map_err(|source| LinkError::Io {
            op: "subscribe to netlink changes in",
            target: "daemon namespace".into(),
            source,
        })?;
    tokio::spawn(conn);
    let (tx, rx) = watch::channel(0);
    let tx = std::sync::Arc::new(tx);
    tokio::spawn(count_bursts(messages, std::sync::Arc::clone(&tx)));
    // A namespace's mount removed tells netlink nothing.
    tokio::spawn(async move {
        if let Err(e) = crate::netns::watch_mounts(|| tx.send_modify(|n| *n += 1)).await {
            log::warn!(
                "watching the mount table: {e}; lost namespace mounts are found by periodic looks"
            );
        }
    });
    Ok(rx)
}

async fn count_bursts(mut messages: impl Stream + Unpin, tx: std::sync::Arc<watch::Sender<u64>>) {
    while messages.next().await.is_some() {
        // Take what follows within SETTLE, so that one burst is one look.
        loop {
            match tokio::time::timeout(SETTLE, messages.next()).await {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_elapsed) => break,
            }
        }
        tx.send_modify(|n| *n += 1);
    }
    log::warn!("netlink change notifications ended: repairs fall back to periodic looks");
}

/// Waits until the count moves or `every` passes, whichever is first: events for speed, the
/// period for what a lost notification (a full socket buffer) would hide.
pub async fn changed_or(changes: &mut Option<ChangeCount>, every: &mut tokio::time::Interval) {
    match changes {
        Some(rx) => {
            tokio::select! {
                moved = rx.changed() => {
                    if moved.is_err() {
                        // The sender is gone: periodic looks only from now on.
                        *changes = None;
                    }
                }
                _ = every.tick() => {}
            }
        }
        None => {
            every.tick().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_is_counted_once() {
        let (msg_tx, msg_rx) = futures::channel::mpsc::unbounded();
        let (tx, mut rx) = watch::channel(0);
        tokio::spawn(count_bursts(msg_rx, std::sync::Arc::new(tx)));
        for _ in 0..5 {
            msg_tx.unbounded_send(()).unwrap();
        }
        rx.changed().await.unwrap();
        assert_eq!(
            *rx.borrow_and_update(),
            1,
            "five messages at once are one burst"
        );
        tokio::time::sleep(SETTLE * 4).await;
        msg_tx.unbounded_send(()).unwrap();
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 2, "a later one is another");
    }

    #[tokio::test(start_paused = true)]
    async fn without_notifications_the_period_still_wakes() {
        let (tx, rx) = watch::channel(0);
        drop(tx);
        let mut changes = Some(rx);
        let mut every = tokio::time::interval(Duration::from_secs(5));
        every.tick().await;
        changed_or(&mut changes, &mut every).await;
        assert!(changes.is_none(), "a closed channel is dropped");
        let start = tokio::time::Instant::now();
        changed_or(&mut changes, &mut every).await;
        assert!(
            start.elapsed() >= Duration::from_secs(4),
            "the period wakes it"
        );
    }
}
