//! Engine tests of runtimes' networks, endpoints and netd's IPAM pools (Docker's plugin).

use super::{fake::*, ipam_pools::AddressUse, RuntimeEndpoint};
use crate::{
    config::{network::NetworkSpec, origin::Origin, port::parse_publish},
    engine::EngineError,
};

fn docker(id: &str) -> Origin {
    Origin::Docker {
        id: id.repeat(64 / id.len()),
    }
}

/// A Docker network on `subnet`, from netd's IPAM pool of that subnet if `ipam`.
fn docker_net(id: &str, subnet: &str, ipam: bool) -> NetworkSpec {
    let mut spec = net_spec(&id.repeat(12 / id.len()), Some(subnet));
    spec.origin = docker(id);
    spec.ipam_pool = ipam.then(|| subnet.to_string());
    spec
}

fn endpoint(lab: &Lab, id: &str, network: &Origin, ip: Option<&str>) -> RuntimeEndpoint {
    let net = lab.engine.network_of_origin(network).unwrap();
    RuntimeEndpoint {
        origin: docker(id),
        network: net.id.clone(),
        ip: ip.map(super::fake::ip),
        mac: None,
        from_ipam: net.ipam_pool.is_some(),
        aliases: Vec::new(),
    }
}

#[tokio::test]
async fn a_docker_endpoint_is_a_container_whose_veth_end_is_handed_over() {
    let mut lab = lab().await;
    lab.engine
        .create_runtime_network(docker_net("a", "10.7.0.0/24", false))
        .await
        .unwrap();
    // A retried CreateNetwork finds the network of the first.
    lab.engine
        .create_runtime_network(docker_net("a", "10.7.0.0/24", false))
        .await
        .unwrap();
    let req = endpoint(&lab, "e1", &docker("a"), Some("10.7.0.9"));
    let c = lab
        .engine
        .create_runtime_endpoint(req.clone())
        .await
        .unwrap();
    let again = lab.engine.create_runtime_endpoint(req).await.unwrap();
    assert_eq!(
        c.id, again.id,
        "a retried CreateEndpoint makes nothing more"
    );
    assert!(
        c.name.as_str().starts_with("docker-e1e1e1e1e1e1-"),
        "{}",
        c.name
    );
    assert!(!c.is_running(), "not joined yet");
    let e = &c.endpoints[0];
    assert_eq!(e.ip, ip("10.7.0.9"));
    let plug = lab.host.k().plugs[e.host_ifname.as_str()].clone();
    assert!(plug.handover, "Docker moves the container end itself");
    assert_eq!(plug.netns, lab.engine.daemon_netns());
    assert_eq!(plug.ifname.as_str(), format!("{}c", e.host_ifname));

    // A sandbox key naming the host's namespace (here a bind mount of it) is refused, and
    // the endpoint stays unjoined.
    lab.host
        .k()
        .ns_aliases
        .insert("/run/docker/netns/host".into(), "/proc/1/ns/net".into());
    let e = lab
        .engine
        .set_runtime_sandbox(&c.id, Some("/run/docker/netns/host".into()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/run/docker/netns/host") && e.contains("host's"),
        "{e}"
    );
    assert!(!lab.engine.container(&c.id).unwrap().is_running());

    lab.host.k().netns.insert("/run/docker/netns/x".into());
    let joined = lab
        .engine
        .set_runtime_sandbox(&c.id, Some("/run/docker/netns/x".into()))
        .unwrap();
    assert!(joined.is_running());

    // netd's own API refuses to remove what Docker made.
    let net_name = lab
        .engine
        .network_of_origin(&docker("a"))
        .unwrap()
        .name
        .to_string();
    assert!(matches!(
        lab.engine.remove_container(&c.id, true).await,
        Err(EngineError::Forbidden(_))
    ));
    assert!(matches!(
        lab.engine.remove_network(&net_name).await,
        Err(EngineError::Forbidden(_))
    ));
    assert!(lab.engine.prune_networks().await.unwrap().is_empty());

    lab.engine
        .remove_runtime_container(&docker("e1"))
        .await
        .unwrap();
    lab.engine
        .remove_runtime_container(&docker("e1"))
        .await
        .unwrap();
    assert_eq!(lab.engine.containers().count(), 0);
    assert!(lab.host.k().plugs.is_empty());
    lab.engine
        .remove_runtime_network(&docker("a"))
        .await
        .unwrap();
    lab.engine
        .remove_runtime_network(&docker("a"))
        .await
        .unwrap();
    assert!(lab.engine.network(&net_name).is_err());
}

#[tokio::test]
async fn a_failed_docker_endpoint_leaves_nothing() {
    let mut lab = lab().await;
    lab.engine
        .create_runtime_network(docker_net("a", "10.7.0.0/24", false))
        .await
        .unwrap();
    let before = lab.footprint();
    lab.host.k().fail_plug = true;
    let req = endpoint(&lab, "e1", &docker("a"), Some("10.7.0.9"));
    assert!(lab
        .engine
        .create_runtime_endpoint(req.clone())
        .await
        .is_err());
    lab.host.k().fail_plug = false;
    assert_eq!(lab.footprint(), before);
    assert_eq!(lab.engine.containers().count(), 0);
    // The address was released: the retry gets it.
    let c = lab.engine.create_runtime_endpoint(req).await.unwrap();
    assert_eq!(c.endpoints[0].ip, ip("10.7.0.9"));
    let mut bad = endpoint(&lab, "e2", &docker("a"), None);
    bad.aliases = vec!["not a name".into()];
    let err = lab.engine.create_runtime_endpoint(bad).await.unwrap_err();
    assert!(err.to_string().contains("not a name"), "{err}");
}

#[tokio::test]
async fn docker_ports_are_published_and_revoked() {
    let mut lab = lab().await;
    lab.engine
        .create_runtime_network(docker_net("a", "10.7.0.0/24", false))
        .await
        .unwrap();
    let c = lab
        .engine
        .create_runtime_endpoint(endpoint(&lab, "e1", &docker("a"), None))
        .await
        .unwrap();
    let ports = parse_publish("8080:80").unwrap();
    lab.engine.publish_ports(&c.id, &ports).await.unwrap();
    assert_eq!(lab.host.k().published.len(), 1);
    lab.engine.unpublish_ports(&c.id).await.unwrap();
    lab.engine.unpublish_ports(&c.id).await.unwrap();
    assert!(lab.host.k().published.is_empty());
    assert!(lab.engine.container(&c.id).unwrap().ports.is_empty());
}

#[tokio::test]
async fn ipam_pools_are_handed_out_once_and_shared_with_their_network() {
    let mut lab = lab_with_routes(&["10.1.0.0/16"]).await;
    lab.engine
        .create_network(net_spec("own", Some("10.8.0.0/24")))
        .await
        .unwrap();
    let subnet = |s: &str| Some(s.parse().unwrap());
    for (taken, what) in [
        ("10.8.0.0/25", "network own"),
        ("10.1.2.0/24", "host route"),
    ] {
        let err = lab
            .engine
            .request_pool(subnet(taken), None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(taken), "{what}: {err}");
    }
    let err = lab
        .engine
        .request_pool(subnet("10.9.0.0/24"), subnet("10.10.0.0/28"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("10.10.0.0/28"), "{err}");
    let pool = lab
        .engine
        .request_pool(subnet("10.9.0.0/24"), subnet("10.9.0.128/25"))
        .await
        .unwrap();
    assert!(lab
        .engine
        .request_pool(subnet("10.9.0.0/24"), None)
        .await
        .is_err());
    let picked = lab.engine.request_pool(None, None).await.unwrap();
    assert_eq!(
        picked.subnet.to_string(),
        "172.18.0.0/16",
        "the first free default pool (the default bridge has 172.17)"
    );
    let err = lab
        .engine
        .create_network(net_spec("clash", Some("10.9.0.0/26")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("10.9.0.0/24"), "{err}");

    // Docker asks for the gateway, then creates the network on the pool.
    let gw = lab
        .engine
        .request_address(&pool.id, None, AddressUse::Gateway)
        .unwrap();
    assert_eq!(gw, (ip("10.9.0.1"), 24));
    let mut spec = docker_net("b", "10.9.0.0/24", true);
    spec.subnet = Some(
        crate::config::network::SubnetSpec::parse(
            "10.9.0.0/24",
            Some("10.9.0.128/25"),
            Some("10.9.0.1"),
        )
        .unwrap(),
    );
    lab.engine.create_runtime_network(spec).await.unwrap();
    let (a1, _) = lab
        .engine
        .request_address(&pool.id, None, AddressUse::Endpoint)
        .unwrap();
    assert_eq!(a1, ip("10.9.0.128"), "from the sub-pool");
    // The network shares the pool: netd's own containers do not get a1.
    let net = lab
        .engine
        .network_of_origin(&docker("b"))
        .unwrap()
        .name
        .to_string();
    let own = lab.run("own1", &net, None).await.unwrap();
    assert_eq!(own, ip("10.9.0.129"));
    assert!(lab.run("own2", &net, Some("10.9.0.128")).await.is_err());
    // ... and Docker's endpoint takes the address it was given.
    let c = lab
        .engine
        .create_runtime_endpoint(endpoint(&lab, "e1", &docker("b"), Some("10.9.0.128")))
        .await
        .unwrap();
    // Removed, the endpoint's address goes back to the IPAM until Docker releases it.
    lab.engine
        .remove_runtime_container(&docker("e1"))
        .await
        .unwrap();
    assert!(lab.run("own3", &net, Some("10.9.0.128")).await.is_err());
    lab.engine.release_address(&pool.id, a1).unwrap();
    lab.engine.release_address(&pool.id, a1).unwrap();
    assert_eq!(lab.run("own4", &net, Some("10.9.0.128")).await.unwrap(), a1);
    drop(c);

    // The pools survive a restart, with what they handed out.
    let engine = start(&lab.host, lab.dir.path()).await;
    assert_eq!(engine.ipam_pool(&pool.id).unwrap().addresses.len(), 1);
    lab.engine = engine;
    let err = lab
        .engine
        .request_address("10.99.0.0/24", None, AddressUse::Endpoint)
        .unwrap_err();
    assert!(err.to_string().contains("10.99.0.0/24"), "{err}");
    // Docker releases the pool before it deletes the network.
    lab.engine.release_pool(&pool.id).unwrap();
    lab.engine.release_pool(&pool.id).unwrap();
    for name in ["own1", "own4"] {
        lab.engine.remove_container(name, true).await.unwrap();
    }
    lab.engine
        .remove_runtime_network(&docker("b"))
        .await
        .unwrap();
    assert!(lab.engine.ipam_pool(&pool.id).is_none());
}

#[tokio::test]
async fn a_standalone_ipam_pool_hands_out_addresses_itself() {
    let mut lab = lab().await;
    let pool = lab
        .engine
        .request_pool(Some("10.5.0.0/30".parse().unwrap()), None)
        .await
        .unwrap();
    let take = |lab: &mut Lab, usage| lab.engine.request_address(&pool.id, None, usage);
    assert_eq!(
        take(&mut lab, AddressUse::Gateway).unwrap().0,
        ip("10.5.0.1")
    );
    assert_eq!(
        take(&mut lab, AddressUse::Endpoint).unwrap().0,
        ip("10.5.0.2")
    );
    let err = take(&mut lab, AddressUse::Endpoint).unwrap_err();
    assert!(err.to_string().contains("no free address"), "{err}");
    let err = lab
        .engine
        .request_address(&pool.id, Some(ip("10.5.0.2")), AddressUse::Endpoint)
        .unwrap_err();
    assert!(err.to_string().contains("10.5.0.2"), "{err}");
    lab.engine
        .release_address(&pool.id, ip("10.5.0.2"))
        .unwrap();
    assert_eq!(
        take(&mut lab, AddressUse::Endpoint).unwrap().0,
        ip("10.5.0.2")
    );
}

#[tokio::test]
async fn retries_that_change_values_are_refused() {
    let mut lab = lab().await;
    lab.engine
        .create_runtime_network(docker_net("a", "10.7.0.0/24", false))
        .await
        .unwrap();
    let e = lab
        .engine
        .create_runtime_network(docker_net("a", "10.8.0.0/24", false))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("10.7.0.0/24") && e.contains("10.8.0.0/24"),
        "{e}"
    );
    assert_eq!(
        lab.engine
            .networks()
            .filter(|n| n.origin == docker("a"))
            .count(),
        1
    );

    let req = endpoint(&lab, "e1", &docker("a"), Some("10.7.0.9"));
    lab.engine
        .create_runtime_endpoint(req.clone())
        .await
        .unwrap();
    let mut other = req.clone();
    other.ip = Some(ip("10.7.0.10"));
    let e = lab
        .engine
        .create_runtime_endpoint(other)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("10.7.0.9") && e.contains("10.7.0.10"), "{e}");
    // The same retry, or one that leaves the address to netd, finds the first.
    lab.engine
        .create_runtime_endpoint(req.clone())
        .await
        .unwrap();
    let mut unset = req;
    unset.ip = None;
    let c = lab.engine.create_runtime_endpoint(unset).await.unwrap();
    assert_eq!(c.endpoints[0].ip, ip("10.7.0.9"));
}
