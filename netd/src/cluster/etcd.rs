//! The cluster store on etcd (v3 API, through `etcd-client`): claims are transactions on a
//! key's create revision, liveness is leases, and watches resume from a revision.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use tokio::sync::mpsc;

use super::{
    endpoints::StoreAddress,
    store::{
        Change, ClusterError, ClusterStore, Entry, LeaseId, Result, Revision, Watch, WatchEvent,
    },
};

/// Each request's bound: a store that does not answer is unreachable, not slow.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Keys a list reads per request.
const LIST_PAGE: i64 = 2000;
/// How many responses a watch may hold before the reader takes them.
const WATCH_BACKLOG: usize = 256;

pub struct EtcdStore {
    client: Client,
    described: String,
}

impl EtcdStore {
    /// Connects to the members of `address`; requests go to whichever answers.
    pub async fn connect(address: &StoreAddress) -> Result<Self> {
        let described = address.to_string();
        let mut options = ConnectOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
        if let Some(tls) = address
            .tls_options()
            .map_err(|reason| ClusterError::Refused {
                store: described.clone(),
                reason,
            })?
        {
            options = options.with_tls(tls);
        }
        let client = Client::connect(address.urls(), Some(options))
            .await
            .map_err(|e| unreachable(&described, e))?;
        Ok(Self { client, described })
    }

    fn client(&self) -> Client {
        self.client.clone()
    }

    fn err(&self, e: etcd_client::Error) -> ClusterError {
        classify(&self.described, e)
    }

    /// Forgets the history up to `revision` (tests of a watch behind a compaction; the daemon
    /// never compacts, etcd's own auto-compaction does).
    pub async fn compact(&self, revision: Revision) -> Result<()> {
        self.client()
            .compact(revision, None)
            .await
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

fn unreachable(store: &str, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Unreachable {
        store: store.into(),
        reason: e.to_string(),
    }
}

/// Transport failures, timeouts and a member without a leader are the store being away;
/// anything else is an answer.
fn classify(store: &str, e: etcd_client::Error) -> ClusterError {
    use etcd_client::Error as E;
    let away = match &e {
        E::TransportError(_) | E::IoError(_) | E::WatchError(_) => true,
        E::GRpcStatus(s) => match s.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                true
            }
            // A connection that broke under the request.
            tonic::Code::Unknown => s.message().contains("transport error"),
            _ => s.message().contains("no leader"),
        },
        _ => false,
    };
    match away {
        true => unreachable(store, e),
        false => ClusterError::Refused {
            store: store.into(),
            reason: e.to_string(),
        },
    }
}

fn entry(store: &str, kv: &etcd_client::KeyValue) -> Result<Entry> {
    let key = kv.key_str().map_err(|e| ClusterError::Corrupt {
        store: store.into(),
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        reason: e.to_string(),
    })?;
    Ok(Entry {
        key: key.to_string(),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
        lease: kv.lease(),
    })
}

/// The end of the key range of `prefix`, as etcd's clients compute it: the prefix with its
/// last byte below 0xff raised by one and what follows it dropped.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the key space.
    vec![0]
}

fn put_options(lease: Option<LeaseId>) -> Option<PutOptions> {
    lease.map(|id| PutOptions::new().with_lease(id))
}

#[async_trait::async_trait]
impl ClusterStore for EtcdStore {
    fn describe(&self) -> String {
        self.described.clone()
    }

    async fn grant_lease(&self, ttl_secs: i64) -> Result<LeaseId> {
        let granted = self.client().lease_grant(ttl_secs, None).await;
        granted.map(|r| r.id()).map_err(|e| self.err(e))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<bool> {
        let mut client = self.client();
        let renew = async {
            let (mut keeper, mut answers) = client.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            answers.message().await
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, renew)
            .await
            .map_err(|_| unreachable(&self.described, "no keepalive answer in time"))?;
        // A lease that is gone is answered with a TTL of 0, which the client makes an error.
        match answer {
            Ok(answer) => Ok(answer.is_some_and(|a| a.ttl() > 0)),
            Err(etcd_client::Error::LeaseKeepAliveError(e)) if e.contains("not found") => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        match self.client().lease_revoke(lease).await {
            Ok(_) => Ok(()),
            Err(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn create(&self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Result<bool> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, put_options(lease))]);
        let done = self.client().txn(txn).await.map_err(|e| self.err(e))?;
        Ok(done.succeeded())
    }

    async fn create_all(&self, entries: &[(&str, &[u8])]) -> Result<bool> {
        let absent: Vec<Compare> = entries
            .iter()
            .map(|(k, _)| Compare::create_revision(*k, CompareOp::Equal, 0))
            .collect();
        let puts: Vec<TxnOp> = entries
            .iter()
            .map(|(k, v)| TxnOp::put(*k, *v, None))
            .collect();
        let txn = Txn::new().when(absent).and_then(puts);
        let done = self.client().txn(txn).await.map_err(|e| self.err(e))?;
        Ok(done.succeeded())
    }

    async fn put(&self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Result<Revision> {
        let done = self.client().put(key, value, put_options(lease)).await;
        let done = done.map_err(|e| self.err(e))?;
        Ok(done.header().map_or(0, |h| h.revision()))
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let got = self
            .client()
            .get(key, None)
            .await
            .map_err(|e| self.err(e))?;
        got.kvs()
            .first()
            .map(|kv| entry(&self.described, kv))
            .transpose()
    }

    /// In pages, all read at the first page's revision: a cluster's hundred thousand
    /// endpoints exceed any one answer's size limit.
    async fn list(&self, prefix: &str) -> Result<(Vec<Entry>, Revision)> {
        let end = prefix_end(prefix.as_bytes());
        let mut from = prefix.as_bytes().to_vec();
        let mut revision = 0;
        let mut entries = Vec::new();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let got = self.client().get(from.clone(), Some(options)).await;
            let got = got.map_err(|e| self.err(e))?;
            if revision == 0 {
                revision = got.header().map_or(0, |h| h.revision());
            }
            for kv in got.kvs() {
                entries.push(entry(&self.described, kv)?);
            }
            match got.kvs().last() {
                Some(last) if got.more() => {
                    // The next page starts just after the last key of this one.
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok((entries, revision)),
            }
        }
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool> {
        let txn = Txn::new()
            .when([Compare::value(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(key, None)]);
        let done = self.client().txn(txn).await.map_err(|e| self.err(e))?;
        Ok(done.succeeded())
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(after + 1);
        let mut stream = self
            .client()
            .watch(prefix, Some(options))
            .await
            .map_err(|e| self.err(e))?;
        let (tx, rx) = mpsc::channel(WATCH_BACKLOG);
        let store = self.described.clone();
        tokio::spawn(async move {
            // Ends (dropping `tx`, which ends the caller's watch) on an error, a cancel or
            // a compaction: the caller watches again or lists again.
            while let Ok(Some(answer)) = stream.message().await {
                if answer.compact_revision() > 0 {
                    let revision = answer.compact_revision();
                    let _ = tx.send(WatchEvent::Compacted { revision }).await;
                    return;
                }
                if answer.canceled() {
                    return;
                }
                let mut changes = Vec::new();
                for event in answer.events() {
                    let Some(kv) = event.kv() else { continue };
                    match event.event_type() {
                        EventType::Put => match entry(&store, kv) {
                            Ok(e) => changes.push(Change::Put(e)),
                            Err(e) => log::warn!("watch of {store}: {e}"),
                        },
                        EventType::Delete => changes.push(Change::Delete {
                            key: String::from_utf8_lossy(kv.key()).into_owned(),
                            revision: kv.mod_revision(),
                        }),
                    }
                }
                if !changes.is_empty() && tx.send(WatchEvent::Changes(changes)).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_are_etcds() {
        assert_eq!(prefix_end(b"/netd/v1/"), b"/netd/v10");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }
}
