//! What netd asks of the cluster's distributed store: keys with revisions, create-only
//! claims, compare-and-delete, leases that expire without keepalives, and prefix watches
//! that resume from a revision. etcd is the real one; [`super::memory`] stands in for tests.

use tokio::sync::mpsc;

/// An etcd lease id: keys written under it are deleted when it expires.
pub type LeaseId = i64;
/// The store's revision, raised by every change.
pub type Revision = i64;

/// One key with its value, as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of the change that wrote this value.
    pub mod_revision: Revision,
    /// The lease the key lives under, 0 for none.
    pub lease: LeaseId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put(Entry),
    /// A key deleted (by a delete or an expired lease) at `revision`.
    Delete {
        key: String,
        revision: Revision,
    },
}

impl Change {
    pub fn revision(&self) -> Revision {
        match self {
            Change::Put(e) => e.mod_revision,
            Change::Delete { revision, .. } => *revision,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// Changes in revision order.
    Changes(Vec<Change>),
    /// The history after the revision asked for is compacted away: list again. The watch
    /// ends after this.
    Compacted { revision: Revision },
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No member answered in time: the caller fails closed and retries later.
    #[error("cluster store {store} is unreachable: {reason}")]
    Unreachable { store: String, reason: String },
    /// A member answered with an error.
    #[error("cluster store {store} refused the request: {reason}")]
    Refused { store: String, reason: String },
    /// A value in the store that netd cannot read (another version, or a hostile writer).
    #[error("cluster store {store}: key {key} holds an unreadable value: {reason}")]
    Corrupt {
        store: String,
        key: String,
        reason: String,
    },
}

pub type Result<T> = std::result::Result<T, ClusterError>;

/// The watch's receiving end: it ends when the connection is lost, and the caller watches
/// again after the last revision it saw.
pub type Watch = mpsc::Receiver<WatchEvent>;

#[async_trait::async_trait]
pub trait ClusterStore: Send + Sync {
    /// Where the store is, for errors and logs.
    fn describe(&self) -> String;

    /// A lease of `ttl_secs` seconds, renewed by [`ClusterStore::keep_alive`].
    async fn grant_lease(&self, ttl_secs: i64) -> Result<LeaseId>;
    /// Renews the lease; false when it is gone (expired or revoked).
    async fn keep_alive(&self, lease: LeaseId) -> Result<bool>;
    /// Ends the lease now: its keys are deleted.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    /// Writes `key` only if it does not exist: false when it does (someone else's claim).
    async fn create(&self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Result<bool>;
    /// Writes every key, in one step, only if none of them exists: false when one does.
    async fn create_all(&self, entries: &[(&str, &[u8])]) -> Result<bool>;
    /// Writes `key` whatever it holds; returns the revision of the write.
    async fn put(&self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Result<Revision>;
    async fn get(&self, key: &str) -> Result<Option<Entry>>;
    /// Every key under `prefix`, in key order, and the revision they were read at.
    async fn list(&self, prefix: &str) -> Result<(Vec<Entry>, Revision)>;
    /// Deletes `key` only if it holds `expected`: false when it does not (or is gone).
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool>;
    /// The changes under `prefix` after revision `after`, in order.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch>;
}
