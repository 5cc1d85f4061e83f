//! The daemon's side of membership: joins at start within a bound, keeps trying in the
//! background while the store is away (the host works on without it), and refuses to start
//! only on what retrying cannot mend (the name of another live node).

use std::{sync::Arc, time::Duration};

use tokio::sync::RwLock;

use super::{
    heartbeat::LeaseKeeper,
    nodes::{Membership, NodeError, NodeRecord},
    store::ClusterStore,
};

/// How long the first join may take before the daemon starts without it.
const FIRST_JOIN: Duration = Duration::from_secs(10);
const RETRY_EVERY: Duration = Duration::from_secs(2);

pub struct ClusterNode {
    store: Arc<dyn ClusterStore>,
    record: NodeRecord,
    ttl_secs: i64,
    keeper: Arc<dyn LeaseKeeper>,
    joined: RwLock<Option<Arc<Membership>>>,
    /// Why the last join failed, for callers while it is not joined.
    last_error: std::sync::Mutex<String>,
}

impl ClusterNode {
    pub async fn start(
        store: Arc<dyn ClusterStore>,
        record: NodeRecord,
        ttl_secs: i64,
        keeper: Arc<dyn LeaseKeeper>,
    ) -> Result<Arc<Self>, NodeError> {
        let node = Arc::new(Self {
            store,
            record,
            ttl_secs,
            keeper,
            joined: RwLock::new(None),
            last_error: std::sync::Mutex::new("not joined yet".into()),
        });
        match tokio::time::timeout(FIRST_JOIN, node.try_join()).await {
            Ok(Err(e @ NodeError::NameTaken { .. })) => return Err(e),
            Ok(Ok(())) => return Ok(node),
            Ok(Err(e)) => node.note(e.to_string()),
            Err(_) => node.note(format!(
                "{} did not answer in {FIRST_JOIN:?}",
                node.store.describe()
            )),
        }
        log::warn!(
            "node {} joins the cluster when {} answers: {}",
            node.record.name,
            node.store.describe(),
            node.last_error()
        );
        let retrying = Arc::clone(&node);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RETRY_EVERY).await;
                match retrying.try_join().await {
                    Ok(()) => return,
                    Err(e) => retrying.note(e.to_string()),
                }
            }
        });
        Ok(node)
    }

    async fn try_join(&self) -> Result<(), NodeError> {
        let m = Membership::join(
            self.store.clone(),
            self.record.clone(),
            self.ttl_secs,
            self.keeper.clone(),
        )
        .await?;
        m.watch_liveness();
        log::info!(
            "node {} joined the cluster at {} ({})",
            self.record.name,
            self.store.describe(),
            self.record.address
        );
        *self.joined.write().await = Some(m);
        Ok(())
    }

    fn note(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn record(&self) -> &NodeRecord {
        &self.record
    }

    /// This node's membership, or why it has none yet.
    pub async fn membership(&self) -> Result<Arc<Membership>, NodeError> {
        match &*self.joined.read().await {
            Some(m) => Ok(Arc::clone(m)),
            None => Err(NodeError::NotJoined {
                store: self.store.describe(),
                why: self.last_error(),
            }),
        }
    }
}
