//! Engine tests of macvlan networks with the fake host: what is refused (named, leaving
//! nothing), and what the plugs ask of the kernel.

use std::collections::BTreeMap;

use super::fake::*;
use crate::config::{
    container::{ContainerSpec, CreateContainer},
    network::{CreateNetwork, NetworkSpec},
};

fn macvlan(name: &str, subnet: &str, range: Option<&str>, opts: &[(&str, &str)]) -> NetworkSpec {
    NetworkSpec::try_from(CreateNetwork {
        name: name.into(),
        driver: Some("macvlan".into()),
        subnet: Some(subnet.into()),
        ip_range: range.map(Into::into),
        options: opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    })
    .unwrap()
}

/// A lab whose host has an `eth0` (not netd's) on the LAN 192.168.0.0/24.
async fn lan_lab() -> Lab {
    let lab = lab_with_routes(&["192.168.0.0/24"]).await;
    lab.host.k().links.insert("eth0".into(), String::new());
    lab
}

#[tokio::test]
async fn a_macvlan_network_hands_out_its_range_and_plugs_macvlans() {
    let mut lab = lan_lab().await;
    let spec = macvlan(
        "lan",
        "192.168.0.0/24",
        Some("192.168.0.64/28"),
        &[("parent", "eth0"), ("macvlan_mode", "private")],
    );
    let net = lab.engine.create_network(spec).await.unwrap();
    assert!(net.bridge.is_none() && !net.masquerade);
    let lan: ipnetwork::Ipv4Network = "192.168.0.0/24".parse().unwrap();
    assert!(
        !lab.host.k().masq.contains(&lan),
        "the LAN is not masqueraded"
    );
    let links = lab.host.k().links.len();
    let a = lab.run("a", "lan", None).await.unwrap();
    assert_eq!(a, ip("192.168.0.64"));
    {
        let k = lab.host.k();
        assert_eq!(
            k.links.len(),
            links,
            "no host-side link: the macvlan is the container's"
        );
        let plug = k.plugs.values().next().unwrap();
        let m = plug.macvlan.as_ref().expect("a macvlan plug");
        assert_eq!((m.parent.as_str(), m.mode.as_str()), ("eth0", "private"));
        assert_eq!(plug.default_gateway, Some(ip("192.168.0.1")));
    }
    lab.engine.remove_container("a", true).await.unwrap();
    assert!(lab.host.k().plugs.is_empty(), "rm removed the macvlan");
}

#[tokio::test]
async fn bad_macvlan_networks_are_named_and_leave_nothing() {
    let mut lab = lan_lab().await;
    let before = lab.footprint();
    let nets = lab.engine.networks().count();
    let e = lab
        .engine
        .create_network(macvlan("x", "192.168.0.0/24", None, &[("parent", "eth9")]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("parent=eth9") && e.contains("no such interface"),
        "{e}"
    );
    let vlan = macvlan("v", "192.168.0.0/24", None, &[("parent", "eth0.10")]);
    let e = lab
        .engine
        .create_network(vlan)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("parent=eth0.10") && e.contains("802.1Q"), "{e}");
    let first = macvlan("one", "192.168.0.0/25", None, &[("parent", "eth0")]);
    lab.engine.create_network(first).await.unwrap();
    let e = lab
        .engine
        .create_network(macvlan(
            "two",
            "192.168.0.0/24",
            None,
            &[("parent", "eth0")],
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("parent eth0 is taken by macvlan network one"),
        "{e}"
    );
    // Disjoint subnets share a parent, as in Docker.
    let third = macvlan("three", "192.168.0.128/25", None, &[("parent", "eth0")]);
    lab.engine.create_network(third).await.unwrap();
    let passthru = macvlan(
        "pt",
        "10.40.0.0/24",
        None,
        &[("parent", "eth0"), ("macvlan_mode", "passthru")],
    );
    let e = lab
        .engine
        .create_network(passthru)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("passthru"), "{e}");
    assert_eq!(lab.engine.networks().count(), nets + 2);
    assert_eq!(lab.footprint(), before);
}

#[tokio::test]
async fn passthru_takes_one_container_and_ports_are_not_published() {
    let mut lab = lan_lab().await;
    let spec = macvlan(
        "pt",
        "192.168.0.0/24",
        None,
        &[("parent", "eth0"), ("macvlan_mode", "passthru")],
    );
    lab.engine.create_network(spec).await.unwrap();
    lab.run("first", "pt", None).await.unwrap();
    let before = lab.footprint();
    let e = lab.run("second", "pt", None).await.unwrap_err().to_string();
    assert!(e.contains("passthru") && e.contains("first"), "{e}");
    assert_eq!(
        lab.footprint(),
        before,
        "nothing is left of the refused one"
    );

    let spec = macvlan("lan", "10.41.0.0/24", None, &[("parent", "eth1")]);
    lab.host.k().links.insert("eth1".into(), String::new());
    lab.engine.create_network(spec).await.unwrap();
    let published = ContainerSpec::try_from(CreateContainer {
        name: "web".into(),
        network: Some("lan".into()),
        publish: vec!["8080:80".into()],
        ..Default::default()
    })
    .unwrap();
    let before = lab.footprint();
    let e = lab
        .engine
        .create_container(published)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("macvlan") && e.contains("-p"), "{e}");
    assert_eq!(lab.footprint(), before);
    assert!(lab.host.k().published.is_empty());
}

#[tokio::test]
async fn addresses_in_use_on_the_lan_are_skipped_or_refused() {
    let mut lab = lan_lab().await;
    {
        let mut k = lab.host.k();
        k.lan.insert(ip("192.168.0.64"), [2, 0, 0, 0, 0, 0x64]);
        k.lan.insert(ip("192.168.0.70"), [2, 0, 0, 0, 0, 0x70]);
        k.addresses.push(ip("192.168.0.66"));
    }
    let spec = macvlan(
        "lan",
        "192.168.0.0/24",
        Some("192.168.0.64/28"),
        &[("parent", "eth0")],
    );
    lab.engine.create_network(spec).await.unwrap();
    assert_eq!(lab.run("a", "lan", None).await.unwrap(), ip("192.168.0.65"));
    assert_eq!(lab.run("b", "lan", None).await.unwrap(), ip("192.168.0.67"));
    let before = lab.footprint();
    let e = lab
        .run("c", "lan", Some("192.168.0.70"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("192.168.0.70") && e.contains("02:00:00:00:00:70"),
        "{e}"
    );
    let e = lab
        .run("c", "lan", Some("192.168.0.66"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("192.168.0.66") && e.contains("this host"), "{e}");
    assert_eq!(lab.footprint(), before);
    // The refused address was not kept: once free on the LAN, it can be asked for.
    lab.host.k().lan.remove(&ip("192.168.0.70"));
    let c = lab.run("c", "lan", Some("192.168.0.70")).await.unwrap();
    assert_eq!(c, ip("192.168.0.70"));
}

#[tokio::test]
async fn a_running_macvlan_container_is_not_repaired_for_lacking_a_host_port() {
    let mut lab = lan_lab().await;
    let spec = macvlan("lan", "192.168.0.0/24", None, &[("parent", "eth0")]);
    lab.engine.create_network(spec).await.unwrap();
    lab.run("a", "lan", None).await.unwrap();
    let forgets = lab.host.k().forgets.len();
    // Its interface lives in its namespace, never among the daemon's links.
    assert_eq!(lab.engine.repair().await, 0);
    assert_eq!(lab.engine.repair().await, 0);
    assert_eq!(
        lab.host.k().forgets.len(),
        forgets,
        "no datapath entry to forget"
    );
}

#[tokio::test]
async fn an_internal_macvlan_network_sits_on_a_parent_of_its_own() {
    let mut lab = lan_lab().await;
    let net = lab
        .engine
        .create_network(macvlan("inner", "10.60.0.0/24", None, &[]))
        .await
        .unwrap();
    assert!(net.internal, "no parent: internal, as in Docker");
    let parent = crate::state::model::internal_parent_name(&net.id);
    assert_eq!(lab.host.k().links.get(parent.as_str()), Some(&net.id));
    lab.run("a", "inner", None).await.unwrap();
    {
        let k = lab.host.k();
        let plug = k.plugs.values().next().unwrap();
        assert_eq!(plug.macvlan.as_ref().unwrap().parent, parent);
        assert_eq!(plug.default_gateway, None, "no way out");
        assert!(k.lan.is_empty());
    }
    lab.engine.remove_container("a", true).await.unwrap();
    lab.engine.remove_network("inner").await.unwrap();
    assert!(!lab.host.k().links.contains_key(parent.as_str()));
}
