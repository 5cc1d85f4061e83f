//! Engine tests of repairs while running: what died behind the daemon's back is released,
//! what was deleted is forgotten by the datapath.

use super::fake::*;
use crate::config::container::{ContainerSpec, CreateContainer};

fn in_netns(name: &str, path: &std::path::Path) -> ContainerSpec {
    ContainerSpec::try_from(CreateContainer {
        name: name.into(),
        netns_path: Some(path.display().to_string()),
        ip: Some("172.17.0.9".into()),
        publish: vec!["8080:80".into()],
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_container_whose_brought_namespace_died_is_released() {
    let mut lab = lab().await;
    let before = lab.footprint();
    let ns = lab.dir.path().join("runtime-ns");
    lab.host.k().netns.insert(ns.clone());
    lab.engine
        .create_container(in_netns("c", &ns))
        .await
        .unwrap();
    assert_eq!(lab.engine.repair().await, 0, "nothing to repair yet");
    assert_eq!(lab.host.k().published.len(), 1);

    // The runtime killed its container: the namespace and the veth with it are gone.
    let veth = lab.engine.container("c").unwrap().endpoints[0]
        .host_ifname
        .to_string();
    lab.host.k().netns.remove(&ns);
    lab.host.k().links.remove(&veth);
    lab.host.k().forgets.clear();
    assert_eq!(lab.engine.repair().await, 1);
    // Its datapath entries (endpoint, member, counters) go with the release: the datapath
    // is told to keep no port of it.
    let forgets = std::mem::take(&mut lab.host.k().forgets);
    assert_eq!(forgets.len(), 1, "{forgets:?}");
    assert!(!forgets[0].contains(&veth), "{forgets:?}");
    assert!(lab.engine.container("c").is_err(), "the container is gone");
    assert!(
        lab.host.k().published.is_empty(),
        "its ports are unpublished"
    );
    assert_eq!(lab.engine.repairs(), 1, "the release is counted");
    assert_eq!(lab.footprint(), before, "nothing of it is left");
    // Its address and host port are free again.
    lab.host.k().netns.insert(ns.clone());
    lab.engine
        .create_container(in_netns("d", &ns))
        .await
        .unwrap();
    assert_eq!(lab.engine.repair().await, 0);
}

#[tokio::test]
async fn a_deleted_interface_is_forgotten_by_the_datapath_once() {
    let mut lab = lab().await;
    let ns = lab.dir.path().join("runtime-ns");
    lab.host.k().netns.insert(ns.clone());
    lab.engine
        .create_container(in_netns("c", &ns))
        .await
        .unwrap();
    lab.run("a", "bridge", None).await.unwrap();
    lab.engine.repair().await;
    lab.host.k().forgets.clear();

    let veth = lab.engine.container("c").unwrap().endpoints[0]
        .host_ifname
        .to_string();
    lab.host.k().links.remove(&veth);
    lab.engine.repair().await;
    lab.engine.repair().await;
    let forgets = std::mem::take(&mut lab.host.k().forgets);
    assert_eq!(
        forgets.len(),
        1,
        "forgotten once, not every second: {forgets:?}"
    );
    assert_eq!(forgets[0].len(), 2, "every known port is kept: {forgets:?}");
}

#[tokio::test]
async fn an_rm_cut_short_by_a_crash_is_finished_at_start() {
    let mut lab = lab().await;
    let before = lab.footprint();
    lab.run("a", "bridge", Some("172.17.0.5")).await.unwrap();
    // What an `rm` records first; the crash came before anything went.
    let mut c = lab.engine.container("a").unwrap().clone();
    c.removing = true;
    lab.engine.store.save_container(&c).unwrap();
    let engine = start(&lab.host, lab.dir.path()).await;
    assert!(engine.container("a").is_err(), "removed, not put back");
    lab.engine = engine;
    assert_eq!(lab.footprint(), before, "nothing of it is left");
    assert_eq!(
        lab.run("b", "bridge", Some("172.17.0.5")).await.unwrap(),
        ip("172.17.0.5"),
        "its address is free"
    );
}
