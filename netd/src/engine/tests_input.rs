//! Engine tests of requests that would harm the host or other containers: each is refused
//! with the bad value named, and leaves nothing behind.

use super::fake::*;
use crate::config::container::{ContainerSpec, CreateContainer};

fn spec_of(f: impl FnOnce(&mut CreateContainer)) -> ContainerSpec {
    let mut req = CreateContainer {
        name: "c".into(),
        ..Default::default()
    };
    f(&mut req);
    ContainerSpec::try_from(req).unwrap()
}

async fn refused(lab: &mut Lab, spec: ContainerSpec) -> String {
    let before = lab.footprint();
    let err = lab.engine.create_container(spec).await.unwrap_err();
    assert_eq!(
        lab.footprint(),
        before,
        "nothing is left of a refused create"
    );
    err.to_string()
}

#[tokio::test]
async fn a_mac_of_a_gateway_or_of_another_member_is_refused() {
    let mut lab = lab().await;
    let gateway = lab.engine.network("bridge").unwrap().clone();
    let gateway_mac = crate::config::mac::Mac::for_gateway(gateway.subnet.unwrap().gateway);
    let e = refused(
        &mut lab,
        spec_of(|r| r.mac_address = Some(gateway_mac.to_string())),
    )
    .await;
    assert!(
        e.contains(&gateway_mac.to_string()) && e.contains("reserved for netd's bridges"),
        "{e}"
    );

    let (first, _) = lab
        .engine
        .create_container(spec_of(|r| {
            r.name = "first".into();
            r.mac_address = Some("02:00:00:00:00:07".into());
        }))
        .await
        .unwrap();
    let e = refused(
        &mut lab,
        spec_of(|r| r.mac_address = Some("02:00:00:00:00:07".into())),
    )
    .await;
    assert!(
        e.contains("02:00:00:00:00:07") && e.contains("container first"),
        "{e}"
    );
    // The same MAC on another bridge is another FDB: allowed, as Docker allows it.
    lab.engine
        .create_network(net_spec("other", Some("10.77.0.0/24")))
        .await
        .unwrap();
    lab.engine
        .create_container(spec_of(|r| {
            r.network = Some("other".into());
            r.mac_address = Some("02:00:00:00:00:07".into());
        }))
        .await
        .unwrap();
    assert_eq!(first.endpoints[0].mac.to_string(), "02:00:00:00:00:07");
}

#[tokio::test]
async fn the_hosts_and_daemons_namespaces_are_refused_by_any_path() {
    let mut lab = lab().await;
    let own = lab.engine.daemon_netns().to_path_buf();
    let host = std::path::PathBuf::from("/proc/1/ns/net");
    {
        let mut k = lab.host.k();
        k.netns.insert(own.clone());
        k.netns.insert(host.clone());
        // Other names of the same namespaces: a process's /proc entry, a bind mount.
        k.ns_aliases
            .insert("/proc/4242/ns/net".into(), host.clone());
        k.ns_aliases
            .insert("/run/netns/looks-fine".into(), own.clone());
    }
    for (path, what) in [
        (own.display().to_string(), "daemon's own"),
        ("/proc/1/ns/net".into(), "host's"),
        ("/proc/4242/ns/net".into(), "host's"),
        ("/run/netns/looks-fine".into(), "daemon's own"),
    ] {
        let links_before = lab.host.k().links.clone();
        let e = refused(&mut lab, spec_of(|r| r.netns_path = Some(path.clone()))).await;
        assert!(e.contains(&path) && e.contains(what), "{path}: {e}");
        assert_eq!(lab.host.k().links, links_before, "{path}: a link was made");
        assert!(lab.host.k().plugs.is_empty(), "{path}: plugged");
        assert_eq!(lab.engine.containers().count(), 0);
    }
}

#[tokio::test]
async fn a_namespace_that_cannot_be_identified_is_refused() {
    let mut lab = lab().await;
    let path = std::path::PathBuf::from("/run/netns/unreadable");
    lab.host.k().netns.insert(path.clone());
    lab.host.k().ns_unreadable.insert(path.clone());
    let e = refused(
        &mut lab,
        spec_of(|r| r.netns_path = Some(path.display().to_string())),
    )
    .await;
    assert!(
        e.contains("/run/netns/unreadable") && e.contains("cannot be identified"),
        "{e}"
    );
    assert!(lab.host.k().plugs.is_empty());
    // The same namespace, readable: accepted.
    lab.host.k().ns_unreadable.clear();
    lab.engine
        .create_container(spec_of(|r| r.netns_path = Some(path.display().to_string())))
        .await
        .unwrap();
}

#[tokio::test]
async fn ports_are_published_only_on_addresses_of_the_host() {
    let mut lab = lab().await;
    lab.host.k().addresses = vec![ip("192.0.2.10")];
    let e = refused(
        &mut lab,
        spec_of(|r| r.publish = vec!["198.51.100.1:8080:80".into()]),
    )
    .await;
    assert!(
        e.contains("198.51.100.1") && e.contains("not an address of the host"),
        "{e}"
    );
    assert!(lab.host.k().published.is_empty());
    for (name, spec) in [
        ("a", "192.0.2.10:8080:80"),
        ("b", "127.0.0.1:8081:80"),
        ("c", "8082:80"),
    ] {
        lab.engine
            .create_container(spec_of(|r| {
                r.name = name.into();
                r.publish = vec![spec.into()];
            }))
            .await
            .unwrap();
    }
}
