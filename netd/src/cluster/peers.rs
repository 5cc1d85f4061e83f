//! What a host knows of the others: every overlay endpoint with its node's underlay address
//! and whether that node is alive, kept from one list of the cluster's keys and a watch
//! from the list's revision. A lost watch is resumed from the last revision seen; one that
//! fell behind a compaction lists again. The datapath's tunnel map and the embedded DNS are
//! made from this view.

use std::{collections::BTreeMap, net::Ipv4Addr, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::store::{Change, ClusterError, ClusterStore, Entry, Revision, WatchEvent};
use crate::config::mac::Mac;

const ROOT: &str = "/netd/v1/";
const ENDPOINTS: &str = "/netd/v1/overlay/endpoints/";
const NODES: &str = "/netd/v1/nodes/";
const ALIVE: &str = "/netd/v1/alive/";
/// Between tries while the store is away.
const RETRY: Duration = Duration::from_millis(500);
/// The most often the view is copied out to its readers while changes stream in.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// An overlay endpoint as every host sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub network_id: String,
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub node: String,
    /// The container's name and aliases, for the embedded DNS.
    pub names: Vec<String>,
}

fn endpoint_key(e: &EndpointRecord) -> String {
    format!("{ENDPOINTS}{}/{}", e.network_id, e.ip)
}

/// Makes `e` known to every host (its address is claimed already).
pub async fn publish(store: &dyn ClusterStore, e: &EndpointRecord) -> Result<(), ClusterError> {
    let value = serde_json::to_vec(e).expect("serializes");
    store.put(&endpoint_key(e), &value, None).await.map(drop)
}

/// Takes `e` back, if it is still the one published.
pub async fn withdraw(store: &dyn ClusterStore, e: &EndpointRecord) -> Result<bool, ClusterError> {
    let value = serde_json::to_vec(e).expect("serializes");
    store.delete_if(&endpoint_key(e), &value).await
}

/// A node as the view has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub address: Ipv4Addr,
    pub alive: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerView {
    pub nodes: BTreeMap<String, Peer>,
    /// By key (network id and address).
    pub endpoints: BTreeMap<String, EndpointRecord>,
    /// The store's revision the view is at.
    pub revision: Revision,
    /// How many full lists made the view: one at start, one more after each compaction
    /// that left the watch behind.
    pub lists: u64,
}

/// An endpoint on another host, where its traffic goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub endpoint: EndpointRecord,
    /// The node's underlay address; none when the node has no record (removed).
    pub node_address: Option<Ipv4Addr>,
    /// Its node is alive: traffic to it is sent, else dropped and counted.
    pub reachable: bool,
}

impl PeerView {
    /// The endpoints of every host but `me`.
    pub fn remotes(&self, me: &str) -> Vec<Remote> {
        self.endpoints
            .values()
            .filter(|e| e.node != me)
            .map(|e| {
                // A liveness key seen before its node's record names no address yet.
                let peer = self
                    .nodes
                    .get(&e.node)
                    .filter(|p| !p.address.is_unspecified());
                Remote {
                    endpoint: e.clone(),
                    node_address: peer.map(|p| p.address),
                    reachable: peer.is_some_and(|p| p.alive),
                }
            })
            .collect()
    }

    fn apply(&mut self, change: &Change) {
        self.revision = self.revision.max(change.revision());
        match change {
            Change::Put(e) => self.put(e),
            Change::Delete { key, .. } => self.delete(key),
        }
    }

    fn put(&mut self, e: &Entry) {
        if let Some(name) = e.key.strip_prefix(NODES) {
            // The record: its address. Liveness comes with the alive key.
            #[derive(Deserialize)]
            struct Record {
                address: Ipv4Addr,
            }
            if let Ok(r) = serde_json::from_slice::<Record>(&e.value) {
                let alive = self.nodes.get(name).is_some_and(|p| p.alive);
                let peer = Peer {
                    address: r.address,
                    alive,
                };
                self.nodes.insert(name.to_string(), peer);
            }
        } else if let Some(name) = e.key.strip_prefix(ALIVE) {
            if let Some(peer) = self.nodes.get_mut(name) {
                peer.alive = true;
            } else {
                self.pending_alive(name);
            }
        } else if e.key.starts_with(ENDPOINTS) {
            match serde_json::from_slice::<EndpointRecord>(&e.value) {
                Ok(rec) => {
                    self.endpoints.insert(e.key.clone(), rec);
                }
                Err(err) => log::warn!("ignoring endpoint {}: {err}", e.key),
            }
        }
    }

    /// A liveness key before its node's record (the list is in key order: `alive/` comes
    /// before `nodes/`): the node is alive once its record arrives.
    fn pending_alive(&mut self, name: &str) {
        let peer = Peer {
            address: Ipv4Addr::UNSPECIFIED,
            alive: true,
        };
        self.nodes.insert(name.to_string(), peer);
    }

    fn delete(&mut self, key: &str) {
        if let Some(name) = key.strip_prefix(NODES) {
            self.nodes.remove(name);
        } else if let Some(name) = key.strip_prefix(ALIVE) {
            if let Some(peer) = self.nodes.get_mut(name) {
                peer.alive = false;
            }
        } else {
            self.endpoints.remove(key);
        }
    }

    fn from_list(entries: &[Entry], revision: Revision) -> Self {
        let mut view = Self::default();
        for e in entries {
            view.put(e);
        }
        // Liveness keys of nodes without a record.
        view.nodes.retain(|_, p| !p.address.is_unspecified());
        view.revision = revision;
        view
    }
}

/// Follows the cluster into a [`PeerView`]; runs until every receiver is gone.
pub fn follow(store: Arc<dyn ClusterStore>) -> watch::Receiver<Arc<PeerView>> {
    let (tx, rx) = watch::channel(Arc::new(PeerView::default()));
    tokio::spawn(async move {
        while !tx.is_closed() {
            if let Err(e) = follow_once(store.as_ref(), &tx).await {
                log::warn!("following the cluster: {e}");
            }
            tokio::time::sleep(RETRY).await;
        }
    });
    rx
}

/// One list, then watches from its revision until a compaction makes the list stale.
async fn follow_once(
    store: &dyn ClusterStore,
    tx: &watch::Sender<Arc<PeerView>>,
) -> Result<(), ClusterError> {
    let (entries, revision) = store.list(ROOT).await?;
    let mut view = PeerView::from_list(&entries, revision);
    view.lists = tx.borrow().lists + 1;
    tx.send_replace(Arc::new(view.clone()));
    loop {
        let mut changes = match store.watch(ROOT, view.revision).await {
            Ok(w) => w,
            Err(e) => {
                log::warn!("watching the cluster from revision {}: {e}", view.revision);
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let mut published = tokio::time::Instant::now();
        while let Some(event) = changes.recv().await {
            // One copy of the view for a burst of changes, not one per change: at most
            // every PUBLISH_EVERY, with what came meanwhile.
            let wait = PUBLISH_EVERY.saturating_sub(published.elapsed());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let mut event = Some(event);
            while let Some(e) = event.take().or_else(|| changes.try_recv().ok()) {
                if let WatchEvent::Compacted { revision } = e {
                    log::info!(
                        "the cluster's history before {revision} is compacted: listing again"
                    );
                    return Ok(());
                }
                if let WatchEvent::Changes(batch) = e {
                    batch.iter().for_each(|c| view.apply(c));
                }
            }
            tx.send_replace(Arc::new(view.clone()));
            published = tokio::time::Instant::now();
            if tx.is_closed() {
                return Ok(());
            }
        }
        // The watch ended (a lost connection): resumed from the last revision seen.
        tokio::time::sleep(RETRY).await;
    }
}
