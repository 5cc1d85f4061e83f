//! Tier 3: what an operator or a crash does behind the daemon's back, repaired: a bridge
//! deleted by hand comes back at the next start with its members attached again, and
//! masquerade follows an uplink that was renumbered; a running daemon puts back a deleted
//! veth or bridge, and mounts again a namespace unmounted under a running container.

use std::time::Duration;

use integration_tests::{privileged, wait_until, Lab, EXTERNAL_IP, UPLINK_IP};

#[test]
fn a_deleted_bridge_comes_back_with_its_members() {
    if !privileged("a_deleted_bridge_comes_back_with_its_members") {
        return;
    }
    let mut lab = Lab::new();
    let bridge = network_with_bridge(&lab, "10.89.0.0/24", "fixme");
    lab.run_d("a", &["--network", "fixme"]);
    lab.run_d("b", &["--network", "fixme"]);
    let b = lab.ip("b", "fixme");
    assert!(lab.ping("a", &b));

    // Deleted while the daemon is down (a running one puts it back by itself).
    lab.kill_daemon();
    lab.host(&["ip", "link", "del", &bridge]);
    // Members still reach each other (the datapath's direct path skips the bridge), but
    // not their gateway.
    assert!(!lab.ping("a", "10.89.0.1"), "no bridge, no gateway");
    lab.start_daemon();
    assert!(lab.host_links().contains(&bridge), "{bridge} is back");
    assert!(lab.ping("a", &b), "the members are attached again");
    // The container's failed probes of the gateway back off: a bounded wait, not one ping.
    let gateway = wait_until(Duration::from_secs(15), || lab.ping("a", "10.89.0.1"));
    assert!(gateway, "and reach their gateway");
    let running = lab.json(&["ps", "--format", "json"]);
    assert_eq!(running.as_array().map(Vec::len), Some(2), "{running}");
}

#[test]
fn masquerade_follows_a_renumbered_uplink() {
    if !privileged("masquerade_follows_a_renumbered_uplink") {
        return;
    }
    let lab = Lab::with_external();
    lab.ok(&["network", "create", "--subnet", "10.90.0.0/24", "out"]);
    lab.run_d("c", &["--network", "out"]);
    assert!(lab.ping("c", EXTERNAL_IP), "masqueraded to {UPLINK_IP}");
    // DHCP gives the uplink another address (deleting a primary address deletes its
    // secondaries: the old one goes first).
    lab.host(&[
        "ip",
        "addr",
        "del",
        &format!("{UPLINK_IP}/24"),
        "dev",
        "up0",
    ]);
    lab.host(&["ip", "addr", "add", "10.99.0.77/24", "dev", "up0"]);
    lab.host(&["ip", "route", "replace", "default", "via", EXTERNAL_IP]);
    // Nobody answers for the old address now (the external client forgets what it knew):
    // a reply reaches the container only if its request left from the new one.
    lab.external(&["ip", "neigh", "flush", "all"]);
    let followed = wait_until(Duration::from_secs(15), || {
        lab.daemon_log()
            .contains("masquerade moves from 10.99.0.1 to 10.99.0.77")
    });
    assert!(
        followed,
        "the daemon saw the new address:\n{}",
        lab.daemon_log()
    );
    let reached = wait_until(Duration::from_secs(10), || lab.ping("c", EXTERNAL_IP));
    assert!(reached, "masqueraded to 10.99.0.77");
}

#[test]
fn a_restart_removes_what_a_crash_left_half_made() {
    if !privileged("a_restart_removes_what_a_crash_left_half_made") {
        return;
    }
    let mut lab = Lab::new();
    lab.ok(&["network", "create", "--subnet", "10.91.0.0/24", "whole"]);
    lab.run_d("c", &["--network", "whole"]);
    let id = lab.inspect("c")["Id"].as_str().unwrap().to_string();
    lab.kill_daemon();
    // What a crash between two steps leaves: a bridge created but not yet marked, a
    // container's files without its config, writes that never reached their rename.
    lab.host(&["ip", "link", "add", "nd-0123456789ab", "type", "bridge"]);
    // Not netd's: another name scheme, or marked by nobody.
    lab.host(&["ip", "link", "add", "nd-operator", "type", "bridge"]);
    lab.host(&["ip", "link", "add", "br-0123456789ab", "type", "bridge"]);
    let state = lab.state_dir();
    let half = state.join("containers").join("f".repeat(64));
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::write(half.join("resolv.tmp"), "nameserver 10.91.0.1\n").unwrap();
    std::fs::write(state.join("networks").join("abc.tmp"), "{").unwrap();
    let whole = state.join("containers").join(&id);
    std::fs::write(whole.join("config.tmp"), "{").unwrap();

    lab.start_daemon();
    let links = lab.host_links();
    assert!(!links.contains(&"nd-0123456789ab".to_string()), "{links:?}");
    for kept in ["nd-operator", "br-0123456789ab"] {
        assert!(
            links.contains(&kept.to_string()),
            "{kept} is not netd's: {links:?}"
        );
    }
    assert!(!half.exists(), "a container dir without its config");
    assert!(!state.join("networks").join("abc.tmp").exists());
    assert!(!whole.join("config.tmp").exists());
    assert!(
        whole.join("config.json").exists(),
        "the whole container stays"
    );
    let running = lab.json(&["ps", "--format", "json"]);
    assert_eq!(running.as_array().map(Vec::len), Some(1), "{running}");
    assert!(lab.ping("c", "10.91.0.1"));
}

#[test]
fn a_running_daemon_puts_back_a_deleted_veth_and_bridge() {
    if !privileged("a_running_daemon_puts_back_a_deleted_veth_and_bridge") {
        return;
    }
    let lab = Lab::new();
    let bridge = network_with_bridge(&lab, "10.92.0.0/24", "live");
    lab.run_d("a", &["--network", "live"]);
    lab.run_d("b", &["--network", "live"]);
    let b = lab.ip("b", "live");
    let veth = lab.inspect("a")["NetworkSettings"]["Networks"]["live"]["HostInterface"]
        .as_str()
        .expect("a's host interface")
        .to_string();
    // The veth: deleting its host side deletes the container's eth0 with it.
    lab.host(&["ip", "link", "del", &veth]);
    let back = wait_until(Duration::from_secs(15), || lab.ping("a", &b));
    assert!(back, "a has its interface again:\n{}", lab.daemon_log());
    // Made again, it has another ifindex: the entries of the old one are gone.
    for map in ["NETD_ENDPOINTS", "NETD_IFACE_CTRS"] {
        let forgotten = wait_until(Duration::from_secs(15), || lab.map_entries(map) == 2);
        assert!(forgotten, "{map} holds the two ports only");
    }
    // The bridge: members lose their gateway until it is made again.
    lab.host(&["ip", "link", "del", &bridge]);
    let gateway = wait_until(Duration::from_secs(15), || {
        lab.host_links().contains(&bridge)
            && lab.ping("a", "10.92.0.1")
            && lab.ping("b", "10.92.0.1")
    });
    assert!(
        gateway,
        "the bridge is back with its members:\n{}",
        lab.daemon_log()
    );
    let repairs = repairs(&lab);
    assert!(repairs >= 3.0, "repairs counted: {repairs}");
}

#[test]
fn an_unmounted_namespace_of_a_running_container_is_mounted_again() {
    if !privileged("an_unmounted_namespace_of_a_running_container_is_mounted_again") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&["network", "create", "--subnet", "10.93.0.0/24", "ns"]);
    lab.run_d("a", &["--network", "ns"]);
    lab.run_d("b", &["--network", "ns"]);
    let b = lab.ip("b", "ns");
    let path = lab.inspect("a")["NetworkSettings"]["SandboxKey"]
        .as_str()
        .expect("a's namespace path")
        .to_string();
    // What `ip netns del` does; a's process keeps the namespace alive.
    let umount = std::process::Command::new("umount")
        .args(["-l", &path])
        .status()
        .unwrap();
    assert!(umount.success());
    let _ = std::fs::remove_file(&path);
    let back = wait_until(Duration::from_secs(15), || {
        lab.exec("a", &["true"]).status.success()
    });
    assert!(back, "exec reaches a again:\n{}", lab.daemon_log());
    assert!(lab.ping("a", &b), "through the same interface");
    assert!(
        lab.daemon_log()
            .contains("was unmounted: mounting it again"),
        "logged"
    );
    assert!(repairs(&lab) >= 1.0, "counted");
}

/// A new network and the name of the bridge it got.
fn network_with_bridge(lab: &Lab, subnet: &str, name: &str) -> String {
    let before = lab.host_links();
    lab.ok(&["network", "create", "--subnet", subnet, name]);
    lab.host_links()
        .into_iter()
        .find(|l| !before.contains(l))
        .expect("the network's bridge")
}

/// `netd_repairs_total` of the lab's daemon.
fn repairs(lab: &Lab) -> f64 {
    let scrape = lab.host(&["curl", "-sf", "http://127.0.0.1:9640/metrics"]);
    scrape
        .lines()
        .find_map(|l| l.strip_prefix("netd_repairs_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}
