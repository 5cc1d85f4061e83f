//! A cluster store in memory, with etcd's semantics where netd relies on them (revisions,
//! create-only claims, leases, resumable watches, compaction), for the engine's unit tests
//! and the conformance suite. Tests can also cut it off, expire leases and compact it.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use tokio::{sync::mpsc, time::Instant};

use super::store::{
    Change, ClusterError, ClusterStore, Entry, LeaseId, Result, Revision, Watch, WatchEvent,
};

/// How many events a watcher may lag behind before its watch ends (it then watches again).
const WATCH_BACKLOG: usize = 4096;

#[derive(Default)]
pub struct MemoryStore(Mutex<State>);

#[derive(Default)]
struct State {
    revision: Revision,
    keys: BTreeMap<String, Entry>,
    /// Lease id -> (ttl, deadline).
    leases: HashMap<LeaseId, (i64, Instant)>,
    next_lease: LeaseId,
    history: Vec<Change>,
    /// Changes before this revision are gone from `history`.
    compacted: Revision,
    watchers: Vec<(String, mpsc::Sender<WatchEvent>)>,
    unreachable: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if s.unreachable {
            return Err(ClusterError::Unreachable {
                store: self.describe(),
                reason: "cut off by the test".into(),
            });
        }
        s.expire(Instant::now());
        Ok(s)
    }

    /// Makes every request fail as if no member answered, and ends the watches.
    pub fn set_unreachable(&self, unreachable: bool) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.unreachable = unreachable;
        if unreachable {
            s.watchers.clear();
        }
    }

    /// Ends every watch, as a lost connection does, while requests go on being answered.
    pub fn drop_watches(&self) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .watchers
            .clear();
    }

    /// Forgets the history before `revision`, as etcd's compaction does.
    pub fn compact(&self, revision: Revision) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.history.retain(|c| c.revision() >= revision);
        s.compacted = s.compacted.max(revision);
    }

    /// Ends a lease now, as if its holder had stopped sending keepalives a TTL ago.
    pub fn expire_lease(&self, lease: LeaseId) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, deadline)) = s.leases.get_mut(&lease) {
            *deadline = Instant::now();
        }
        s.expire(Instant::now());
    }
}

impl State {
    fn expire(&mut self, now: Instant) {
        let expired: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.end_lease(id);
        }
    }

    fn end_lease(&mut self, id: LeaseId) {
        self.leases.remove(&id);
        let keys: Vec<String> = self
            .keys
            .values()
            .filter(|e| e.lease == id)
            .map(|e| e.key.clone())
            .collect();
        for key in keys {
            self.delete(&key);
        }
    }

    fn check_lease(&self, lease: Option<LeaseId>, store: &str) -> Result<LeaseId> {
        match lease {
            Some(id) if !self.leases.contains_key(&id) => Err(ClusterError::Refused {
                store: store.into(),
                reason: format!("lease {id:x} not found"),
            }),
            Some(id) => Ok(id),
            None => Ok(0),
        }
    }

    fn put(&mut self, key: &str, value: &[u8], lease: LeaseId) -> Revision {
        self.revision += 1;
        let entry = Entry {
            key: key.into(),
            value: value.to_vec(),
            mod_revision: self.revision,
            lease,
        };
        self.keys.insert(key.into(), entry.clone());
        self.record(Change::Put(entry));
        self.revision
    }

    fn delete(&mut self, key: &str) {
        if self.keys.remove(key).is_some() {
            self.revision += 1;
            let revision = self.revision;
            self.record(Change::Delete {
                key: key.into(),
                revision,
            });
        }
    }

    fn record(&mut self, change: Change) {
        let key = match &change {
            Change::Put(e) => e.key.as_str(),
            Change::Delete { key, .. } => key.as_str(),
        };
        // A watcher too far behind, or gone, loses its watch.
        self.watchers.retain(|(prefix, tx)| {
            !key.starts_with(prefix.as_str())
                || tx
                    .try_send(WatchEvent::Changes(vec![change.clone()]))
                    .is_ok()
        });
        self.history.push(change);
    }
}

#[async_trait::async_trait]
impl ClusterStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn grant_lease(&self, ttl_secs: i64) -> Result<LeaseId> {
        let mut s = self.state()?;
        s.next_lease += 1;
        let id = s.next_lease;
        let deadline = Instant::now() + std::time::Duration::from_secs(ttl_secs.max(1) as u64);
        s.leases.insert(id, (ttl_secs, deadline));
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<bool> {
        let mut s = self.state()?;
        Ok(match s.leases.get_mut(&lease) {
            Some((ttl, deadline)) => {
                *deadline = Instant::now() + std::time::Duration::from_secs(*ttl as u64);
                true
            }
            None => false,
        })
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.state()?.end_lease(lease);
        Ok(())
    }

    async fn create(&self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Result<bool> {
        let mut s = self.state()?;
        let lease = s.check_lease(lease, &self.describe())?;
        if s.keys.contains_key(key) {
            return Ok(false);
        }
        s.put(key, value, lease);
        Ok(true)
    }

    async fn create_all(&self, entries: &[(&str, &[u8])]) -> Result<bool> {
        let mut s = self.state()?;
        if entries.iter().any(|(k, _)| s.keys.contains_key(*k)) {
            return Ok(false);
        }
        for (key, value) in entries {
            s.put(key, value, 0);
        }
        Ok(true)
    }

    async fn put(&self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Result<Revision> {
        let mut s = self.state()?;
        let lease = s.check_lease(lease, &self.describe())?;
        Ok(s.put(key, value, lease))
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        Ok(self.state()?.keys.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<Entry>, Revision)> {
        let s = self.state()?;
        let entries = s
            .keys
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e.clone())
            .collect();
        Ok((entries, s.revision))
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool> {
        let mut s = self.state()?;
        if s.keys.get(key).is_none_or(|e| e.value != expected) {
            return Ok(false);
        }
        s.delete(key);
        Ok(true)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        let mut s = self.state()?;
        let (tx, rx) = mpsc::channel(WATCH_BACKLOG);
        if after + 1 < s.compacted {
            let _ = tx.try_send(WatchEvent::Compacted {
                revision: s.compacted,
            });
            return Ok(rx);
        }
        let missed: Vec<Change> = s
            .history
            .iter()
            .filter(|c| c.revision() > after)
            .filter(|c| match c {
                Change::Put(e) => e.key.starts_with(prefix),
                Change::Delete { key, .. } => key.starts_with(prefix),
            })
            .cloned()
            .collect();
        if !missed.is_empty() && tx.try_send(WatchEvent::Changes(missed)).is_err() {
            return Ok(rx);
        }
        s.watchers.push((prefix.to_string(), tx));
        Ok(rx)
    }
}
