//! What netd relies on of a cluster store, checked the same way against the in-memory store
//! (unit tests) and a real etcd cluster (the integration tests). Each check panics with what
//! differed; `prefix` keeps runs apart.

use std::time::Duration;

use super::store::{Change, ClusterStore, WatchEvent};

/// Bound on waiting for a watch event (a real store on a loaded machine).
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Every check that needs no help from outside the store.
pub async fn run_all(store: &dyn ClusterStore, prefix: &str) {
    claims_are_create_only(store, &format!("{prefix}/claims")).await;
    claims_of_several_keys_are_all_or_none(store, &format!("{prefix}/multi")).await;
    deletes_compare_the_value(store, &format!("{prefix}/deletes")).await;
    lists_are_ordered_with_a_revision(store, &format!("{prefix}/lists")).await;
    watches_see_changes_after_a_list(store, &format!("{prefix}/watch")).await;
    watches_resume_from_a_revision(store, &format!("{prefix}/resume")).await;
    revoked_leases_take_their_keys(store, &format!("{prefix}/leases")).await;
}

pub async fn claims_are_create_only(store: &dyn ClusterStore, prefix: &str) {
    let key = format!("{prefix}/10.0.0.2");
    assert!(store.create(&key, b"node-a", None).await.unwrap());
    assert!(!store.create(&key, b"node-b", None).await.unwrap());
    let held = store.get(&key).await.unwrap().expect("the first claim");
    assert_eq!(
        held.value, b"node-a",
        "the second claim overwrote the first"
    );
}

pub async fn claims_of_several_keys_are_all_or_none(store: &dyn ClusterStore, prefix: &str) {
    let (name, vni, other) = (
        format!("{prefix}/names/blue"),
        format!("{prefix}/vnis/4097"),
        format!("{prefix}/vnis/4098"),
    );
    assert!(store
        .create_all(&[(&name, b"id1"), (&vni, b"id1")])
        .await
        .unwrap());
    // The name is taken: the other VNI is not claimed either.
    assert!(!store
        .create_all(&[(&other, b"id2"), (&name, b"id2")])
        .await
        .unwrap());
    assert!(store.get(&other).await.unwrap().is_none(), "half a claim");
    assert_eq!(store.get(&name).await.unwrap().unwrap().value, b"id1");
}

pub async fn deletes_compare_the_value(store: &dyn ClusterStore, prefix: &str) {
    let key = format!("{prefix}/k");
    store.put(&key, b"mine", None).await.unwrap();
    assert!(!store.delete_if(&key, b"theirs").await.unwrap());
    assert!(store.get(&key).await.unwrap().is_some());
    assert!(store.delete_if(&key, b"mine").await.unwrap());
    assert!(store.get(&key).await.unwrap().is_none());
    assert!(!store.delete_if(&key, b"mine").await.unwrap());
}

pub async fn lists_are_ordered_with_a_revision(store: &dyn ClusterStore, prefix: &str) {
    let mut last = 0;
    for k in ["b", "a", "c"] {
        last = store
            .put(&format!("{prefix}/{k}"), k.as_bytes(), None)
            .await
            .unwrap();
    }
    // A key beside the prefix, not under it.
    store.put(&format!("{prefix}x"), b"x", None).await.unwrap();
    let (entries, revision) = store.list(&format!("{prefix}/")).await.unwrap();
    let keys: Vec<_> = entries.iter().map(|e| e.key.clone()).collect();
    let want: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|k| format!("{prefix}/{k}"))
        .collect();
    assert_eq!(keys, want);
    assert!(
        revision > last,
        "list revision {revision} before the last write {last}"
    );
}

pub async fn watches_see_changes_after_a_list(store: &dyn ClusterStore, prefix: &str) {
    store
        .put(&format!("{prefix}/old"), b"1", None)
        .await
        .unwrap();
    let (_, revision) = store.list(prefix).await.unwrap();
    let mut watch = store.watch(prefix, revision).await.unwrap();
    store
        .put(&format!("{prefix}/new"), b"2", None)
        .await
        .unwrap();
    store
        .delete_if(&format!("{prefix}/old"), b"1")
        .await
        .unwrap();
    let changes = next_changes(&mut watch, 2).await;
    match (&changes[0], &changes[1]) {
        (Change::Put(e), Change::Delete { key, revision: r }) => {
            assert_eq!(e.key, format!("{prefix}/new"));
            assert_eq!(key, &format!("{prefix}/old"));
            assert!(*r > e.mod_revision);
        }
        other => panic!("expected a put then a delete, got {other:?}"),
    }
}

pub async fn watches_resume_from_a_revision(store: &dyn ClusterStore, prefix: &str) {
    let first = store.put(&format!("{prefix}/1"), b"1", None).await.unwrap();
    store.put(&format!("{prefix}/2"), b"2", None).await.unwrap();
    store.put(&format!("{prefix}/3"), b"3", None).await.unwrap();
    let mut watch = store.watch(prefix, first).await.unwrap();
    let keys: Vec<String> = next_changes(&mut watch, 2)
        .await
        .into_iter()
        .map(|c| match c {
            Change::Put(e) => e.key,
            other => panic!("expected puts, got {other:?}"),
        })
        .collect();
    assert_eq!(keys, [format!("{prefix}/2"), format!("{prefix}/3")]);
}

pub async fn revoked_leases_take_their_keys(store: &dyn ClusterStore, prefix: &str) {
    let lease = store.grant_lease(30).await.unwrap();
    let key = format!("{prefix}/alive");
    assert!(store.create(&key, b"node-a", Some(lease)).await.unwrap());
    assert!(store.keep_alive(lease).await.unwrap());
    let (_, revision) = store.list(prefix).await.unwrap();
    let mut watch = store.watch(prefix, revision).await.unwrap();
    store.revoke_lease(lease).await.unwrap();
    assert!(store.get(&key).await.unwrap().is_none());
    assert!(!store.keep_alive(lease).await.unwrap(), "a revoked lease");
    let changes = next_changes(&mut watch, 1).await;
    assert!(matches!(&changes[0], Change::Delete { key: k, .. } if *k == key));
    assert!(store.create(&key, b"x", Some(lease)).await.is_err());
}

/// A watch that starts behind a compaction says so, and ends. `compact` compacts at a
/// revision at least two past `before`, and returns it.
pub async fn watches_behind_a_compaction_end(
    store: &dyn ClusterStore,
    prefix: &str,
    compact: impl std::future::Future<Output = i64>,
    before: i64,
) {
    let compacted = compact.await;
    let mut watch = store.watch(prefix, before).await.unwrap();
    match tokio::time::timeout(EVENT_WAIT, watch.recv()).await {
        Ok(Some(WatchEvent::Compacted { revision })) => assert_eq!(revision, compacted),
        other => panic!("expected the watch to say compacted, got {other:?}"),
    }
    let after = tokio::time::timeout(EVENT_WAIT, watch.recv()).await;
    assert!(matches!(after, Ok(None)), "the watch went on: {after:?}");
}

/// The next `n` changes of `watch`, however they are batched.
pub async fn next_changes(watch: &mut super::store::Watch, n: usize) -> Vec<Change> {
    let mut changes = Vec::new();
    while changes.len() < n {
        match tokio::time::timeout(EVENT_WAIT, watch.recv()).await {
            Ok(Some(WatchEvent::Changes(more))) => changes.extend(more),
            other => panic!("waiting for {n} changes after {changes:?}: {other:?}"),
        }
    }
    changes
}

/// `hosts` hosts each claiming `per_host` addresses of one overlay network at once get
/// distinct addresses, and a static address another host holds is refused, naming it.
pub async fn concurrent_claims_are_distinct(
    store: std::sync::Arc<dyn ClusterStore>,
    name: &str,
    hosts: usize,
    per_host: usize,
) {
    use super::{
        addresses::{self, AddressClaim},
        overlay::{OverlayNetwork, Overlays},
    };
    let net = OverlayNetwork {
        id: format!("{name}-id"),
        name: name.into(),
        vni: 0,
        subnet: crate::config::subnet::SubnetSpec::parse("10.200.0.0/24", None, None).unwrap(),
        internal: false,
        icc: true,
        vip_aliases: false,
        mtu: 0,
        labels: Default::default(),
        created: chrono::Utc::now(),
    };
    let net = Overlays::new(store.clone()).create(net).await.unwrap();
    let mut claimers = tokio::task::JoinSet::new();
    for h in 0..hosts {
        for e in 0..per_host {
            let (store, net) = (store.clone(), net.clone());
            claimers.spawn(async move {
                let claim = AddressClaim {
                    node: format!("host{h}"),
                    endpoint: format!("ep{h}-{e}"),
                };
                addresses::claim(store.as_ref(), &net, &claim, None).await
            });
        }
    }
    let mut got = std::collections::BTreeSet::new();
    while let Some(claimed) = claimers.join_next().await {
        let ip = claimed.unwrap().expect("an address");
        assert!(got.insert(ip), "{ip} handed out twice");
    }
    assert_eq!(got.len(), hosts * per_host);
    let held = addresses::claims(store.as_ref(), &net.id).await.unwrap();
    assert_eq!(held.len(), hosts * per_host, "claims in the store");

    let taken = *got.iter().next().unwrap();
    let thief = AddressClaim {
        node: "intruder".into(),
        endpoint: "x".into(),
    };
    let e = addresses::claim(store.as_ref(), &net, &thief, Some(taken))
        .await
        .unwrap_err()
        .to_string();
    let holder = &held[&taken];
    assert!(
        e.contains(&taken.to_string()) && e.contains(&holder.node),
        "{e}"
    );
}

/// A list longer than any one answer holds comes whole, in key order, at one revision.
pub async fn long_lists_are_whole(store: std::sync::Arc<dyn ClusterStore>, prefix: &str, n: usize) {
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..16 {
        let (store, prefix) = (store.clone(), prefix.to_string());
        writers.spawn(async move {
            for i in (w..n).step_by(16) {
                let key = format!("{prefix}/{i:06}");
                store.put(&key, b"x", None).await.unwrap();
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    let (entries, revision) = store.list(&format!("{prefix}/")).await.unwrap();
    assert_eq!(entries.len(), n);
    let sorted = entries.windows(2).all(|w| w[0].key < w[1].key);
    assert!(sorted, "a list out of key order");
    assert!(entries.iter().all(|e| e.mod_revision <= revision));
}
