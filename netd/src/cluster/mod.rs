//! The cluster's shared state: a distributed store (etcd) behind [`ClusterStore`], so that
//! hosts agree on overlay networks, nodes and addresses without consensus of netd's own.

pub mod addresses;
#[doc(hidden)]
pub mod conformance;
pub mod endpoints;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod heartbeat;
pub mod joining;
pub mod memory;
pub mod nodes;
pub mod overlay;
pub mod peers;
pub mod store;

pub use endpoints::{StoreAddress, TlsFiles};
pub use store::{ClusterError, ClusterStore};

#[cfg(test)]
mod tests_overlay;
#[cfg(test)]
mod tests_peers;

#[cfg(test)]
mod tests {
    use super::{conformance, memory::MemoryStore, store::ClusterStore};

    #[tokio::test]
    async fn the_memory_store_behaves_as_etcd() {
        let store = MemoryStore::new();
        conformance::run_all(&store, "/t").await;
    }

    #[tokio::test]
    async fn long_lists_are_whole() {
        conformance::long_lists_are_whole(std::sync::Arc::new(MemoryStore::new()), "/l", 5000)
            .await;
    }

    #[tokio::test]
    async fn a_watch_behind_a_compaction_is_told() {
        let store = MemoryStore::new();
        let first = store.put("/c/a", b"1", None).await.unwrap();
        store.put("/c/b", b"2", None).await.unwrap();
        let last = store.put("/c/c", b"3", None).await.unwrap();
        let compact = async {
            store.compact(last);
            last
        };
        conformance::watches_behind_a_compaction_end(&store, "/c", compact, first).await;
    }

    #[tokio::test(start_paused = true)]
    async fn leases_expire_without_keepalives() {
        let store = MemoryStore::new();
        let lease = store.grant_lease(3).await.unwrap();
        store.put("/n/a", b"up", Some(lease)).await.unwrap();
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        assert!(store.keep_alive(lease).await.unwrap());
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        assert!(store.get("/n/a").await.unwrap().is_some(), "kept alive");
        tokio::time::advance(std::time::Duration::from_secs(4)).await;
        assert!(store.get("/n/a").await.unwrap().is_none(), "expired");
        assert!(!store.keep_alive(lease).await.unwrap());
    }

    #[tokio::test]
    async fn an_unreachable_store_names_itself() {
        let store = MemoryStore::new();
        store.set_unreachable(true);
        let e = store.get("/k").await.unwrap_err().to_string();
        assert!(e.contains("memory") && e.contains("unreachable"), "{e}");
    }
}
