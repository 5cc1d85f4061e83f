//! Tier 3: the datapath on macvlan endpoints. A container's own macvlan, in its namespace,
//! carries netd's LAN programs: what the container sends onto the LAN leaves only with its
//! own MAC and address (each drop counted by reason), and both directions are counted.

use std::time::{Duration, Instant};

use integration_tests::{
    child::{output_of, spawn_in_namespace},
    lan::{first_node, in_netns, macvlan_net, reaches, reaches_none, server, LAN_HOST, ROUTER},
    privileged, reach_script,
};

/// Waits, bounded, until something in namespace `ns` listens on UDP `port`.
fn wait_udp_listening(ns: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let filter = format!("sport = :{port}");
    while Instant::now() < deadline {
        let out = in_netns(ns, &["ss", "-Hlun", &filter]);
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on UDP {port} in {ns}");
}

fn mac_of(ns: &str, iface: &str) -> String {
    let out = in_netns(ns, &["cat", &format!("/sys/class/net/{iface}/address")]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn what_a_macvlan_container_sends_is_its_own_and_counted() {
    if !privileged("what_a_macvlan_container_sends_is_its_own_and_counted") {
        return;
    }
    let (node01, lan) = first_node();
    let before = node01.rulesets();
    macvlan_net(&node01, "lan", "192.168.0.64/28", "bridge");
    let c1 = server(&node01, "c1", "lan");
    reaches("c1 -> router", &|cmd| node01.exec("c1", cmd), &[ROUTER]);
    reaches("router -> c1", &|cmd| in_netns(&lan.router, cmd), &[&c1]);

    // The programs sit on the container's own eth0.
    let filters = node01.exec_ok("c1", &["tc", "filter", "show", "dev", "eth0", "egress"]);
    assert!(filters.contains("netd_lan_egress"), "{filters}");

    // Counted both ways, as the container sees it; no host interface.
    let stats = node01.json(&["stats", "--format", "json"]);
    let row = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Container"] == "c1")
        .expect("a row of c1")
        .clone();
    assert!(row["TxPackets"].as_u64().unwrap() > 0, "{row}");
    assert!(row["RxPackets"].as_u64().unwrap() > 0, "{row}");
    assert_eq!(row["HostInterface"], "", "{row}");

    // Hand-made frames to the LAN host: its own addresses pass, a borrowed IP or MAC not.
    let script = reach_script();
    let sink = spawn_in_namespace(&lan.host, &["python3", &script, "sink", "9000", "5"]);
    wait_udp_listening(&lan.host, 9000);
    let c1_mac = node01.inspect("c1")["NetworkSettings"]["Networks"]["lan"]["MacAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let host_mac = mac_of(&lan.host, "eth0");
    for (src_mac, src_ip, tag) in [
        (c1_mac.as_str(), c1.as_str(), "genuine"),
        (c1_mac.as_str(), "192.168.0.99", "spoofed-ip"),
        ("02:42:c0:a8:00:99", c1.as_str(), "spoofed-mac"),
    ] {
        let sent = node01.exec(
            "c1",
            &[
                "python3",
                &script,
                "udp-frame",
                "eth0",
                src_mac,
                src_ip,
                &host_mac,
                LAN_HOST,
                "9000",
                tag,
            ],
        );
        // Dropped at the sender's own egress, the send itself fails (ENOBUFS).
        let stderr = String::from_utf8_lossy(&sent.stderr);
        match tag {
            "genuine" => assert!(sent.status.success(), "{stderr}"),
            _ => assert!(
                sent.status.success() || stderr.contains("No buffer space"),
                "{stderr}"
            ),
        }
    }
    let got = output_of(sink);
    assert!(got.contains(&format!("from={c1} data=genuine")), "{got}");
    assert!(!got.contains("spoofed"), "{got}");
    assert_eq!(node01.drops("lan", "spoofed_ip"), 1);
    assert_eq!(node01.drops("lan", "spoofed_mac"), 1);
    assert_eq!(node01.rulesets(), before);

    // A restart keeps the programs and counters; `rm` takes the entries with it.
    let mut node01 = node01;
    node01.kill_daemon();
    node01.start_daemon();
    let filters = node01.exec_ok("c1", &["tc", "filter", "show", "dev", "eth0", "egress"]);
    assert!(filters.contains("netd_lan_egress"), "{filters}");
    let endpoints = node01.map_entries("NETD_ENDPOINTS");
    node01.ok(&["rm", "-f", "c1"]);
    assert_eq!(node01.map_entries("NETD_ENDPOINTS"), endpoints - 1);
}

#[test]
fn bridge_containers_and_macvlan_containers_of_one_host_stay_apart() {
    if !privileged("bridge_containers_and_macvlan_containers_of_one_host_stay_apart") {
        return;
    }
    let (node01, lan) = first_node();
    macvlan_net(&node01, "lan", "192.168.0.64/28", "bridge");
    let c1 = server(&node01, "c1", "lan");
    node01.ok(&["network", "create", "--subnet", "10.51.0.0/24", "inner"]);
    let app = server(&node01, "app", "inner");
    let app2 = server(&node01, "app2", "inner");
    // Both work...
    reaches("router -> c1", &|cmd| in_netns(&lan.router, cmd), &[&c1]);
    reaches("app -> app2", &|cmd| node01.exec("app", cmd), &[&app2]);
    // ...but the host's own frames never reach its macvlans (the kernel's macvlan), so a
    // bridge container, routed by the host, cannot reach one, nor one it.
    reaches_none("app -> c1", &|cmd| node01.exec("app", cmd), &[&c1]);
    reaches_none("c1 -> app", &|cmd| node01.exec("c1", cmd), &[&app]);
}

#[test]
fn netd_monitor_shows_a_macvlan_containers_drops() {
    if !privileged("netd_monitor_shows_a_macvlan_containers_drops") {
        return;
    }
    let (node01, _lan) = first_node();
    macvlan_net(&node01, "lan", "192.168.0.64/28", "bridge");
    let c1 = server(&node01, "c1", "lan");
    let mut monitor = std::process::Command::new(integration_tests::netd_bin())
        .env("NETD_SOCKET", node01.socket())
        .args([
            "monitor",
            "--reason",
            "spoofed_mac",
            "--network",
            "lan",
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("netd monitor");
    let rx = integration_tests::lines_of(monitor.stdout.take().unwrap());
    let script = reach_script();
    // The programs write events once the daemon has the watch: a few tries, each bounded.
    let mut event = None;
    for _ in 0..20 {
        let _ = node01.exec(
            "c1",
            &[
                "python3",
                &script,
                "udp-frame",
                "eth0",
                "02:42:c0:a8:00:99",
                &c1,
                "02:00:00:00:00:01",
                ROUTER,
                "9000",
                "spoofed",
            ],
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            event = Some(serde_json::from_str::<serde_json::Value>(&line).unwrap());
            break;
        }
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    let ev = event.expect("a spoofed_mac event");
    assert_eq!(ev["Kind"], "drop", "{ev}");
    assert_eq!(ev["Reason"], "spoofed_mac", "{ev}");
    assert_eq!(ev["Direction"], "from_container", "{ev}");
    assert_eq!(ev["Network"], "lan", "{ev}");
    assert_eq!(ev["Container"], "c1", "{ev}");
}
