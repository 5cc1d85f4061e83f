use std::{collections::BTreeMap, net::Ipv4Addr};

use super::*;
use crate::{
    config::{
        mac::Mac,
        names::{IfName, Name},
        network::SubnetSpec,
    },
    state::model::{Driver, Endpoint, Process, Sandbox},
};

fn network(id: char, name: &str, subnet: &str) -> Network {
    Network {
        id: id.to_string().repeat(64),
        name: Name::parse("n", name).unwrap(),
        driver: Driver::Bridge,
        created: chrono::Utc::now(),
        predefined: false,
        internal: false,
        subnet: Some(SubnetSpec::parse(subnet, None, None).unwrap()),
        bridge: None,
        mtu: 1500,
        labels: BTreeMap::new(),
        masquerade: true,
        icc: true,
        routed: false,
        vip_aliases: false,
        alias_lb: Default::default(),
        vips: BTreeMap::new(),
        origin: Default::default(),
        ipam_pool: None,
        aux_addresses: BTreeMap::new(),
        macvlan: None,
        shim_ip: None,
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A running container with one endpoint per (network, address, aliases).
fn container(id: char, name: &str, on: &[(&Network, &str, &[&str])]) -> Container {
    Container {
        id: id.to_string().repeat(64),
        name: Name::parse("c", name).unwrap(),
        created: chrono::Utc::now(),
        hostname: format!("{name}-host"),
        network_mode: on[0].0.name.to_string(),
        sandbox: Sandbox::Owned { path: "/x".into() },
        origin: Default::default(),
        removing: false,
        endpoints: on
            .iter()
            .enumerate()
            .map(|(i, (net, addr, aliases))| Endpoint {
                id: format!("{i}"),
                network_id: net.id.clone(),
                ifname: IfName::parse(&format!("eth{i}")).unwrap(),
                host_ifname: IfName::parse(&format!("veth{id}{i}")).unwrap(),
                ip: ip(addr),
                prefix: 24,
                mac: Mac::from_ipv4(ip(addr)),
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                default_route: i == 0,
            })
            .collect(),
        command: vec![],
        process: Some(Process {
            pid: 1,
            start_ticks: 1,
            started: chrono::Utc::now(),
            exit_code: None,
            finished: None,
        }),
        ports: vec![],
        exposed: vec![],
        links: vec![],
    }
}

#[test]
fn names_hostnames_ids_and_aliases_resolve_on_their_network_only() {
    let (n1, n2) = (
        network('a', "n1", "10.1.0.0/24"),
        network('b', "n2", "10.2.0.0/24"),
    );
    let web = container('w', "web", &[(&n1, "10.1.0.2", &["api"])]);
    let db = container('d', "db", &[(&n2, "10.2.0.2", &[])]);
    let names = Names::build([&n1, &n2], [&web, &db]);
    let client = ip("10.1.0.9");
    for name in [
        "web",
        "WEB.",
        "web-host",
        "wwwwwwwwwwww",
        "api",
        "web.n1",
        "api.n1",
    ] {
        assert_eq!(
            names.lookup(&n1.id, client, name),
            Some(vec![ip("10.1.0.2")]),
            "{name}"
        );
    }
    assert_eq!(names.lookup(&n1.id, client, "db"), None, "db is on n2 only");
    assert_eq!(
        names.lookup(&n2.id, ip("10.2.0.9"), "db"),
        Some(vec![ip("10.2.0.2")])
    );
    assert_eq!(
        names.reverse(&n1.id, client, ip("10.1.0.2")),
        Some("web.n1")
    );
    assert_eq!(names.reverse(&n1.id, client, ip("10.2.0.2")), None);
}

#[test]
fn a_container_on_two_networks_resolves_on_both_its_own_first() {
    let (n1, n2) = (
        network('a', "n1", "10.1.0.0/24"),
        network('b', "n2", "10.2.0.0/24"),
    );
    let both = container(
        'm',
        "both",
        &[(&n1, "10.1.0.5", &[]), (&n2, "10.2.0.5", &[])],
    );
    let db = container('d', "db", &[(&n2, "10.2.0.2", &[])]);
    let names = Names::build([&n1, &n2], [&both, &db]);
    // Asking on n1 from its n1 address, it still finds db of n2.
    assert_eq!(
        names.lookup(&n1.id, ip("10.1.0.5"), "db"),
        Some(vec![ip("10.2.0.2")])
    );
    // Its own name gives the address of the network asked on.
    assert_eq!(
        names.lookup(&n1.id, ip("10.1.0.5"), "both"),
        Some(vec![ip("10.1.0.5")])
    );
    assert_eq!(
        names.lookup(&n2.id, ip("10.2.0.2"), "both"),
        Some(vec![ip("10.2.0.5")])
    );
    // A stranger on n1 does not see n2.
    assert_eq!(names.lookup(&n1.id, ip("10.1.0.7"), "db"), None);
}

#[test]
fn a_shared_alias_returns_every_address_rotated() {
    let n1 = network('a', "n1", "10.1.0.0/24");
    let backends: Vec<Container> = [('a', "10.1.0.2"), ('b', "10.1.0.3"), ('c', "10.1.0.4")]
        .iter()
        .map(|(id, addr)| container(*id, &format!("be-{id}"), &[(&n1, addr, &["svc"])]))
        .collect();
    let names = Names::build([&n1], &backends);
    let client = ip("10.1.0.9");
    let firsts: Vec<Ipv4Addr> = (0..3)
        .map(|_| {
            let addrs = names.lookup(&n1.id, client, "svc").unwrap();
            assert_eq!(addrs.len(), 3, "all of them, every time");
            addrs[0]
        })
        .collect();
    let mut sorted = firsts.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![ip("10.1.0.2"), ip("10.1.0.3"), ip("10.1.0.4")],
        "{firsts:?}"
    );
}

#[test]
fn stopped_containers_and_the_default_bridge_have_no_names() {
    let n1 = network('a', "n1", "10.1.0.0/24");
    let mut default = network('z', "bridge", "172.17.0.0/16");
    default.predefined = true;
    let mut stopped = container('s', "stopped", &[(&n1, "10.1.0.3", &[])]);
    stopped.process.as_mut().unwrap().exit_code = Some(0);
    let legacy = container('l', "legacy", &[(&default, "172.17.0.2", &[])]);
    let names = Names::build([&n1, &default], [&stopped, &legacy]);
    assert_eq!(names.lookup(&n1.id, ip("10.1.0.9"), "stopped"), None);
    assert_eq!(names.lookup(&default.id, ip("172.17.0.9"), "legacy"), None);
}
