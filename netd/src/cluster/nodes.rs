//! The cluster's hosts. A node's record (name, underlay address, VXLAN port) is permanent
//! until an operator removes it; its liveness is a separate key under a short lease that the
//! node keeps alive. A node whose lease expired is unreachable, but what it owns stays its
//! own: ownership never follows liveness.

use std::{net::Ipv4Addr, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    heartbeat::LeaseKeeper,
    store::{ClusterError, ClusterStore, LeaseId},
};

const NODES: &str = "/netd/v1/nodes/";
const ALIVE: &str = "/netd/v1/alive/";

/// What every node knows of a host of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    /// The underlay address its tunnels end on.
    pub address: Ipv4Addr,
    pub vxlan_port: u16,
    pub joined: DateTime<Utc>,
}

/// The value of a node's liveness key: which incarnation of the node holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Alive {
    address: Ipv4Addr,
    since: DateTime<Utc>,
}

/// A node as `netd node ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    #[serde(flatten)]
    pub record: NodeRecord,
    pub ready: bool,
    /// Since when the node's current liveness key exists (ready nodes only).
    pub alive_since: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] ClusterError),
    #[error(
        "node name {name} is taken by a live node at {address}; give this host another --node-name"
    )]
    NameTaken { name: String, address: Ipv4Addr },
    #[error("node {0} is alive (its lease is renewed): remove a node only once its host is gone for good")]
    Alive(String),
    #[error("node {0} is this daemon's own")]
    Own(String),
    #[error("no node {0} in the cluster")]
    NotFound(String),
    #[error("this daemon has not joined the cluster at {store} yet: {why}")]
    NotJoined { store: String, why: String },
}

/// A node name: what `--node-name` gives (default the hostname), used in keys.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{name:?} is not a node name (1 to 63 letters, digits, '-', '.', '_')"
        )),
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    store: &dyn ClusterStore,
    key: &str,
    value: &[u8],
) -> Result<T, ClusterError> {
    serde_json::from_slice(value).map_err(|e| ClusterError::Corrupt {
        store: store.describe(),
        key: key.into(),
        reason: e.to_string(),
    })
}

/// This daemon's place in the cluster.
pub struct Membership {
    store: Arc<dyn ClusterStore>,
    me: NodeRecord,
    ttl_secs: i64,
    keeper: Arc<dyn LeaseKeeper>,
    lease: std::sync::Mutex<LeaseId>,
}

impl Membership {
    /// Registers this node and takes its liveness key. A name whose liveness key another
    /// address holds is refused. The lease a keeper from before still renews (a daemon
    /// restarted while its heartbeat ran on) is adopted when the liveness key is under it.
    pub async fn join(
        store: Arc<dyn ClusterStore>,
        me: NodeRecord,
        ttl_secs: i64,
        keeper: Arc<dyn LeaseKeeper>,
    ) -> Result<Arc<Self>, NodeError> {
        let node = Arc::new(Self {
            store,
            me,
            ttl_secs,
            keeper,
            lease: std::sync::Mutex::new(0),
        });
        let held = node.check_name_free().await?;
        node.put_record().await?;
        match (held, node.keeper.adopt()) {
            (Some(lease), Some(kept)) if lease == kept => {
                log::info!("node {}: adopting the running heartbeat", node.me.name);
                *node.lease.lock().unwrap_or_else(|p| p.into_inner()) = lease;
            }
            _ => node.take_liveness().await?,
        }
        Ok(node)
    }

    pub fn me(&self) -> &NodeRecord {
        &self.me
    }

    pub fn store(&self) -> &Arc<dyn ClusterStore> {
        &self.store
    }

    /// Refuses the name when another address holds its liveness key; returns the lease of
    /// this node's own key, if it has one.
    async fn check_name_free(&self) -> Result<Option<LeaseId>, NodeError> {
        let key = format!("{ALIVE}{}", self.me.name);
        let Some(held) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let alive: Alive = decode(self.store.as_ref(), &key, &held.value)?;
        if alive.address != self.me.address {
            return Err(NodeError::NameTaken {
                name: self.me.name.clone(),
                address: alive.address,
            });
        }
        Ok(Some(held.lease))
    }

    /// This node's record, again: an operator may have removed it while the node was away.
    async fn put_record(&self) -> Result<(), NodeError> {
        let record = serde_json::to_vec(&self.me).expect("a node record serializes");
        let key = format!("{NODES}{}", self.me.name);
        self.store.put(&key, &record, None).await?;
        Ok(())
    }

    /// A new lease, the liveness key under it, and a keeper for it.
    async fn take_liveness(&self) -> Result<(), NodeError> {
        self.put_record().await?;
        let lease = self.store.grant_lease(self.ttl_secs).await?;
        let alive = Alive {
            address: self.me.address,
            since: Utc::now(),
        };
        let value = serde_json::to_vec(&alive).expect("serializes");
        let key = format!("{ALIVE}{}", self.me.name);
        self.store.put(&key, &value, Some(lease)).await?;
        self.keeper
            .start(self.store.clone(), lease, self.ttl_secs)
            .map_err(|e| ClusterError::Refused {
                store: self.store.describe(),
                reason: format!("starting the heartbeat: {e}"),
            })?;
        *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = lease;
        Ok(())
    }

    /// Looks every third of the TTL whether this node's liveness key is still there, under
    /// its lease; one that expired (the host was cut off for longer than the TTL) is taken
    /// again, with a new heartbeat. Runs until the daemon ends.
    pub fn watch_liveness(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let node = Arc::clone(self);
        tokio::spawn(async move {
            let period = Duration::from_millis((node.ttl_secs as u64 * 1000 / 3).max(300));
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = node.check_liveness().await {
                    log::warn!("node {}: {e}", node.me.name);
                }
            }
        })
    }

    async fn check_liveness(&self) -> Result<(), NodeError> {
        let lease = *self.lease.lock().unwrap_or_else(|p| p.into_inner());
        let held = self.check_name_free().await?;
        let kept = self.keeper.adopt();
        if held == Some(lease) && kept == Some(lease) {
            return Ok(());
        }
        log::warn!(
            "node {}: its liveness lapsed (key under {held:x?}, heartbeat on {kept:x?}); taking it again",
            self.me.name
        );
        self.take_liveness().await
    }

    /// Every node of the cluster, with whether it is alive.
    pub async fn nodes(&self) -> Result<Vec<NodeStatus>, NodeError> {
        let store = self.store.as_ref();
        let (records, _) = store.list(NODES).await?;
        let (alive, _) = store.list(ALIVE).await?;
        let mut nodes = Vec::new();
        for r in records {
            let record: NodeRecord = decode(store, &r.key, &r.value)?;
            let held = alive
                .iter()
                .find(|a| a.key.strip_prefix(ALIVE) == Some(record.name.as_str()));
            let since = match held {
                Some(a) => Some(decode::<Alive>(store, &a.key, &a.value)?.since),
                None => None,
            };
            nodes.push(NodeStatus {
                ready: since.is_some(),
                alive_since: since,
                record,
            });
        }
        Ok(nodes)
    }

    /// Forgets a node that is not alive (its addresses go back to the cluster later, with
    /// the overlay's endpoints).
    pub async fn remove(&self, name: &str) -> Result<(), NodeError> {
        if name == self.me.name {
            return Err(NodeError::Own(name.into()));
        }
        if self.store.get(&format!("{ALIVE}{name}")).await?.is_some() {
            return Err(NodeError::Alive(name.into()));
        }
        let key = format!("{NODES}{name}");
        let record = self
            .store
            .get(&key)
            .await?
            .ok_or_else(|| NodeError::NotFound(name.into()))?;
        // Only the record read: a node that joined again meanwhile keeps its new one.
        match self.store.delete_if(&key, &record.value).await? {
            true => Ok(()),
            false => Err(NodeError::Alive(name.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{heartbeat::TaskKeeper, memory::MemoryStore};

    async fn join(
        store: &Arc<dyn ClusterStore>,
        name: &str,
        ip: [u8; 4],
        ttl: i64,
    ) -> Result<Arc<Membership>, NodeError> {
        Membership::join(
            store.clone(),
            record(name, ip),
            ttl,
            Arc::new(TaskKeeper::default()),
        )
        .await
    }

    fn record(name: &str, ip: [u8; 4]) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            address: ip.into(),
            vxlan_port: 4790,
            joined: Utc::now(),
        }
    }

    #[tokio::test]
    async fn nodes_join_and_are_listed_ready() {
        let store: Arc<dyn ClusterStore> = Arc::new(MemoryStore::new());
        let a = join(&store, "a", [10, 0, 0, 1], 5).await.unwrap();
        join(&store, "b", [10, 0, 0, 2], 5).await.unwrap();
        let nodes = a.nodes().await.unwrap();
        let names: Vec<_> = nodes.iter().map(|n| n.record.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(nodes.iter().all(|n| n.ready));
    }

    #[tokio::test]
    async fn a_live_nodes_name_is_refused_to_another_address() {
        let store: Arc<dyn ClusterStore> = Arc::new(MemoryStore::new());
        join(&store, "a", [10, 0, 0, 1], 5).await.unwrap();
        let e = join(&store, "a", [10, 0, 0, 9], 5)
            .await
            .err()
            .expect("refused");
        assert!(e.to_string().contains("10.0.0.1"), "{e}");
        // The same node again (a restart within the TTL) takes its name back.
        join(&store, "a", [10, 0, 0, 1], 5).await.unwrap();
    }

    #[tokio::test]
    async fn a_dead_node_is_unreachable_and_only_then_removable() {
        let memory = Arc::new(MemoryStore::new());
        let store: Arc<dyn ClusterStore> = memory.clone();
        let a = join(&store, "a", [10, 0, 0, 1], 5).await.unwrap();
        let b = join(&store, "b", [10, 0, 0, 2], 5).await.unwrap();
        assert!(matches!(a.remove("b").await, Err(NodeError::Alive(_))));
        assert!(matches!(a.remove("a").await, Err(NodeError::Own(_))));
        memory.expire_lease(*b.lease.lock().unwrap());
        let nodes = a.nodes().await.unwrap();
        let b_status = nodes.iter().find(|n| n.record.name == "b").unwrap();
        assert!(!b_status.ready && b_status.alive_since.is_none());
        a.remove("b").await.unwrap();
        assert_eq!(a.nodes().await.unwrap().len(), 1);
        assert!(matches!(a.remove("b").await, Err(NodeError::NotFound(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_lease_is_taken_again() {
        let memory = Arc::new(MemoryStore::new());
        let store: Arc<dyn ClusterStore> = memory.clone();
        let a = join(&store, "a", [10, 0, 0, 1], 3).await.unwrap();
        let watcher = a.watch_liveness();
        memory.expire_lease(*a.lease.lock().unwrap());
        assert!(!a.nodes().await.unwrap()[0].ready);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(a.nodes().await.unwrap()[0].ready, "joined again");
        watcher.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_daemon_adopts_the_running_heartbeat() {
        let store: Arc<dyn ClusterStore> = Arc::new(MemoryStore::new());
        let keeper: Arc<dyn LeaseKeeper> = Arc::new(TaskKeeper::default());
        let first = Membership::join(store.clone(), record("a", [10, 0, 0, 1]), 3, keeper.clone())
            .await
            .unwrap();
        let since = first.nodes().await.unwrap()[0].alive_since;
        drop(first);
        // Longer than the TTL: the heartbeat alone kept the node alive.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let again = Membership::join(store.clone(), record("a", [10, 0, 0, 1]), 3, keeper)
            .await
            .unwrap();
        let node = &again.nodes().await.unwrap()[0];
        assert!(node.ready);
        assert_eq!(node.alive_since, since, "the same liveness, not a new one");
    }

    #[test]
    fn node_names_are_checked() {
        assert!(check_name("node-01.a_b").is_ok());
        for bad in ["", "a/b", "a b", &"x".repeat(64)] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
