//! The peer view on the in-memory store: it follows endpoints and liveness, resumes a lost
//! watch, and lists again after a compaction.

use std::{net::Ipv4Addr, sync::Arc, time::Duration};

use tokio::sync::watch;

use super::{
    heartbeat::TaskKeeper,
    memory::MemoryStore,
    nodes::{Membership, NodeRecord},
    peers::{self, EndpointRecord, PeerView},
    store::ClusterStore,
};
use crate::config::mac::Mac;

async fn join(store: &Arc<dyn ClusterStore>, name: &str, last: u8) -> Arc<Membership> {
    let record = NodeRecord {
        name: name.into(),
        address: Ipv4Addr::new(10, 88, 0, last),
        vxlan_port: 4790,
        joined: chrono::Utc::now(),
    };
    Membership::join(store.clone(), record, 5, Arc::new(TaskKeeper::default()))
        .await
        .unwrap()
}

fn endpoint(node: &str, last: u8) -> EndpointRecord {
    let ip = Ipv4Addr::new(10, 1, 0, last);
    EndpointRecord {
        network_id: "blue-id".into(),
        ip,
        mac: Mac::from_ipv4(ip),
        node: node.into(),
        names: vec![format!("c{last}")],
    }
}

/// Waits (bounded) until the view satisfies `ready`.
async fn until(rx: &mut watch::Receiver<Arc<PeerView>>, ready: impl Fn(&PeerView) -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if ready(&rx.borrow_and_update()) {
                return;
            }
            rx.changed().await.expect("the follower runs");
        }
    });
    let reached = waited.await.is_ok();
    assert!(reached, "the view never got there: {:?}", rx.borrow());
}

#[tokio::test]
async fn the_view_follows_endpoints_and_liveness() {
    let memory = Arc::new(MemoryStore::new());
    let store: Arc<dyn ClusterStore> = memory.clone();
    join(&store, "host1", 11).await;
    let host2 = join(&store, "host2", 12).await;
    let mut view = peers::follow(store.clone());
    let e = endpoint("host2", 5);
    peers::publish(store.as_ref(), &e).await.unwrap();
    peers::publish(store.as_ref(), &endpoint("host1", 6))
        .await
        .unwrap();
    until(&mut view, |v| v.remotes("host1").len() == 1).await;
    let remote = &view.borrow().remotes("host1")[0];
    assert_eq!(remote.endpoint, e);
    assert_eq!(remote.node_address, Some(Ipv4Addr::new(10, 88, 0, 12)));
    assert!(remote.reachable);

    // host2's lease expires: its endpoint stays, unreachable; its address stays its own.
    let lease = host2.nodes().await.unwrap();
    assert!(lease.iter().all(|n| n.ready));
    memory.expire_lease(current_lease(&memory, "host2").await);
    until(&mut view, |v| {
        v.remotes("host1").iter().all(|r| !r.reachable)
    })
    .await;

    assert!(peers::withdraw(store.as_ref(), &e).await.unwrap());
    until(&mut view, |v| v.remotes("host1").is_empty()).await;
}

/// The lease of `node`'s liveness key.
async fn current_lease(store: &MemoryStore, node: &str) -> i64 {
    let key = format!("/netd/v1/alive/{node}");
    store.get(&key).await.unwrap().expect("alive").lease
}

#[tokio::test]
async fn a_lost_watch_resumes_and_a_compacted_one_lists_again() {
    let memory = Arc::new(MemoryStore::new());
    let store: Arc<dyn ClusterStore> = memory.clone();
    join(&store, "host1", 11).await;
    join(&store, "host2", 12).await;
    let mut view = peers::follow(store.clone());
    until(&mut view, |v| v.nodes.len() == 2).await;

    // The connection lost: what changed meanwhile comes with the resumed watch.
    memory.drop_watches();
    for last in 1..=3 {
        peers::publish(store.as_ref(), &endpoint("host2", last))
            .await
            .unwrap();
    }
    until(&mut view, |v| v.remotes("host1").len() == 3).await;

    // Lost again, and the history compacted meanwhile: the view lists again.
    memory.drop_watches();
    peers::withdraw(store.as_ref(), &endpoint("host2", 1))
        .await
        .unwrap();
    let now = peers::publish(store.as_ref(), &endpoint("host2", 4)).await;
    now.unwrap();
    let (_, revision) = store.list("/").await.unwrap();
    memory.compact(revision);
    until(&mut view, |v| {
        let ips: Vec<u8> = v
            .remotes("host1")
            .iter()
            .map(|r| r.endpoint.ip.octets()[3])
            .collect();
        ips == [2, 3, 4]
    })
    .await;
    assert_eq!(
        view.borrow().lists,
        2,
        "listed at start and after the compaction only"
    );
}
