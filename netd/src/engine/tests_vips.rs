//! Engine tests of virtual IPs: made, kept stable, released, and their backends.

use std::collections::BTreeSet;

use super::{fake::*, Engine};
use crate::{
    config::{
        alias::{CreateAlias, Lb},
        container::{ContainerSpec, CreateContainer},
        network::{CreateNetwork, NetworkSpec},
    },
    state::model::Process,
};

fn vip_net(name: &str, subnet: &str, options: &[(&str, &str)]) -> NetworkSpec {
    super::tests_isolation::spec_with(name, subnet, false, options)
}

async fn run_with_alias(lab: &mut Lab, name: &str, network: &str, alias: &str) -> String {
    let spec = ContainerSpec::try_from(CreateContainer {
        name: name.into(),
        network: Some(network.into()),
        aliases: vec![alias.into()],
        ..Default::default()
    })
    .unwrap();
    let (c, _) = lab.engine.create_container(spec).await.unwrap();
    c.id
}

/// Marks a container's command as running (the fake host starts no process).
fn set_running(engine: &mut Engine, name: &str, running: bool) {
    let c = engine
        .containers
        .values_mut()
        .find(|c| c.name.as_str() == name)
        .unwrap();
    c.process = Some(Process {
        // No such process: removing the container must not signal anything.
        pid: i32::MAX,
        start_ticks: 0,
        started: chrono::Utc::now(),
        exit_code: (!running).then_some(0),
        finished: None,
    });
    engine.refresh_names();
}

fn in_use(lab: &Lab, network: &str) -> usize {
    let id = lab.engine.network(network).unwrap().id.clone();
    lab.engine.pool(&id).unwrap().in_use()
}

#[tokio::test]
async fn a_vip_network_gives_each_alias_one_stable_vip_over_its_running_members() {
    let mut lab = lab().await;
    let opts = [("alias-mode", "vip"), ("alias-lb", "maglev")];
    lab.engine
        .create_network(vip_net("svc", "10.9.0.0/24", &opts))
        .await
        .unwrap();
    for name in ["a", "b", "c"] {
        run_with_alias(&mut lab, name, "svc", "Web").await;
    }
    let views = lab.engine.aliases();
    assert_eq!(views.len(), 1, "one VIP for the alias, whatever its case");
    let vip = views[0].vip.clone();
    assert_eq!((views[0].name.as_str(), vip.lb), ("web", Lb::Maglev));
    assert_eq!(in_use(&lab, "svc"), 4, "three members and the VIP");
    assert!(lab
        .host
        .k()
        .rules
        .iter()
        .any(|r| r.vips && r.subnet.to_string() == "10.9.0.0/24"));

    // Only running members are backends; a stopped one leaves, the VIP stays.
    set_running(&mut lab.engine, "a", true);
    set_running(&mut lab.engine, "b", true);
    let spec = lab.host.k().vips[0].clone();
    assert_eq!((spec.addr, spec.id), (vip.ip, vip.id));
    assert_eq!(spec.backends.len(), 2);
    set_running(&mut lab.engine, "b", false);
    let backends = lab.host.k().vips[0].backends.clone();
    assert_eq!(backends.len(), 1);
    assert_eq!(lab.engine.aliases()[0].backends[0].0, "a");

    // DNS answers the VIP, not the members.
    let names = lab.host.k().names.take().unwrap();
    let a_ip = *backends.iter().next().unwrap();
    let net_id = lab.engine.network("svc").unwrap().id.clone();
    assert_eq!(names.lookup(&net_id, a_ip, "web"), Some(vec![vip.ip]));
    assert_eq!(names.lookup(&net_id, a_ip, "WEB.svc."), Some(vec![vip.ip]));
    assert_eq!(names.reverse(&net_id, a_ip, vip.ip), Some("web.svc"));

    // Removing carriers keeps the address until the last one goes.
    lab.engine.remove_container("a", true).await.unwrap();
    lab.engine.remove_container("b", true).await.unwrap();
    assert_eq!(lab.engine.aliases()[0].vip, vip);
    lab.engine.remove_container("c", true).await.unwrap();
    assert!(lab.engine.aliases().is_empty());
    assert!(lab.host.k().vips.is_empty());
    assert_eq!(in_use(&lab, "svc"), 0);
    assert!(!lab.host.k().rules.iter().any(|r| r.vips));
}

#[tokio::test]
async fn explicit_aliases_are_checked_and_kept_until_removed() {
    let mut lab = lab().await;
    lab.engine
        .create_network(vip_net("app", "10.8.0.0/24", &[]))
        .await
        .unwrap();
    let create = |name: &str, lb: Option<&str>, ip: Option<&str>, network: &str| CreateAlias {
        network: network.into(),
        name: name.into(),
        lb: lb.map(Into::into),
        ip: ip.map(Into::into),
    };
    let made = lab
        .engine
        .create_alias(create("db", Some("random"), Some("10.8.0.200"), "app"))
        .await
        .unwrap();
    assert_eq!((made.vip.ip, made.vip.lb), (ip("10.8.0.200"), Lb::Random));
    assert!(made.explicit);

    let errors = [
        (create("db", None, None, "app"), "already has a virtual IP"),
        (create("x", Some("leastconn"), None, "app"), "leastconn"),
        (create("x", None, Some("10.7.0.5"), "app"), "10.7.0.5"),
        (create("x", None, Some("10.8.0.200"), "app"), "10.8.0.200"),
        (create("x", None, None, "bridge"), "no embedded DNS"),
        (create("x", None, None, "nowhere"), "nowhere"),
        (create("bad name!", None, None, "app"), "bad name!"),
    ];
    for (req, named) in errors {
        let err = lab.engine.create_alias(req).await.unwrap_err().to_string();
        assert!(err.contains(named), "{err} should name {named}");
    }
    assert_eq!(in_use(&lab, "app"), 1, "failed creates reserve nothing");

    // A member carrying it on a dns-mode network is a backend; removing the container keeps
    // an explicit VIP.
    run_with_alias(&mut lab, "m", "app", "db").await;
    set_running(&mut lab.engine, "m", true);
    assert_eq!(lab.host.k().vips[0].backends.len(), 1);
    lab.engine.remove_container("m", true).await.unwrap();
    assert_eq!(lab.engine.aliases().len(), 1);

    // icc=false is refused while VIPs exist.
    let icc_off = [("icc".to_string(), "false".to_string())].into();
    let err = lab
        .engine
        .update_network("app", &icc_off)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("virtual IPs"), "{err}");

    lab.engine.remove_alias("app", "DB").await.unwrap();
    assert!(lab.engine.aliases().is_empty());
    assert_eq!(in_use(&lab, "app"), 0);
    let err = lab.engine.remove_alias("app", "db").await.unwrap_err();
    assert!(err.to_string().contains("db"), "{err}");
}

#[tokio::test]
async fn a_failed_attach_leaves_no_vip_and_vips_survive_a_restart() {
    let mut lab = lab().await;
    lab.engine
        .create_network(vip_net("svc", "10.9.0.0/24", &[("alias-mode", "vip")]))
        .await
        .unwrap();
    lab.host.k().fail_plug = true;
    let spec = ContainerSpec::try_from(CreateContainer {
        name: "x".into(),
        network: Some("svc".into()),
        aliases: vec!["api".into()],
        ..Default::default()
    })
    .unwrap();
    assert!(lab.engine.create_container(spec).await.is_err());
    assert!(lab.engine.aliases().is_empty());
    assert_eq!(in_use(&lab, "svc"), 0);
    lab.host.k().fail_plug = false;

    run_with_alias(&mut lab, "y", "svc", "api").await;
    let vip = lab.engine.aliases()[0].vip.clone();
    // Refused while carried on a vip network.
    let err = lab.engine.remove_alias("svc", "api").await.unwrap_err();
    assert!(err.to_string().contains('y'), "{err}");

    let engine = start(&lab.host, lab.dir.path()).await;
    assert_eq!(engine.aliases()[0].vip, vip);
    let id = engine.network("svc").unwrap().id.clone();
    assert_eq!(
        engine.pool(&id).unwrap().in_use(),
        2,
        "member and VIP reserved again"
    );
    let ids: BTreeSet<u32> = lab.host.k().vips.iter().map(|v| v.id).collect();
    assert_eq!(ids, BTreeSet::from([vip.id]));
}

#[test]
fn vip_mode_with_icc_off_is_refused_at_create() {
    let err = NetworkSpec::try_from(CreateNetwork {
        name: "n".into(),
        options: [("alias-mode", "vip"), ("icc", "false")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("alias-mode=vip"), "{err}");
}
