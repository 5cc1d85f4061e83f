//! One host's view of a cluster beyond these machines, by simulation: 1,000 nodes and
//! 100,000 overlay endpoints written into a three-member etcd (TLS, on loopback), then the
//! time the peer view a daemon keeps (`netd::cluster::peers`) takes to converge on them from
//! a full list, and on a burst of 10,000 changes through its watch; the view's memory and
//! the bytes etcd sent. Each figure is the median of three, with its range. Prints a
//! markdown table; `cargo xtask bench --suites cluster` runs it.

use std::{
    net::Ipv4Addr,
    sync::Arc,
    time::{Duration, Instant},
};

use labkit::etcd::{EtcdCluster, MemberAt};
use netd::{
    cluster::{
        etcd::EtcdStore,
        peers::{self, EndpointRecord, PeerView},
        store::ClusterStore,
        StoreAddress, TlsFiles,
    },
    config::mac::Mac,
};
use tokio::sync::watch;

const NODES: usize = 1_000;
const ENDPOINTS: usize = 100_000;
const BURST: usize = 10_000;
const ROUNDS: usize = 3;
const WRITERS: usize = 64;

fn endpoint(i: usize) -> EndpointRecord {
    // 100 networks of 1,000 endpoints, each endpoint on node i % NODES.
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i as u32);
    EndpointRecord {
        network_id: format!("net{:03}", i / 1_000),
        ip,
        mac: Mac::from_ipv4(ip),
        node: format!("node{:04}", i % NODES),
        names: vec![format!("c{i}"), format!("alias{}", i % 50)],
    }
}

/// Writes `what` with WRITERS at once.
async fn write_all(store: &Arc<dyn ClusterStore>, what: Vec<(String, Vec<u8>)>) {
    let what = Arc::new(what);
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let (store, what) = (store.clone(), what.clone());
        writers.spawn(async move {
            for (key, value) in what.iter().skip(w).step_by(WRITERS) {
                store.put(key, value, None).await.expect("a write");
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
}

async fn until(rx: &mut watch::Receiver<Arc<PeerView>>, ready: impl Fn(&PeerView) -> bool) {
    tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            if ready(&rx.borrow_and_update()) {
                return;
            }
            rx.changed().await.expect("the follower runs");
        }
    })
    .await
    .expect("the view converges within 10 minutes");
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn sent_bytes(c: &EtcdCluster) -> f64 {
    (0..3)
        .filter_map(|i| c.metric(i, "etcd_network_client_grpc_sent_bytes_total"))
        .sum()
}

/// Median and range of `xs`.
fn spread(mut xs: Vec<f64>) -> String {
    xs.sort_by(|a, b| a.total_cmp(b));
    format!(
        "{:.2} ({:.2}-{:.2})",
        xs[xs.len() / 2],
        xs[0],
        xs[xs.len() - 1]
    )
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let members = MemberAt::loopback(3).expect("ports");
    let c = EtcdCluster::start(&dir.path().join("etcd"), members).expect("etcd");
    let files = TlsFiles {
        ca: Some(c.tls.ca.clone()),
        cert: Some(c.tls.client_cert.clone()),
        key: Some(c.tls.client_key.clone()),
    };
    let address = StoreAddress::parse(&c.store_address(), files).unwrap();
    let store: Arc<dyn ClusterStore> = Arc::new(EtcdStore::connect(&address).await.unwrap());

    let started = Instant::now();
    let lease = store.grant_lease(3_600).await.unwrap();
    let mut nodes = Vec::new();
    for n in 0..NODES {
        let name = format!("node{n:04}");
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 0, 0)) + n as u32);
        let record = format!(
            r#"{{"name":"{name}","address":"{ip}","vxlan_port":4790,"joined":"2026-12-07T00:00:00Z"}}"#
        );
        nodes.push((format!("/netd/v1/nodes/{name}"), record.into_bytes()));
        let alive = format!(r#"{{"address":"{ip}","since":"2026-12-07T00:00:00Z"}}"#);
        store
            .put(
                &format!("/netd/v1/alive/{name}"),
                alive.as_bytes(),
                Some(lease),
            )
            .await
            .unwrap();
    }
    write_all(&store, nodes).await;
    let endpoints: Vec<(String, Vec<u8>)> = (0..ENDPOINTS)
        .map(|i| {
            let e = endpoint(i);
            let key = format!("/netd/v1/overlay/endpoints/{}/{}", e.network_id, e.ip);
            (key, serde_json::to_vec(&e).unwrap())
        })
        .collect();
    write_all(&store, endpoints).await;
    let written = started.elapsed();

    let (mut lists, mut bursts, mut rss, mut list_bytes, mut burst_bytes) =
        (vec![], vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        let (before_rss, before_bytes) = (rss_kib(), sent_bytes(&c));
        let t = Instant::now();
        let mut view = peers::follow(store.clone());
        let total = ENDPOINTS + round * BURST;
        until(&mut view, |v| {
            v.endpoints.len() == total && v.nodes.len() == NODES
        })
        .await;
        lists.push(t.elapsed().as_secs_f64());
        list_bytes.push((sent_bytes(&c) - before_bytes) / 1e6);
        // The first view's: later ones reuse what the allocator kept.
        if round == 0 {
            rss.push(rss_kib().saturating_sub(before_rss) as f64 / 1024.0);
        }

        // A burst of new endpoints, through the watch.
        let burst: Vec<(String, Vec<u8>)> = (0..BURST)
            .map(|i| {
                let e = endpoint(ENDPOINTS + round * BURST + i);
                let key = format!("/netd/v1/overlay/endpoints/{}/{}", e.network_id, e.ip);
                (key, serde_json::to_vec(&e).unwrap())
            })
            .collect();
        let before_bytes = sent_bytes(&c);
        let t = Instant::now();
        write_all(&store, burst).await;
        let wrote = t.elapsed();
        until(&mut view, |v| v.endpoints.len() == total + BURST).await;
        bursts.push(t.elapsed().as_secs_f64());
        burst_bytes.push((sent_bytes(&c) - before_bytes) / 1e6);
        eprintln!(
            "round {round}: list {:.2} s, burst written in {:.2} s, seen after {:.2} s",
            lists[round],
            wrote.as_secs_f64(),
            bursts[round]
        );
        drop(view);
    }
    println!(
        "cluster view, {NODES} nodes and {ENDPOINTS} endpoints (written in {:.0} s) in a three-member etcd with TLS on loopback; median of {ROUNDS} (min-max)\n",
        written.as_secs_f64()
    );
    println!("| measure | value |\n| --- | --- |");
    println!(
        "| full list until the view holds every endpoint, s | {} |",
        spread(lists)
    );
    println!(
        "| burst of {BURST} new endpoints: from the first write until the view holds them, s | {} |",
        spread(bursts)
    );
    println!(
        "| the first view's memory (RSS growth of the process), MiB | {} |",
        spread(rss)
    );
    println!(
        "| etcd's bytes sent for the list, MB | {} |",
        spread(list_bytes)
    );
    println!(
        "| etcd's bytes sent during the burst (writers' answers included), MB | {} |",
        spread(burst_bytes)
    );
}
