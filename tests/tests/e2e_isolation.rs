//! Tier 3: isolation and anti-spoofing end to end, in throwaway namespaces with real traffic:
//! the reachability matrix over three networks, icc=false with ARP and raw frames, spoofed
//! sources and ARP poisoning from a container, direct access from outside.

use std::{collections::BTreeMap, process::Child};

use integration_tests::{
    child::{output_of, spawn_exec, wait_ready},
    lines_of, privileged, reach_script, Lab, EXTERNAL_IP, UPLINK_IP,
};
use serde_json::Value;

const PORT: &str = "7000";

/// Starts a container on `network` that answers TCP and UDP on PORT for two minutes, and
/// waits until it listens.
fn server(lab: &Lab, name: &str, network: &str) {
    server_with(lab, name, network, &[]);
}

/// [`server`] with more `run` options (for example `-p`).
fn server_with(lab: &Lab, name: &str, network: &str, options: &[&str]) {
    let script = reach_script();
    let mut args = vec!["run", "-d", "--name", name, "--network", network];
    args.extend_from_slice(options);
    args.extend_from_slice(&["--", "python3", &script, "serve", PORT, "120"]);
    lab.ok(&args);
    let port = PORT.parse().unwrap();
    lab.wait_listening(name, "tcp", port);
    lab.wait_listening(name, "udp", port);
}

/// Tries TCP, UDP and ping from `from` to each address at once; returns what answered.
fn probe(lab: &Lab, from: &str, to: &[&str]) -> BTreeMap<String, bool> {
    let script = reach_script();
    let mut cmd = vec!["python3", &script, "probe", "1"];
    let targets: Vec<String> = to
        .iter()
        .flat_map(|ip| {
            [
                format!("tcp:{ip}:{PORT}"),
                format!("udp:{ip}:{PORT}"),
                format!("icmp:{ip}"),
            ]
        })
        .collect();
    cmd.extend(targets.iter().map(String::as_str));
    lab.exec_ok(from, &cmd)
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(t, r)| (t.to_string(), r == "ok"))
        .collect()
}

/// Asserts that every protocol from `from` reaches each of `reach` and none of `not`.
fn assert_reach(lab: &Lab, from: &str, reach: &[&str], not: &[&str]) {
    let all: Vec<&str> = reach.iter().chain(not).copied().collect();
    let got = probe(lab, from, &all);
    for (target, ok) in &got {
        let ip = target.split(':').nth(1).unwrap();
        let expected = reach.contains(&ip);
        assert_eq!(*ok, expected, "{from} -> {target}: {got:?}");
    }
    assert_eq!(got.len(), all.len() * 3, "{got:?}");
}

#[test]
fn networks_internal_networks_and_a_two_network_container() {
    if !privileged("networks_internal_networks_and_a_two_network_container") {
        return;
    }
    let lab = Lab::with_external();
    let before = lab.rulesets();
    lab.ok(&["network", "create", "--subnet", "10.31.0.0/24", "n1"]);
    lab.ok(&["network", "create", "--subnet", "10.32.0.0/24", "n2"]);
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        "10.33.0.0/24",
        "--internal",
        "int",
    ]);
    for (name, net) in [
        ("a1", "n1"),
        ("a2", "n1"),
        ("b1", "n2"),
        ("i1", "int"),
        ("i2", "int"),
        ("m", "n1"),
    ] {
        server(&lab, name, net);
    }
    lab.ok(&["network", "connect", "n2", "m"]);
    let ip = |c: &str, n: &str| lab.ip(c, n);
    let (a1, a2, b1, i1, i2) = (
        ip("a1", "n1"),
        ip("a2", "n1"),
        ip("b1", "n2"),
        ip("i1", "int"),
        ip("i2", "int"),
    );
    let (m1, m2) = (ip("m", "n1"), ip("m", "n2"));

    assert_reach(&lab, "a1", &[&a2, &m1], &[&b1, &i1, &m2]);
    assert_reach(&lab, "a2", &[&a1], &[&b1, &i2]);
    assert_reach(&lab, "b1", &[&m2], &[&a1, &i1, &m1]);
    assert_reach(&lab, "i1", &[&i2], &[&a1, &b1, &m1, &m2]);
    assert_reach(&lab, "i2", &[&i1], &[&a2, &b1]);
    assert_reach(&lab, "m", &[&a1, &b1], &[&i1]);

    // Gateways: one's own answers, another network's does not, an internal one's not at all.
    assert!(lab.ping("a1", "10.31.0.1"));
    assert!(!lab.ping("a1", "10.32.0.1"), "another network's gateway");
    assert!(!lab.ping("b1", "10.31.0.1"));
    assert!(
        !lab.ping("i1", "10.33.0.1"),
        "host services of an internal network"
    );
    // The outside: masqueraded for ordinary networks, nothing for internal ones.
    assert!(lab.ping("a1", EXTERNAL_IP));
    assert!(lab.ping("m", EXTERNAL_IP));
    assert!(!lab.ping("i1", EXTERNAL_IP));

    assert!(lab.drops("n1", "other_network") > 0);
    assert!(lab.drops("int", "internal_network") > 0);

    // Container-facing interfaces take no router advertisement.
    let stats: Value = lab.json(&["stats", "--format", "json"]);
    let veth = stats.as_array().unwrap()[0]["HostInterface"]
        .as_str()
        .unwrap()
        .to_string();
    let bridge = lab.json(&["network", "inspect", "n1"])[0]["Options"]
        ["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .to_string();
    for iface in [veth, bridge] {
        let accept_ra = lab.host(&["cat", &format!("/proc/sys/net/ipv6/conf/{iface}/accept_ra")]);
        assert_eq!(accept_ra.trim(), "0", "{iface}");
    }
    assert_eq!(before, lab.rulesets(), "no iptables or nftables rule");
}

#[test]
fn the_outside_reaches_containers_only_through_published_ports() {
    if !privileged("the_outside_reaches_containers_only_through_published_ports") {
        return;
    }
    let lab = Lab::with_external();
    let before = lab.rulesets();
    lab.ok(&["network", "create", "--subnet", "10.41.0.0/24", "nat"]);
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        "10.42.0.0/24",
        "-o",
        "gateway-mode=routed",
        "-o",
        "com.docker.network.bridge.enable_ip_masquerade=false",
        "routed",
    ]);
    let script = reach_script();
    server_with(
        &lab,
        "web",
        "nat",
        &["-p", "8080:7000", "-p", "8080:7000/udp"],
    );
    server(&lab, "open", "routed");
    let web = lab.ip("web", "nat");
    let open = lab.ip("open", "routed");
    for net in ["10.41.0.0/24", "10.42.0.0/24"] {
        lab.external(&["ip", "route", "add", net, "via", UPLINK_IP]);
    }
    let ext_probe = |targets: &[String]| -> BTreeMap<String, bool> {
        let mut cmd = vec![
            "python3".to_string(),
            script.clone(),
            "probe".into(),
            "1".into(),
        ];
        cmd.extend(targets.iter().cloned());
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let out = lab.external(&args);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(t, r)| (t.to_string(), r == "ok"))
            .collect()
    };
    let targets = [
        format!("tcp:{web}:{PORT}"),
        format!("udp:{web}:{PORT}"),
        format!("icmp:{web}"),
        format!("tcp:{UPLINK_IP}:8080"),
        format!("udp:{UPLINK_IP}:8080"),
        format!("tcp:{open}:{PORT}"),
        format!("icmp:{open}"),
    ];
    let got = ext_probe(&targets);
    assert_eq!(got.len(), targets.len(), "{got:?}");
    for (target, ok) in &got {
        // The published port, and the routed network's container; never `web` directly.
        let want = target.contains(UPLINK_IP) || target.contains(&open);
        assert_eq!(*ok, want, "{target}: {got:?}");
    }
    assert!(lab.drops("nat", "direct_access") >= 3);
    assert_eq!(lab.drops("routed", "direct_access"), 0);

    // Opting in and out is live.
    let open_tcp = format!("tcp:{open}:{PORT}");
    let only = |ok: bool| BTreeMap::from([(open_tcp.clone(), ok)]);
    lab.ok(&["network", "update", "-o", "gateway-mode=nat", "routed"]);
    assert_eq!(ext_probe(std::slice::from_ref(&open_tcp)), only(false));
    lab.ok(&["network", "update", "-o", "gateway-mode=routed", "routed"]);
    assert_eq!(ext_probe(std::slice::from_ref(&open_tcp)), only(true));
    assert_eq!(before, lab.rulesets(), "no iptables or nftables rule");
}

fn mac(lab: &Lab, container: &str, network: &str) -> String {
    lab.inspect(container)["NetworkSettings"]["Networks"][network]["MacAddress"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Raw frames of an unused ethertype from `from` to `to`'s MAC and to broadcast; returns how
/// many `to` received.
fn raw_frames_received(lab: &Lab, network: &str, from: &str, to: &str) -> u64 {
    let script = reach_script();
    let mut listener = spawn_exec(
        lab,
        to,
        &["python3", &script, "raw-listen", "eth0", "0x88b5", "2"],
    );
    wait_ready(&mut listener);
    let dst = mac(lab, to, network);
    for target in [dst.as_str(), "ff:ff:ff:ff:ff:ff"] {
        lab.exec_ok(
            from,
            &["python3", &script, "raw-send", "eth0", target, "0x88b5"],
        );
    }
    output_of(listener).trim().parse().expect("a count")
}

#[test]
fn icc_off_keeps_members_apart_at_every_layer_but_not_from_published_ports() {
    if !privileged("icc_off_keeps_members_apart_at_every_layer_but_not_from_published_ports") {
        return;
    }
    let mut lab = Lab::with_external();
    let before = lab.rulesets();
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        "10.51.0.0/24",
        "-o",
        "icc=false",
        "quiet",
    ]);
    let script = reach_script();
    server(&lab, "c1", "quiet");
    server_with(&lab, "c2", "quiet", &["-p", "8080:7000"]);
    let (c1, c2) = (lab.ip("c1", "quiet"), lab.ip("c2", "quiet"));
    assert_reach(&lab, "c1", &[], &[&c2]);
    assert_reach(&lab, "c2", &[], &[&c1]);
    // ARP: c1's questions about c2 never reached it (a request would leave c1 in its table).
    let neigh = lab.exec_ok("c2", &["ip", "neigh", "show", &c1]);
    assert!(!neigh.contains("lladdr"), "c2 heard c1's ARP: {neigh}");
    assert_eq!(
        raw_frames_received(&lab, "quiet", "c1", "c2"),
        0,
        "raw Ethernet"
    );
    // The gateway, the outside and published ports stay reachable.
    assert!(lab.ping("c1", "10.51.0.1"));
    assert!(lab.ping("c1", EXTERNAL_IP));
    let reply = lab.exec_ok(
        "c1",
        &[
            "python3",
            &script,
            "probe",
            "2",
            &format!("tcp:{UPLINK_IP}:8080"),
        ],
    );
    assert!(
        reply.ends_with("ok\n"),
        "c2's published port from c1: {reply}\n{}",
        lab.ok(&["stats", "--drops"])
    );
    assert!(lab.drops("quiet", "icc_disabled") > 0);

    // The rules hold without the daemon (killed), and after its restart: they live in
    // pinned maps, run by programs attached to the ports.
    let sandbox = lab.inspect("c1")["NetworkSettings"]["SandboxKey"]
        .as_str()
        .unwrap()
        .to_string();
    lab.kill_daemon();
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={sandbox}"))
        .args([
            "python3",
            &script,
            "probe",
            "1",
            &format!("tcp:{c2}:{PORT}"),
            &format!("icmp:{c2}"),
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.matches(" no").count(), 2, "without the daemon: {out}");
    lab.start_daemon();
    assert_reach(&lab, "c1", &[], &[&c2]);

    // Live: icc back on lets everything through, off again stops it.
    lab.ok(&["network", "update", "-o", "icc=true", "quiet"]);
    assert_reach(&lab, "c1", &[&c2], &[]);
    assert_eq!(
        raw_frames_received(&lab, "quiet", "c1", "c2"),
        2,
        "the positive control"
    );
    lab.ok(&[
        "network",
        "update",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "quiet",
    ]);
    assert_reach(&lab, "c1", &[], &[&c2]);
    assert_eq!(before, lab.rulesets());
}

#[test]
fn spoofed_addresses_and_arp_poisoning_from_a_container_are_dropped() {
    if !privileged("spoofed_addresses_and_arp_poisoning_from_a_container_are_dropped") {
        return;
    }
    let lab = Lab::new();
    let before = lab.rulesets();
    lab.ok(&["network", "create", "--subnet", "10.61.0.0/24", "n"]);
    for name in ["attacker", "victim", "bystander"] {
        lab.run_d(name, &["--network", "n"]);
    }
    let script = reach_script();
    let (a, v, b) = (
        lab.ip("attacker", "n"),
        lab.ip("victim", "n"),
        lab.ip("bystander", "n"),
    );
    let (a_mac, v_mac, b_mac) = (
        mac(&lab, "attacker", "n"),
        mac(&lab, "victim", "n"),
        mac(&lab, "bystander", "n"),
    );

    // Hand-made UDP frames to the victim: its own addresses pass, a borrowed IP or MAC not.
    let sink = spawn_exec(&lab, "victim", &["python3", &script, "sink", "9000", "5"]);
    lab.wait_listening("victim", "udp", 9000);
    for (src_mac, src_ip, tag) in [
        (a_mac.as_str(), a.as_str(), "genuine"),
        (a_mac.as_str(), b.as_str(), "spoofed-ip"),
        ("02:42:0a:3d:00:99", a.as_str(), "spoofed-mac"),
    ] {
        lab.exec_ok(
            "attacker",
            &[
                "python3",
                &script,
                "udp-frame",
                "eth0",
                src_mac,
                src_ip,
                &v_mac,
                &v,
                "9000",
                tag,
            ],
        );
    }
    let got = output_of(sink);
    assert!(got.contains(&format!("from={a} data=genuine")), "{got}");
    assert!(!got.contains("spoofed"), "{got}");
    assert_eq!(lab.drops("n", "spoofed_ip"), 1);
    assert_eq!(lab.drops("n", "spoofed_mac"), 1);

    // ARP poisoning: the victim knows the bystander; the attacker claims its address.
    assert!(lab.ping("victim", &b));
    // Past the neighbour lock time, after which Linux takes an unsolicited reply.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    lab.exec_ok(
        "attacker",
        &["python3", &script, "arp-reply", "eth0", &b, &v_mac, &v],
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let neigh = lab.exec_ok("victim", &["ip", "neigh", "show", &b]);
    assert!(
        neigh.contains(&b_mac),
        "the victim's entry for {b} changed: {neigh}"
    );
    assert!(!neigh.contains(&a_mac), "{neigh}");
    assert_eq!(
        lab.drops("n", "spoofed_arp"),
        3,
        "{}",
        lab.ok(&["stats", "--drops"])
    );
    let all: Value = lab.json(&["stats", "--drops", "--format", "json"]);
    assert!(
        all.as_array().unwrap().iter().any(|d| d["Network"] == "n"
            && d["Reason"] == "spoofed_arp"
            && d["Direction"] == "from_container"),
        "{all}"
    );
    assert_eq!(before, lab.rulesets(), "no iptables or nftables rule");
}

/// `container`'s row of `netd stats`.
fn stats_of(lab: &Lab, container: &str) -> Value {
    lab.json(&["stats", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Container"] == container)
        .cloned()
        .unwrap_or_else(|| panic!("no stats for {container}"))
}

#[test]
fn members_talk_past_the_bridge_which_never_floods_their_frames() {
    if !privileged("members_talk_past_the_bridge_which_never_floods_their_frames") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&["network", "create", "--subnet", "10.91.0.0/24", "fast"]);
    lab.run_d("a", &["--network", "fast"]);
    lab.run_d("b", &["--network", "fast"]);
    let (a_ip, b_ip) = (lab.ip("a", "fast"), lab.ip("b", "fast"));
    let port = stats_of(&lab, "b")["HostInterface"]
        .as_str()
        .unwrap()
        .to_string();
    // The echo requests to b that the bridge sends out of b's port, by source: a's ought to
    // go past it, the gateway's (the host's own) cross it and show that the capture works.
    let capture = Capture::start(&lab, &port, &format!("icmp[icmptype] = 8 and dst {b_ip}"));
    let netd_before = stats_of(&lab, "b")["RxPackets"].as_u64().unwrap();
    lab.exec_ok("a", &["ping", "-c", "20", "-i", "0.05", "-q", &b_ip]);
    let netd = stats_of(&lab, "b")["RxPackets"].as_u64().unwrap() - netd_before;
    lab.host(&["ping", "-c", "5", "-i", "0.05", "-q", &b_ip]);
    let sources = capture.sources_after(5);
    assert!(netd >= 20, "netd counted {netd} packets delivered to b");
    assert_eq!(sources.get("10.91.0.1"), Some(&5), "gateway: {sources:?}");
    assert_eq!(
        sources.get(&a_ip),
        None,
        "the bridge forwarded a's: {sources:?}"
    );

    // The bridge knows each member's MAC for good: frames for it are never flooded, even
    // when its learned entry would have aged out for lack of traffic through the bridge.
    let b_mac = mac(&lab, "b", "fast");
    let fdb = lab.host(&["bridge", "fdb", "show", "dev", &port]);
    assert!(
        fdb.lines()
            .any(|l| l.starts_with(&b_mac) && l.contains(" static")),
        "{fdb}"
    );
    lab.ok(&["rm", "-f", "b"]);
    let fdb = lab.host(&["bridge", "fdb", "show"]);
    assert!(!fdb.contains(&b_mac), "{fdb}");
    assert!(!lab.ping("a", &b_ip));
}

/// tcpdump on one interface of the lab's host namespace, from the moment it listens.
struct Capture(Child);

impl Capture {
    fn start(lab: &Lab, iface: &str, filter: &str) -> Self {
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &lab.netns, "tcpdump", "-i", iface])
            .args(["-n", "-l", "-Q", "out", "--immediate-mode", filter])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tcpdump");
        // Stopped on drop, even if it never starts. It says "listening on IFACE" on stderr
        // once its filter is in place.
        let mut capture = Self(child);
        let rx = lines_of(capture.0.stderr.take().unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("tcpdump listening within 20 s");
            if line.contains("listening on") {
                return capture;
            }
        }
    }

    /// Stops once `expected` packets were captured in all (or after 10 s) and counts the
    /// captured packets by source address.
    fn sources_after(mut self, expected: usize) -> BTreeMap<String, usize> {
        let rx = lines_of(self.0.stdout.take().unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut lines = Vec::new();
        while lines.len() < expected {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        lines.extend(rx.try_iter());
        let mut by_source = BTreeMap::new();
        for line in &lines {
            // "12:00:00.000000 IP 10.91.0.1 > 10.91.0.3: ICMP echo request, ..."
            if let Some(src) = line.split(" IP ").nth(1).and_then(|r| r.split(' ').next()) {
                *by_source.entry(src.to_string()).or_insert(0) += 1;
            }
        }
        by_source
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
