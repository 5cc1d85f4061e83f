//! netd's cluster store against a real etcd: a three-member cluster with TLS for clients and
//! peers, on loopback. The checks the in-memory store passes, then what only a real cluster
//! shows: leases expiring on their own, a compaction behind a watch, the leader killed, and
//! the whole cluster stopped and started again.

use std::time::{Duration, Instant};

use integration_tests::has_etcd;
use labkit::etcd::{EtcdCluster, MemberAt};
use netd::cluster::{
    conformance, etcd::EtcdStore, store::ClusterStore, ClusterError, StoreAddress, TlsFiles,
};

fn cluster(dir: &std::path::Path) -> EtcdCluster {
    let members = MemberAt::loopback(3).expect("ports");
    EtcdCluster::start(&dir.join("etcd"), members).expect("etcd cluster")
}

fn address(c: &EtcdCluster, tls: bool) -> StoreAddress {
    let files = match tls {
        true => TlsFiles {
            ca: Some(c.tls.ca.clone()),
            cert: Some(c.tls.client_cert.clone()),
            key: Some(c.tls.client_key.clone()),
        },
        false => TlsFiles::default(),
    };
    StoreAddress::parse(&c.store_address(), files).expect("address")
}

/// Retries `op` until it succeeds, for at most `limit`: the cluster elects a leader again.
async fn within<T>(
    limit: Duration,
    mut op: impl AsyncFnMut() -> Result<T, ClusterError>,
) -> Result<T, ClusterError> {
    let deadline = Instant::now() + limit;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn etcd_behaves_as_netd_needs() {
    if !has_etcd("etcd_behaves_as_netd_needs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path());
    let store = EtcdStore::connect(&address(&c, true))
        .await
        .expect("connect");
    conformance::run_all(&store, "/netd-test").await;

    // A watch from before a compaction is told, and ends.
    let first = store.put("/compact/a", b"1", None).await.unwrap();
    store.put("/compact/b", b"2", None).await.unwrap();
    let last = store.put("/compact/c", b"3", None).await.unwrap();
    let compact = async {
        store.compact(last).await.expect("compact");
        last
    };
    conformance::watches_behind_a_compaction_end(&store, "/compact", compact, first).await;

    // 50 addresses claimed at once by each of three hosts: 150 distinct addresses.
    let shared: std::sync::Arc<dyn ClusterStore> = std::sync::Arc::new(store);
    conformance::concurrent_claims_are_distinct(shared.clone(), "blue", 3, 50).await;
    // Longer than a page of the etcd client's lists.
    conformance::long_lists_are_whole(shared.clone(), "/long", 5000).await;
    let store = shared;

    // A lease with no keepalive expires by itself (etcd's TTLs are whole seconds).
    let lease = store.grant_lease(2).await.unwrap();
    store.put("/lease/node", b"up", Some(lease)).await.unwrap();
    let gone = async {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if store.get("/lease/node").await.unwrap().is_none() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        gone.await,
        "the key of an unrenewed 2 s lease was still there after 15 s"
    );
    assert!(!store.keep_alive(lease).await.unwrap());
}

#[tokio::test]
async fn a_client_without_the_clusters_certificate_is_refused() {
    if !has_etcd("a_client_without_the_clusters_certificate_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path());
    let plain = EtcdStore::connect(&address(&c, false)).await;
    let refused = match plain {
        Ok(store) => store.get("/k").await.map(drop),
        Err(e) => Err(e),
    };
    let e = refused
        .expect_err("plain HTTP to a TLS cluster")
        .to_string();
    assert!(
        e.contains(&c.store_address()[7..]),
        "the error names the store: {e}"
    );
}

#[tokio::test]
async fn the_store_outlives_its_leader_and_a_full_stop() {
    if !has_etcd("the_store_outlives_its_leader_and_a_full_stop") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path());
    let store = EtcdStore::connect(&address(&c, true))
        .await
        .expect("connect");
    assert!(store
        .create("/claims/10.0.0.2", b"node-a", None)
        .await
        .unwrap());

    // The leader SIGKILLed: the other two elect one, and claims stay decided.
    let leader = labkit::wait_until(Duration::from_secs(10), || c.leader().is_some())
        .then(|| c.leader())
        .flatten()
        .expect("a leader");
    c.kill(leader);
    let again = within(Duration::from_secs(20), async || {
        store.create("/claims/10.0.0.2", b"node-b", None).await
    });
    assert!(
        !again.await.expect("the two members left answer"),
        "a duplicate claim"
    );
    let new = within(Duration::from_secs(20), async || {
        store.create("/claims/10.0.0.3", b"node-b", None).await
    });
    assert!(new.await.unwrap());
    c.restart(leader).unwrap();
    c.wait_healthy(Duration::from_secs(30)).unwrap();

    // Every member stopped: requests fail within their bound, naming the store.
    for i in 0..3 {
        c.kill(i);
    }
    let started = Instant::now();
    let e = store
        .get("/claims/10.0.0.2")
        .await
        .expect_err("no member runs");
    assert!(matches!(e, ClusterError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("etcd at 127.0.0.1:"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "an unreachable store took {:?} to say so",
        started.elapsed()
    );

    // Started again on their data: the same client converges on what was decided.
    for i in 0..3 {
        c.restart(i).unwrap();
    }
    c.wait_healthy(Duration::from_secs(60)).unwrap();
    let held = within(Duration::from_secs(30), async || {
        store.get("/claims/10.0.0.2").await
    });
    let held = held.await.expect("the cluster answers again");
    assert_eq!(held.expect("the claim survived").value, b"node-a");
}

/// Waits (bounded) until the peer view satisfies `ready`.
async fn view_until(
    rx: &mut tokio::sync::watch::Receiver<std::sync::Arc<netd::cluster::peers::PeerView>>,
    limit: Duration,
    ready: impl Fn(&netd::cluster::peers::PeerView) -> bool,
) -> bool {
    tokio::time::timeout(limit, async {
        loop {
            if ready(&rx.borrow_and_update()) {
                return;
            }
            rx.changed().await.expect("the follower runs");
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn the_peer_view_follows_etcd_across_a_leader_kill() {
    use netd::cluster::peers::{self, EndpointRecord};
    if !has_etcd("the_peer_view_follows_etcd_across_a_leader_kill") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path());
    let store: std::sync::Arc<dyn ClusterStore> = std::sync::Arc::new(
        EtcdStore::connect(&address(&c, true))
            .await
            .expect("connect"),
    );
    let node = br#"{"name":"host2","address":"10.88.0.12","vxlan_port":4790,"joined":"2026-12-07T00:00:00Z"}"#;
    store.put("/netd/v1/nodes/host2", node, None).await.unwrap();
    let endpoint = |last: u8| {
        let ip = std::net::Ipv4Addr::new(10, 1, 0, last);
        EndpointRecord {
            network_id: "blue-id".into(),
            ip,
            mac: netd::config::mac::Mac::from_ipv4(ip),
            node: "host2".into(),
            names: vec![],
        }
    };
    let mut view = peers::follow(store.clone());
    peers::publish(store.as_ref(), &endpoint(1)).await.unwrap();
    let seen = view_until(&mut view, Duration::from_secs(10), |v| {
        v.remotes("host1").len() == 1
    });
    assert!(seen.await, "{:?}", view.borrow());

    let leader = labkit::wait_until(Duration::from_secs(10), || c.leader().is_some())
        .then(|| c.leader())
        .flatten()
        .expect("a leader");
    c.kill(leader);
    let published = within(Duration::from_secs(20), async || {
        peers::publish(store.as_ref(), &endpoint(2)).await
    });
    published.await.expect("the two members left answer");
    let seen = view_until(&mut view, Duration::from_secs(30), |v| {
        v.remotes("host1").len() == 2
    });
    assert!(seen.await, "the view missed a change: {:?}", view.borrow());
}
