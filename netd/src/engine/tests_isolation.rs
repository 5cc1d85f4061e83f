//! Engine tests of the isolation rules handed to the datapath.

use std::collections::BTreeMap;

use super::fake::*;
use crate::config::network::{CreateNetwork, NetworkSpec};

pub(super) fn spec_with(
    name: &str,
    subnet: &str,
    internal: bool,
    options: &[(&str, &str)],
) -> NetworkSpec {
    NetworkSpec::try_from(CreateNetwork {
        name: name.into(),
        subnet: Some(subnet.into()),
        internal,
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn every_bridge_network_has_rules_with_its_options() {
    let mut lab = lab().await;
    lab.engine
        .create_network(spec_with(
            "quiet",
            "10.1.0.0/24",
            false,
            &[("icc", "false")],
        ))
        .await
        .unwrap();
    lab.engine
        .create_network(spec_with("sealed", "10.2.0.0/24", true, &[]))
        .await
        .unwrap();
    lab.engine
        .create_network(spec_with(
            "open",
            "10.3.0.0/24",
            false,
            &[("com.docker.network.bridge.gateway_mode_ipv4", "routed")],
        ))
        .await
        .unwrap();
    let rules = lab.host.k().rules.clone();
    assert_eq!(rules.len(), 4, "bridge plus three; host and none have none");
    let rule = |subnet: &str| {
        rules
            .iter()
            .find(|r| r.subnet.to_string() == subnet)
            .unwrap()
            .clone()
    };
    let quiet = rule("10.1.0.0/24");
    assert!(!quiet.icc && !quiet.internal && !quiet.routed);
    assert_eq!(quiet.gateway, ip("10.1.0.1"));
    assert_eq!(quiet.gateway_mac.to_string(), "02:4e:44:01:00:01");
    assert!(rule("10.2.0.0/24").internal);
    assert!(rule("10.3.0.0/24").routed);
    let bridge = rule("172.17.0.0/16");
    assert!(bridge.icc && !bridge.routed);
    let mut ids: Vec<u32> = rules.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "datapath ids are unique");
    assert!(!ids.contains(&0));
    assert_eq!(lab.engine.network("quiet").unwrap().datapath_id(), quiet.id);

    lab.engine.remove_network("quiet").await.unwrap();
    assert!(!lab
        .host
        .k()
        .rules
        .iter()
        .any(|r| r.subnet.to_string() == "10.1.0.0/24"));
}

#[tokio::test]
async fn ports_carry_their_network_id() {
    let mut lab = lab().await;
    lab.engine
        .create_network(spec_with("n1", "10.1.0.0/24", false, &[]))
        .await
        .unwrap();
    lab.run("a", "n1", None).await.unwrap();
    let n1 = lab.engine.network("n1").unwrap().datapath_id();
    let plugs = lab.host.k().plugs.clone();
    let plug = plugs.values().next().unwrap();
    assert_eq!((plug.network, plug.ip), (n1, ip("10.1.0.2")));
}

#[tokio::test]
async fn options_change_live_and_bad_ones_change_nothing() {
    let mut lab = lab().await;
    lab.engine
        .create_network(spec_with("n1", "10.1.0.0/24", false, &[]))
        .await
        .unwrap();
    let update = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let net = lab
        .engine
        .update_network(
            "n1",
            &update(&[("icc", "false"), ("gateway-mode", "routed")]),
        )
        .await
        .unwrap();
    assert!(!net.icc && net.routed);
    let rule = lab
        .host
        .k()
        .rules
        .iter()
        .find(|r| r.id == net.datapath_id())
        .cloned();
    assert!(rule.is_some_and(|r| !r.icc && r.routed));

    for (bad, named) in [
        (update(&[("icc", "maybe")]), "icc=maybe"),
        (
            update(&[("com.docker.network.bridge.name", "br9")]),
            "com.docker.network.bridge.name",
        ),
        (
            update(&[("icc", "true"), ("gateway-mode", "bridged")]),
            "gateway-mode=bridged",
        ),
    ] {
        let err = lab
            .engine
            .update_network("n1", &bad)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(named), "{err}");
    }
    let net = lab.engine.network("n1").unwrap();
    assert!(!net.icc && net.routed, "a refused update changes nothing");
    let err = lab
        .engine
        .update_network("host", &update(&[("icc", "false")]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("host"), "{err}");

    // Persisted: a restarted engine has the new options.
    let engine = start(&lab.host, lab.dir.path()).await;
    assert!(!engine.network("n1").unwrap().icc);
}

#[tokio::test]
async fn internal_networks_cannot_be_routed() {
    let mut lab = lab().await;
    let err = NetworkSpec::try_from(CreateNetwork {
        name: "x".into(),
        internal: true,
        options: BTreeMap::from([("gateway-mode".into(), "routed".into())]),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("gateway-mode=routed"), "{err}");
    lab.engine
        .create_network(spec_with("sealed", "10.2.0.0/24", true, &[]))
        .await
        .unwrap();
    let err = lab
        .engine
        .update_network(
            "sealed",
            &BTreeMap::from([("gateway-mode".into(), "routed".into())]),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("internal"), "{err}");
}
