//! Tier 3: the Prometheus metrics, scraped from a lab daemon: the scrape passes
//! `promtool check metrics`, and counters match known traffic on the right labels (pings,
//! connections through a published port, drops caused on purpose, DNS queries, API calls),
//! map gauges match the entries.

use std::process::{Command, Stdio};

use integration_tests::{peer_script, privileged, wait_until, Lab, UPLINK_IP};

/// Network `mon` (PREFIX.0.0/24, e.g. 10.91) with `members`, network `far` (the next second
/// octet, 10.92.0.0/24) with `x`, and `web` on the default bridge publishing 8080 to a TCP
/// server.
fn populate(lab: &Lab, prefix: &str, members: &[&str]) {
    let (a, b) = prefix.split_once('.').unwrap();
    let far = format!("{a}.{}", b.parse::<u8>().unwrap() + 1);
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{prefix}.0.0/24"),
        "mon",
    ]);
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{far}.0.0/24"),
        "far",
    ]);
    for m in members {
        lab.run_d(m, &["--network", "mon"]);
    }
    lab.run_d("x", &["--network", "far"]);
    let script = peer_script();
    lab.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "8080:80",
        "--",
        "python3",
        &script,
        "tcp-server",
        "80",
    ]);
    lab.wait_listening("web", "tcp", 80);
}

/// One connection from the external client to `web`'s published port.
fn connect_to_web(lab: &Lab) {
    let script = peer_script();
    let args = [
        "timeout",
        "20",
        "python3",
        &script,
        "tcp-client",
        UPLINK_IP,
        "8080",
    ];
    let reply = lab.external(&args);
    assert!(
        reply.status.success(),
        "{}",
        String::from_utf8_lossy(&reply.stderr)
    );
}

fn scrape(lab: &Lab) -> String {
    lab.host(&["curl", "-sf", "http://127.0.0.1:9640/metrics"])
}

/// A scrape taken once no packet crossed the ports of `network` for one second (at most 15 s).
fn quiet_scrape(lab: &Lab, network: &str) -> String {
    let packets = |text: &str| {
        sample(
            text,
            "netd_network_packets_total",
            &[("network", network), ("direction", "to_container")],
        ) + sample(
            text,
            "netd_network_packets_total",
            &[("network", network), ("direction", "from_container")],
        )
    };
    let mut last = scrape(lab);
    for _ in 0..15 {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let now = scrape(lab);
        if packets(&now) == packets(&last) {
            return now;
        }
        last = now;
    }
    panic!("the ports of {network} were never quiet for a second in 15 s");
}

/// The value of the sample `name` whose labels include `labels`; 0 when there is none.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse().ok())
            .flatten()
        })
        .collect();
    assert!(
        matching.len() <= 1,
        "{name} {labels:?} is ambiguous: {matching:?}"
    );
    matching.first().copied().unwrap_or(0.0)
}

#[test]
fn the_scrape_is_valid_and_counts_known_traffic_on_the_right_labels() {
    if !privileged("the_scrape_is_valid_and_counts_known_traffic_on_the_right_labels") {
        return;
    }
    let lab = Lab::with_external();
    populate(&lab, "10.91", &["p", "t"]);
    let t_ip = lab.ip("t", "mon");

    // 100 pings: 100 each way, on both interfaces. netd runs no IPv6 on an IPv4-only network,
    // so no router solicitation or MLD report adds to the count, and each knows the other's
    // MAC for good, so that no ARP probe does (a neighbour learnt from a request is probed
    // 5 s later).
    let p_ip = lab.ip("p", "mon");
    for (c, peer, peer_ip) in [("p", "t", &t_ip), ("t", "p", &p_ip)] {
        let peer_mac = lab.inspect(peer)["NetworkSettings"]["Networks"]["mon"]["MacAddress"]
            .as_str()
            .unwrap()
            .to_string();
        lab.exec_ok(
            c,
            &[
                "ip",
                "neigh",
                "replace",
                peer_ip,
                "lladdr",
                &peer_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        );
    }
    assert!(lab.ping("p", &t_ip));
    // A freshly made bridge may still announce itself (IGMP reports of its new address) in
    // its first seconds: start counting once the members' ports have been quiet for a second.
    let before = quiet_scrape(&lab, "mon");
    let out = lab.exec("p", &["ping", "-q", "-c", "100", "-i", "0.01", &t_ip]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = scrape(&lab);
    let delta = |container: &str, direction: &str| {
        let labels = [
            ("network", "mon"),
            ("container", container),
            ("interface", "eth0"),
            ("direction", direction),
        ];
        sample(&after, "netd_interface_packets_total", &labels)
            - sample(&before, "netd_interface_packets_total", &labels)
    };
    let deltas = [
        delta("p", "from_container"),
        delta("p", "to_container"),
        delta("t", "from_container"),
        delta("t", "to_container"),
    ];
    assert_eq!(deltas, [100.0; 4], "p out, p in, t out, t in");
    let net = |text: &str| {
        sample(
            text,
            "netd_network_packets_total",
            &[("network", "mon"), ("direction", "from_container")],
        )
    };
    assert_eq!(net(&after) - net(&before), 200.0, "both members' packets");

    // Five connections through the published port from the external client.
    for _ in 0..5 {
        connect_to_web(&lab);
    }
    // Drops caused on purpose: three pings to another network.
    let x_ip = lab.ip("x", "far");
    let _ = lab.exec("p", &["ping", "-c", "3", "-i", "0.2", "-W", "1", &x_ip]);
    // DNS: three queries from a member.
    for _ in 0..3 {
        lab.exec_ok("p", &["dig", "+short", "+time=2", "+tries=1", "t"]);
    }
    // A refused API call.
    lab.fails(&["network", "create", "--subnet", "10.999.0.0/24", "bad"]);

    let text = scrape(&lab);
    let port = [
        ("network", "bridge"),
        ("container", "web"),
        ("protocol", "tcp"),
        ("host_ip", "0.0.0.0"),
        ("host_port", "8080"),
    ];
    assert_eq!(
        sample(&text, "netd_published_port_connections_total", &port),
        5.0
    );
    let dir = |d| {
        [
            port[0],
            port[1],
            port[2],
            port[3],
            port[4],
            ("direction", d),
        ]
    };
    assert!(
        sample(&text, "netd_published_port_packets_total", &dir("in")) >= 15.0,
        "{text}"
    );
    assert!(sample(&text, "netd_published_port_packets_total", &dir("out")) >= 10.0);
    assert!(sample(&text, "netd_published_port_bytes_total", &dir("in")) > 0.0);
    assert_eq!(
        sample(
            &text,
            "netd_drops_packets_total",
            &[
                ("network", "mon"),
                ("reason", "other_network"),
                ("direction", "from_container")
            ]
        ),
        3.0
    );
    assert_eq!(
        sample(&text, "netd_dns_queries_total", &[("network", "mon")]),
        3.0
    );
    assert_eq!(
        sample(&text, "netd_dns_failures_total", &[("network", "mon")]),
        0.0
    );
    assert_eq!(
        sample(&text, "netd_containers", &[("state", "running")]),
        4.0
    );
    assert_eq!(
        sample(
            &text,
            "netd_api_operation_errors_total",
            &[("operation", "POST /v1/networks"), ("kind", "client")]
        ),
        1.0
    );
    assert!(
        sample(
            &text,
            "netd_api_operations_total",
            &[("operation", "POST /v1/containers")]
        ) >= 4.0
    );
    assert_eq!(
        sample(&text, "netd_addresses_in_use", &[("network", "mon")]),
        2.0
    );
    assert_eq!(sample(&text, "netd_reconcile_runs_total", &[]), 1.0);

    // Map gauges: four container interfaces, one publication.
    let endpoints = [("map", "NETD_ENDPOINTS")];
    assert_eq!(sample(&text, "netd_map_entries", &endpoints), 4.0);
    let capacity = sample(&text, "netd_map_capacity", &endpoints);
    let ratio = sample(&text, "netd_map_pressure_ratio", &endpoints);
    assert!(
        (ratio - 4.0 / capacity).abs() < 1e-9,
        "{ratio} vs 4/{capacity}"
    );
    assert_eq!(
        sample(&text, "netd_map_entries", &[("map", "NETD_PORTS")]),
        1.0
    );
    assert_eq!(sample(&text, "netd_published_ports", &[]), 1.0);
    // Five connections through the port, two entries each, closed but not yet collected.
    assert_eq!(
        sample(&text, "netd_conntrack_entries", &[("kind", "published")]),
        10.0
    );
    // Each of them opened once (others, such as a masqueraded query, may add to it), and the
    // table refused none, at its default size.
    assert!(sample(&text, "netd_conntrack_opened_total", &[]) >= 5.0);
    assert_eq!(
        sample(&text, "netd_conntrack_insert_failures_total", &[]),
        0.0
    );
    assert_eq!(
        sample(&text, "netd_map_capacity", &[("map", "NETD_CT")]),
        f64::from(netd_common::maps::CONNTRACK_MAX)
    );
    // Nothing was pushed out of either table: each connection came in and is still there.
    for table in ["NETD_CT", "NETD_CT_NEW"] {
        assert_eq!(
            sample(&text, "netd_map_evictions_total", &[("map", table)]),
            0.0,
            "{table} evictions"
        );
    }

    // `netd stats` shows the same figures.
    let ports = lab.json(&["stats", "--view", "ports", "--format", "json"]);
    let web = &ports.as_array().unwrap()[0];
    assert_eq!(
        (web["Container"].as_str(), web["HostPort"].as_str()),
        (Some("web"), Some("8080"))
    );
    assert_eq!(web["Connections"], 5);
    let table = lab.ok(&["stats", "--view", "maps"]);
    assert!(
        table.starts_with("MAP") && table.contains("NETD_ENDPOINTS"),
        "{table}"
    );
    let dns = lab.json(&["stats", "--view", "dns", "--format", "json"]);
    assert!(
        dns.as_array()
            .unwrap()
            .iter()
            .any(|r| r["Network"] == "mon" && r["Queries"] == 3),
        "{dns}"
    );
    let err = lab.fails(&["stats", "--view", "everything"]);
    assert!(err.contains("everything"), "{err}");

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (cargo xtask setup installs it)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // A restart reconciles the same state once more.
    let mut lab = lab;
    lab.kill_daemon();
    lab.start_daemon();
    // The API answers (start_daemon waited for it); the exporter may take a moment longer.
    assert_eq!(
        sample(&scrape_when_up(&lab), "netd_reconcile_runs_total", &[]),
        2.0
    );
}

/// Scrapes once the exporter of a (re)started daemon answers.
fn scrape_when_up(lab: &Lab) -> String {
    let up = || {
        Command::new("ip")
            .args(["netns", "exec", &lab.netns, "curl", "-sf"])
            .arg("http://127.0.0.1:9640/metrics")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(wait_until(std::time::Duration::from_secs(20), up));
    scrape(lab)
}

#[test]
fn the_conntrack_table_takes_its_size_at_start() {
    if !privileged("the_conntrack_table_takes_its_size_at_start") {
        return;
    }
    let mut lab = Lab::with_external_args(&["--conntrack-max", "8192"]);
    let ct = [("map", "NETD_CT")];
    assert_eq!(
        sample(&scrape_when_up(&lab), "netd_map_capacity", &ct),
        8192.0
    );
    // Restarted with the default size: a new table, said in the log.
    lab.kill_daemon();
    lab.daemon_args.clear();
    lab.start_daemon();
    let text = scrape_when_up(&lab);
    assert_eq!(
        sample(&text, "netd_map_capacity", &ct),
        f64::from(netd_common::maps::CONNTRACK_MAX)
    );
    assert!(
        lab.daemon_log()
            .contains("pinned map NETD_CT is not this build's (entries 8192 -> 262144)"),
        "{}",
        lab.daemon_log()
    );
}

#[test]
fn a_bad_metrics_address_is_refused_by_name() {
    if !privileged("a_bad_metrics_address_is_refused_by_name") {
        return;
    }
    let out = Command::new(integration_tests::netd_bin())
        .args(["daemon", "--metrics-addr", "localhost-9640"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("localhost-9640"), "{err}");
}

/// `netd monitor ARGS --format json`, its lines sent to the returned channel as they come.
fn monitor(lab: &Lab, args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(integration_tests::netd_bin())
        .env("NETD_SOCKET", lab.socket())
        .arg("monitor")
        .args(args)
        .args(["--format", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("netd monitor");
    let rx = integration_tests::lines_of(child.stdout.take().unwrap());
    (child, rx)
}

/// Runs `trigger` until the monitor reports an event (the programs write nothing until the
/// daemon has the watch, which takes a moment after the monitor starts), at most 20 times.
fn next_event(rx: &std::sync::mpsc::Receiver<String>, trigger: impl Fn()) -> serde_json::Value {
    for _ in 0..20 {
        trigger();
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(1)) {
            return serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        }
    }
    panic!("no event after 20 tries");
}

#[test]
fn monitor_streams_drops_and_new_connections_with_filters() {
    if !privileged("monitor_streams_drops_and_new_connections_with_filters") {
        return;
    }
    let lab = Lab::with_external();
    populate(&lab, "10.93", &["p"]);
    let (p_ip, x_ip) = (lab.ip("p", "mon"), lab.ip("x", "far"));

    let (mut drops, rx) = monitor(&lab, &["--reason", "other_network", "--network", "mon"]);
    let ev = next_event(&rx, || {
        let _ = lab.exec("p", &["ping", "-c", "1", "-W", "1", &x_ip]);
    });
    assert_eq!(ev["Kind"], "drop", "{ev}");
    assert_eq!(ev["Reason"], "other_network");
    assert_eq!(ev["Direction"], "from_container");
    assert_eq!(ev["Network"], "mon");
    assert_eq!(ev["Protocol"], "icmp");
    assert_eq!(
        ev["Source"].as_str().unwrap().split(':').next(),
        Some(p_ip.as_str())
    );
    assert_eq!(
        ev["Destination"].as_str().unwrap().split(':').next(),
        Some(x_ip.as_str())
    );
    assert_eq!(ev["Container"], "p");
    let _ = drops.kill();
    let _ = drops.wait();

    let (mut conns, rx) = monitor(&lab, &["--container", "web"]);
    let ev = next_event(&rx, || connect_to_web(&lab));
    assert_eq!(ev["Kind"], "published", "{ev}");
    assert_eq!(ev["Protocol"], "tcp");
    assert_eq!(ev["Destination"], format!("{UPLINK_IP}:8080"));
    assert_eq!(ev["To"], format!("{}:80", lab.ip("web", "bridge")));
    assert_eq!(ev["Container"], "web");
    let _ = conns.kill();
    let _ = conns.wait();

    let err = lab.fails(&["monitor", "--reason", "gremlins"]);
    assert!(err.contains("gremlins"), "{err}");
}
