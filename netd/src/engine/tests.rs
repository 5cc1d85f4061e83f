//! Engine tests against a fake host: planning, validation and rollback, no privileges needed.

use std::collections::BTreeSet;

use super::fake::*;
use super::EngineError;
use crate::config::container::{ContainerSpec, CreateContainer};

#[tokio::test]
async fn first_start_creates_the_predefined_networks() {
    let lab = lab().await;
    let names: BTreeSet<_> = lab.engine.networks().map(|n| n.name.to_string()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["bridge".into(), "host".into(), "none".into()])
    );
    let bridge = lab.engine.network("bridge").unwrap();
    assert_eq!(bridge.subnet.unwrap().subnet.to_string(), "172.17.0.0/16");
    assert_eq!(bridge.subnet.unwrap().gateway, ip("172.17.0.1"));
    assert!(lab.host.k().links.contains_key("netd0"));
}

#[tokio::test]
async fn default_bridge_avoids_a_host_route() {
    let lab = lab_with_routes(&["172.17.5.0/24"]).await;
    let bridge = lab.engine.network("bridge").unwrap();
    assert_eq!(bridge.subnet.unwrap().subnet.to_string(), "172.18.0.0/16");
}

#[tokio::test]
async fn networks_take_free_pools_and_refuse_overlaps() {
    let mut lab = lab_with_routes(&["172.19.0.0/16"]).await;
    let n1 = lab
        .engine
        .create_network(net_spec("n1", None))
        .await
        .unwrap();
    assert_eq!(n1.subnet.unwrap().subnet.to_string(), "172.18.0.0/16");
    assert_eq!(
        n1.bridge.unwrap().to_string(),
        format!("nd-{}", &n1.id[..12])
    );
    let n2 = lab
        .engine
        .create_network(net_spec("n2", None))
        .await
        .unwrap();
    assert_eq!(n2.subnet.unwrap().subnet.to_string(), "172.20.0.0/16");

    let dup = lab
        .engine
        .create_network(net_spec("n1", Some("10.9.0.0/24")))
        .await;
    assert!(matches!(dup, Err(EngineError::Conflict(m)) if m.contains("n1")));
    let over = lab
        .engine
        .create_network(net_spec("n3", Some("172.18.3.0/24")))
        .await;
    assert!(
        matches!(over, Err(EngineError::Conflict(m)) if m.contains("172.18.3.0/24") && m.contains("n1"))
    );
    let route = lab
        .engine
        .create_network(net_spec("n3", Some("172.19.1.0/24")))
        .await;
    assert!(
        matches!(route, Err(EngineError::Conflict(m)) if m.contains("host route to 172.19.0.0/16"))
    );
    assert_eq!(
        lab.engine.networks().count(),
        5,
        "failed creates leave no network"
    );
}

#[tokio::test]
async fn addresses_are_handed_out_in_order_and_statics_are_checked() {
    let mut lab = lab().await;
    assert_eq!(
        lab.run("a", "bridge", None).await.unwrap(),
        ip("172.17.0.2")
    );
    assert_eq!(
        lab.run("b", "bridge", None).await.unwrap(),
        ip("172.17.0.3")
    );
    assert_eq!(
        lab.run("c", "bridge", Some("172.17.0.50")).await.unwrap(),
        ip("172.17.0.50")
    );
    let before = lab.footprint();
    let taken = lab
        .run("d", "bridge", Some("172.17.0.50"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        taken.contains("172.17.0.50") && taken.contains("by c"),
        "{taken}"
    );
    let gateway = lab
        .run("d", "bridge", Some("172.17.0.1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(gateway.contains("gateway"), "{gateway}");
    let outside = lab
        .run("d", "bridge", Some("10.0.0.1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        outside.contains("10.0.0.1") && outside.contains("172.17.0.0/16"),
        "{outside}"
    );
    let dup = lab.run("a", "bridge", None).await.unwrap_err().to_string();
    assert!(dup.contains("container name a is already in use"), "{dup}");
    let unknown = lab.run("d", "nope", None).await.unwrap_err().to_string();
    assert_eq!(unknown, "network nope not found");
    assert_eq!(
        lab.footprint(),
        before,
        "failed creates leave nothing behind"
    );
    assert_eq!(
        lab.engine
            .pool(&lab.engine.network("bridge").unwrap().id.clone())
            .unwrap()
            .in_use(),
        3
    );
}

#[tokio::test]
async fn a_failed_plug_leaves_nothing_behind() {
    let mut lab = lab().await;
    let before = lab.footprint();
    lab.host.k().fail_plug = true;
    let err = lab.run("a", "bridge", None).await.unwrap_err().to_string();
    assert!(err.contains("injected"), "{err}");
    assert_eq!(lab.footprint(), before);
    assert!(lab.engine.container("a").is_err());
    lab.host.k().fail_plug = false;
    assert_eq!(
        lab.run("a", "bridge", None).await.unwrap(),
        ip("172.17.0.2"),
        "address was released"
    );
}

#[tokio::test]
async fn exhausted_pool_is_an_error() {
    let mut lab = lab().await;
    lab.engine
        .create_network(net_spec("tiny", Some("10.7.0.0/30")))
        .await
        .unwrap();
    assert_eq!(lab.run("a", "tiny", None).await.unwrap(), ip("10.7.0.2"));
    let err = lab.run("b", "tiny", None).await.unwrap_err().to_string();
    assert!(
        err.contains("no free address") && err.contains("10.7.0.0/30"),
        "{err}"
    );
}

#[tokio::test]
async fn networks_in_use_and_predefined_ones_stay() {
    let mut lab = lab().await;
    lab.engine
        .create_network(net_spec("n1", None))
        .await
        .unwrap();
    lab.run("web", "n1", None).await.unwrap();
    let err = lab
        .engine
        .remove_network("n1")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("web"), "{err}");
    let err = lab.engine.remove_network("bridge").await.unwrap_err();
    assert!(matches!(err, EngineError::Forbidden(_)));
    assert!(lab.engine.prune_networks().await.unwrap().is_empty());
    lab.engine.remove_container("web", false).await.unwrap();
    assert_eq!(
        lab.engine.prune_networks().await.unwrap(),
        vec!["n1".to_string()]
    );
    assert!(!lab.host.k().links.keys().any(|l| l.starts_with("nd-")));
}

#[tokio::test]
async fn connect_and_disconnect_move_addresses() {
    let mut lab = lab().await;
    lab.engine
        .create_network(net_spec("n1", Some("192.168.100.0/24")))
        .await
        .unwrap();
    lab.run("a", "bridge", None).await.unwrap();
    let e = lab
        .engine
        .connect("n1", "a", Some("192.168.100.100"), &[])
        .await
        .unwrap();
    assert_eq!((e.ifname.as_str(), e.ip), ("eth1", ip("192.168.100.100")));
    assert!(!e.default_route, "eth0 keeps the default route");
    let again = lab
        .engine
        .connect("n1", "a", None, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(again.contains("already connected"), "{again}");
    lab.engine.disconnect("n1", "a").await.unwrap();
    assert_eq!(lab.engine.container("a").unwrap().endpoints.len(), 1);
    let e = lab
        .engine
        .connect("n1", "a", Some("192.168.100.100"), &[])
        .await
        .unwrap();
    assert_eq!(e.ip, ip("192.168.100.100"), "the address was freed");
}

#[tokio::test]
async fn shared_namespaces() {
    let mut lab = lab().await;
    lab.run("a", "bridge", None).await.unwrap();
    let (b, _) = lab
        .engine
        .create_container(spec("b", "container:a", None))
        .await
        .unwrap();
    assert!(b.endpoints.is_empty());
    let a = lab.engine.container("a").unwrap().clone();
    assert_eq!(
        lab.engine.sandbox_env(&b).netns,
        lab.engine.sandbox_env(&a).netns
    );
    let err = lab
        .engine
        .remove_container("a", true)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("shares its network namespace with b"), "{err}");
    let err = lab
        .engine
        .connect("bridge", "b", None, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("container:a"), "{err}");
    let (none, _) = lab
        .engine
        .create_container(spec("n", "none", None))
        .await
        .unwrap();
    assert!(none.endpoints.is_empty());
    assert!(lab.engine.connect("bridge", "n", None, &[]).await.is_err());
}

#[tokio::test]
async fn restart_keeps_everything_and_removes_only_owned_orphans() {
    let mut lab = lab().await;
    lab.engine
        .create_network(net_spec("n1", None))
        .await
        .unwrap();
    lab.run("a", "n1", None).await.unwrap();
    lab.run("b", "bridge", Some("172.17.0.2")).await.unwrap();
    lab.engine
        .create_container(spec_with_ports("p", &["8080:80"]))
        .await
        .unwrap();
    lab.host
        .k()
        .links
        .insert("vethorphan".into(), "f".repeat(64));
    // A port published for a container a crash kept from being recorded.
    let recorded = lab.host.k().published.clone();
    lab.host
        .k()
        .published
        .push(crate::datapath::nat::Publication {
            proto: 6,
            host_ip: ip("0.0.0.0"),
            host_port: 9090,
            target_ip: ip("172.17.0.9"),
            target_port: 80,
        });
    assert_eq!(lab.engine.reconciles(), 1);
    let mut engine = start(&lab.host, lab.dir.path()).await;
    assert_eq!(engine.reconciles(), 2, "the count goes on across restarts");
    assert!(!lab.host.k().links.contains_key("vethorphan"));
    assert_eq!(lab.host.k().published, recorded, "only the recorded ports");
    assert_eq!(engine.containers().count(), 3);
    let (c, _) = engine
        .create_container(spec("c", "bridge", None))
        .await
        .unwrap();
    assert_eq!(
        c.endpoints[0].ip,
        ip("172.17.0.4"),
        "the held address is not given out again"
    );
    assert_eq!(engine.networks().count(), 4);
}

fn spec_with_ports(name: &str, ports: &[&str]) -> ContainerSpec {
    ContainerSpec::try_from(CreateContainer {
        name: name.into(),
        publish: ports.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn random_host_ports_skip_taken_and_bound_ones() {
    let mut lab = lab().await;
    lab.host.k().bound = vec![40001];
    let (a, _) = lab
        .engine
        .create_container(spec_with_ports("a", &["40000:80"]))
        .await
        .unwrap();
    assert_eq!(a.ports[0].host_port.unwrap().get(), 40000);
    let (b, _) = lab
        .engine
        .create_container(spec_with_ports("b", &["80", "81", "82"]))
        .await
        .unwrap();
    let mut got: Vec<u16> = b.ports.iter().map(|p| p.host_port.unwrap().get()).collect();
    got.sort();
    assert_eq!(
        got,
        vec![40002, 40003, 40004],
        "40000 is published, 40001 bound"
    );
    let err = lab
        .engine
        .create_container(spec_with_ports("c", &["80"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no free host port left in 40000-40004"),
        "{err}"
    );
    let err = lab
        .engine
        .create_container(spec_with_ports("c", &["40001:80"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("in use by a process on the host"), "{err}");
    let err = lab
        .engine
        .create_container(spec_with_ports("c", &["127.0.0.1:40000:80"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already published by container a"), "{err}");
    assert_eq!(
        lab.host.k().published.len(),
        4,
        "failed creates publish nothing"
    );
    lab.engine.remove_container("b", true).await.unwrap();
    assert_eq!(lab.host.k().published.len(), 1);
    assert!(
        lab.host.k().flushed.contains(&b.endpoints[0].ip),
        "its connections are flushed"
    );
}

#[tokio::test]
async fn ports_are_published_on_an_existing_container_all_or_none() {
    let mut lab = lab().await;
    lab.engine
        .create_container(spec_with_ports("a", &["8080:80"]))
        .await
        .unwrap();
    lab.run("b", "bridge", None).await.unwrap();
    let mappings = |specs: &[&str]| -> Vec<crate::config::port::PortMapping> {
        specs
            .iter()
            .flat_map(|s| crate::config::port::parse_publish(s).unwrap())
            .collect()
    };
    let dnat_targets = || {
        lab.host
            .k()
            .plugs
            .values()
            .filter(|p| p.dnat_target)
            .count()
    };
    assert_eq!(dnat_targets(), 1, "a's");

    // One clash (a's 8080) refuses the whole list: nothing of it is published or kept.
    let err = lab
        .engine
        .publish_ports("b", &mappings(&["9000:90", "8080:80"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("8080") && err.contains("container a"), "{err}");
    assert_eq!(lab.host.k().published.len(), 1);
    assert!(lab.engine.container("b").unwrap().ports.is_empty());
    let err = lab.engine.publish_ports("b", &[]).await.unwrap_err();
    assert!(err.to_string().contains("at least one port"), "{err}");
    let err = lab.engine.publish_ports("nobody", &mappings(&["90"])).await;
    assert!(matches!(err, Err(EngineError::NotFound { .. })));

    // A range and a random port: published, kept, and b's interface becomes a DNAT target.
    let added = lab
        .engine
        .publish_ports("b", &mappings(&["9000-9009:90-99", "100/udp"]))
        .await
        .unwrap();
    assert_eq!(added.len(), 11);
    assert!(added.iter().all(|m| m.host_port.is_some()));
    assert_eq!(lab.host.k().published.len(), 12);
    assert_eq!(lab.engine.container("b").unwrap().ports, added);
    assert_eq!(dnat_targets(), 2, "a's and now b's");
    // It survives a restart, and its own ports count as taken.
    let mut engine = start(&lab.host, lab.dir.path()).await;
    assert_eq!(engine.container("b").unwrap().ports, added);
    let err = engine.publish_ports("b", &mappings(&["9005:95"])).await;
    assert!(err.unwrap_err().to_string().contains("container b"));
}
