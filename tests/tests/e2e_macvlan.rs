//! Tier 3: macvlan networks on a LAN of the test's own, as in Docker's tutorial (see
//! `integration_tests::lan`): two servers share one LAN, the macvlan modes, host access
//! through a shim, and connecting a bridge container to the LAN.

use integration_tests::{
    lan::{
        first_node, in_netns, in_range, ip, macvlan_net, macvlan_net_with, node, reaches,
        reaches_none, server, LAN_HOST, PORT, ROUTER,
    },
    privileged, reach_script,
};

#[test]
fn the_tutorial_two_servers_share_one_lan() {
    if !privileged("the_tutorial_two_servers_share_one_lan") {
        return;
    }
    let (node01, lan) = first_node();
    let node02 = node(&lan, "192.168.0.51/24", "l-node02");
    let before = (node01.rulesets(), node02.rulesets());
    macvlan_net(&node01, "my_macvlan", "192.168.0.64/28", "bridge");
    macvlan_net(&node02, "my_macvlan", "192.168.0.128/28", "bridge");
    let c1 = server(&node01, "c1", "my_macvlan");
    let c2 = server(&node02, "c2", "my_macvlan");
    assert!(in_range(&c1, 64, 16), "c1 has {c1}, outside node01's range");
    assert!(
        in_range(&c2, 128, 16),
        "c2 has {c2}, outside node02's range"
    );

    let from_c1 = |cmd: &[&str]| node01.exec("c1", cmd);
    let from_c2 = |cmd: &[&str]| node02.exec("c2", cmd);
    reaches(
        "c1 -> c2, router, LAN host",
        &from_c1,
        &[&c2, ROUTER, LAN_HOST],
    );
    reaches(
        "c2 -> c1, router, LAN host",
        &from_c2,
        &[&c1, ROUTER, LAN_HOST],
    );
    let from_router = |cmd: &[&str]| in_netns(&lan.router, cmd);
    let from_lan_host = |cmd: &[&str]| in_netns(&lan.host, cmd);
    reaches("router -> c1, c2", &from_router, &[&c1, &c2]);
    reaches("LAN host -> c1, c2", &from_lan_host, &[&c1, &c2]);

    // The containers' own view: their LAN address and the router as gateway.
    let route = node01.exec_ok("c1", &["ip", "route", "show", "default"]);
    assert!(route.contains("via 192.168.0.1 dev eth0"), "{route}");
    let inspect = &node01.json(&["network", "inspect", "my_macvlan"])[0];
    assert_eq!(inspect["Driver"], "macvlan");
    assert_eq!(inspect["Options"]["parent"], "eth0");
    assert_eq!(inspect["Options"]["macvlan_mode"], "bridge");
    assert_eq!(inspect["IPAM"]["Config"][0]["IPRange"], "192.168.0.64/28");
    assert_eq!(inspect["IPAM"]["Config"][0]["Gateway"], ROUTER);
    assert_eq!((node01.rulesets(), node02.rulesets()), before);
    // The once-a-second repair finds nothing to do: a macvlan has no host end to miss.
    for node in [&node01, &node02] {
        let log = node.daemon_log();
        assert!(!log.contains("putting its interfaces back"), "{log}");
    }

    // Removing the container and the network leaves nothing on node01.
    let links = node01.host_links();
    node01.ok(&["rm", "-f", "c1"]);
    node01.ok(&["network", "rm", "my_macvlan"]);
    assert_eq!(
        node01.host_links(),
        links,
        "no link came or went on the host"
    );
    assert!(node01
        .ok(&["network", "ls"])
        .lines()
        .all(|l| !l.contains("my_macvlan")));
}

#[test]
fn macvlan_modes_bridge_private_and_vepa() {
    if !privileged("macvlan_modes_bridge_private_and_vepa") {
        return;
    }
    let (node01, lan) = first_node();
    for (mode, siblings_meet) in [("bridge", true), ("private", false), ("vepa", false)] {
        let net = format!("mv-{mode}");
        macvlan_net(&node01, &net, "192.168.0.64/28", mode);
        let a = server(&node01, &format!("{mode}-a"), &net);
        let b = server(&node01, &format!("{mode}-b"), &net);
        let from_a = |cmd: &[&str]| node01.exec(&format!("{mode}-a"), cmd);
        // Each reaches the LAN in every mode.
        reaches(&format!("{mode}: a -> router"), &from_a, &[ROUTER]);
        let from_b = |cmd: &[&str]| node01.exec(&format!("{mode}-b"), cmd);
        reaches(&format!("{mode}: b -> router"), &from_b, &[ROUTER]);
        match siblings_meet {
            true => {
                reaches(&format!("{mode}: a -> b"), &from_a, &[&b]);
                reaches(&format!("{mode}: b -> a"), &from_b, &[&a]);
            }
            // vepa without a hairpin on the LAN port: the switch never sends them back.
            false => reaches_none(&format!("{mode}: a -> b"), &from_a, &[&b]),
        }
        if mode == "vepa" {
            // A switch that reflects (hairpin on node01's LAN port) lets vepa siblings meet.
            ip(&[
                "-n",
                &lan.ns,
                "link",
                "set",
                "l-node01",
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ]);
            reaches("vepa with a hairpin: a -> b", &from_a, &[&b]);
        }
        node01.ok(&["rm", "-f", &format!("{mode}-a"), &format!("{mode}-b")]);
        node01.ok(&["network", "rm", &net]);
    }
}

#[test]
fn host_access_lets_the_host_reach_its_macvlan_containers() {
    if !privileged("host_access_lets_the_host_reach_its_macvlan_containers") {
        return;
    }
    let (node01, _lan) = first_node();
    let links = node01.host_links();
    let from_host = |cmd: &[&str]| in_netns(&node01.netns, cmd);
    // The kernel never hands a parent's own frames to its macvlans: the host cannot reach
    // them, even while the LAN can.
    macvlan_net(&node01, "plain", "192.168.0.64/28", "bridge");
    let plain = server(&node01, "plain", "plain");
    reaches(
        "the router reaches it",
        &|cmd| in_netns(&_lan.router, cmd),
        &[&plain],
    );
    reaches_none("host -> a plain macvlan container", &from_host, &[&plain]);
    node01.ok(&["rm", "-f", "plain"]);
    node01.ok(&["network", "rm", "plain"]);

    macvlan_net_with(
        &node01,
        "shimmed",
        "192.168.0.64/28",
        "bridge",
        &["host_access=true"],
    );
    let c1 = server(&node01, "c1", "shimmed");
    reaches("host -> c1 through the shim", &from_host, &[&c1]);
    reaches("c1 -> router", &|cmd| node01.exec("c1", cmd), &[ROUTER]);
    let inspect = &node01.json(&["network", "inspect", "shimmed"])[0];
    assert_eq!(inspect["Options"]["host_access"], "true");

    // Survives a restart, and goes with the network.
    let mut node01 = node01;
    node01.kill_daemon();
    node01.start_daemon();
    reaches(
        "after a restart",
        &|cmd| in_netns(&node01.netns, cmd),
        &[&c1],
    );
    node01.ok(&["rm", "-f", "c1"]);
    node01.ok(&["network", "rm", "shimmed"]);
    assert_eq!(node01.host_links(), links, "the shim went with its network");
    let e = node01.fails(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet=192.168.0.0/24",
        "-o",
        "parent=eth0",
        "-o",
        "host_access=true",
        "noshim",
    ]);
    assert!(
        e.contains("host_access=true") && e.contains("--ip-range"),
        "{e}"
    );
}

#[test]
fn connect_and_disconnect_a_bridge_container_to_the_lan() {
    if !privileged("connect_and_disconnect_a_bridge_container_to_the_lan") {
        return;
    }
    let (node01, lan) = first_node();
    macvlan_net(&node01, "my_macvlan", "192.168.0.64/28", "bridge");
    node01.ok(&["network", "create", "--subnet", "10.51.0.0/24", "inner"]);
    let script = reach_script();
    node01.ok(&[
        "run",
        "-d",
        "--name",
        "app",
        "--network",
        "inner",
        "--",
        "python3",
        &script,
        "serve",
        PORT,
        "120",
    ]);
    node01.wait_listening("app", "tcp", 7000);
    node01.ok(&[
        "network",
        "connect",
        "--ip",
        "192.168.0.70",
        "my_macvlan",
        "app",
    ]);
    assert_eq!(node01.ip("app", "my_macvlan"), "192.168.0.70");
    // A chosen MAC, as `run --mac-address` gives it.
    node01.ok(&[
        "run",
        "-d",
        "--name",
        "fixed",
        "--network",
        "my_macvlan",
        "--mac-address",
        "02:42:c0:a8:00:47",
        "--",
        "sleep",
        "120",
    ]);
    let link = node01.exec_ok("fixed", &["ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("02:42:c0:a8:00:47"), "{link}");
    // The LAN reaches it on its LAN address; it keeps its bridge network.
    reaches(
        "router -> app",
        &|cmd| in_netns(&lan.router, cmd),
        &["192.168.0.70"],
    );
    node01.ok(&["network", "disconnect", "my_macvlan", "app"]);
    let links = node01.exec_ok("app", &["ip", "-o", "link", "show"]);
    assert!(!links.contains("eth1"), "{links}");
    reaches_none(
        "router -> app after disconnect",
        &|cmd| in_netns(&lan.router, cmd),
        &["192.168.0.70"],
    );
    let inner = node01.ip("app", "inner");
    assert!(inner.starts_with("10.51.0."), "{inner}");
}

#[test]
fn an_internal_macvlan_network_without_a_parent_reaches_only_its_members() {
    if !privileged("an_internal_macvlan_network_without_a_parent_reaches_only_its_members") {
        return;
    }
    let (node01, lan) = first_node();
    let links = node01.host_links();
    node01.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet=10.60.0.0/24",
        "inner",
    ]);
    let inspect = &node01.json(&["network", "inspect", "inner"])[0];
    assert_eq!(inspect["Internal"], true, "{inspect}");
    let parent = inspect["Options"]["parent"].as_str().unwrap().to_string();
    assert!(parent.starts_with("ndi-"), "netd's own parent: {parent}");
    assert!(node01.host_links().contains(&parent));
    let a = server(&node01, "a", "inner");
    let b = server(&node01, "b", "inner");
    reaches("a -> b", &|cmd| node01.exec("a", cmd), &[&b]);
    reaches("b -> a", &|cmd| node01.exec("b", cmd), &[&a]);
    // No way out: no default route, and the parent is on no LAN.
    let route = node01.exec_ok("a", &["ip", "route", "show", "default"]);
    assert!(route.trim().is_empty(), "{route}");
    reaches_none("a -> router", &|cmd| node01.exec("a", cmd), &[ROUTER]);
    reaches_none("router -> a", &|cmd| in_netns(&lan.router, cmd), &[&a]);
    node01.ok(&["rm", "-f", "a", "b"]);
    node01.ok(&["network", "rm", "inner"]);
    assert_eq!(
        node01.host_links(),
        links,
        "the parent went with its network"
    );
}
