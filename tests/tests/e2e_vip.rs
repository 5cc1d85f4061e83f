//! Tier 3: virtual-IP aliases with real clients: DNS answers the VIP, round robin over
//! backends from containers (TCP and UDP) and from the host, Maglev keeping the connections of
//! the backends that stay, an established connection surviving a new backend, and backends
//! leaving on stop and disconnect.

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
};

use integration_tests::{netd_bin, privileged, vip_script, Lab};
use serde_json::Value;

const PORT: &str = "8080";

/// A backend: `vip.py serve` answering its own name, carrying `alias` on `network`.
fn backend(lab: &Lab, name: &str, network: &str, alias: &str) {
    let script = vip_script();
    lab.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        "--alias",
        alias,
        "--",
        "python3",
        &script,
        "serve",
        PORT,
        "300",
        name,
    ]);
}

/// The alias as `netd alias inspect` shows it.
fn alias(lab: &Lab, network: &str, name: &str) -> Value {
    lab.json(&["alias", "inspect", "--network", network, name])
}

fn vip_of(lab: &Lab, network: &str, name: &str) -> String {
    alias(lab, network, name)["VIP"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs `vip.py ARGS` in `container` (or in the host namespace) and parses its JSON.
fn client(lab: &Lab, container: Option<&str>, args: &[&str]) -> Value {
    let script = vip_script();
    let mut cmd = vec!["python3", script.as_str()];
    cmd.extend_from_slice(args);
    let out = match container {
        Some(c) => lab.exec_ok(c, &cmd),
        None => lab.host(&cmd),
    };
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// How many answers each name gave.
fn tally<'a>(names: impl IntoIterator<Item = &'a Value>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for n in names {
        *counts.entry(n.as_str().unwrap().to_string()).or_default() += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

/// Waits until every backend answers on its port, so that no connection meets a server
/// still starting.
fn wait_for_servers(lab: &Lab, from: &str, network: &str, backends: &[&str]) {
    for b in backends {
        let ip = lab.ip(b, network);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let out = lab.exec(from, &["python3", &vip_script(), "connect", &ip, PORT, "1"]);
            if String::from_utf8_lossy(&out.stdout).contains(b) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "backend {b} never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

#[test]
fn round_robin_spreads_new_connections_evenly_from_containers_and_the_host() {
    if !privileged("round_robin_spreads_new_connections_evenly_from_containers_and_the_host") {
        return;
    }
    let lab = Lab::new();
    let rules = lab.rulesets();
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        "10.81.0.0/24",
        "--alias-mode",
        "vip",
        "svc",
    ]);
    lab.ok(&["network", "create", "--subnet", "10.82.0.0/24", "other"]);
    for b in ["b1", "b2", "b3"] {
        backend(&lab, b, "svc", "web");
    }
    lab.run_d("cli", &["--network", "svc"]);
    lab.run_d("outsider", &["--network", "other"]);
    wait_for_servers(&lab, "cli", "svc", &["b1", "b2", "b3"]);

    let vip = vip_of(&lab, "svc", "web");
    let dig = lab.exec_ok("cli", &["dig", "+short", "+time=2", "web"]);
    assert_eq!(dig.trim(), vip, "DNS answers the VIP alone");
    assert!(vip.starts_with("10.81.0."), "{vip} comes from the subnet");

    let answers = client(&lab, Some("cli"), &["connect", &vip, PORT, "300"]);
    let by_backend = tally(answers.as_object().unwrap().values());
    assert_eq!(by_backend, counts(&[("b1", 100), ("b2", 100), ("b3", 100)]));
    let shown: BTreeMap<String, u64> = alias(&lab, "svc", "web")["Backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["Container"].as_str().unwrap().into(),
                b["Connections"].as_u64().unwrap(),
            )
        })
        .collect();
    let wanted: BTreeMap<String, u64> = ["b1", "b2", "b3"]
        .iter()
        .map(|b| (b.to_string(), 100))
        .collect();
    assert_eq!(
        shown, wanted,
        "alias inspect counts connections per backend"
    );

    let udp = client(&lab, Some("cli"), &["udp", &vip, PORT, "30"]);
    assert_eq!(
        tally(udp.as_array().unwrap()),
        counts(&[("b1", 10), ("b2", 10), ("b3", 10)]),
        "UDP flows too"
    );
    let host = client(&lab, None, &["connect", &vip, PORT, "30"]);
    assert_eq!(
        tally(host.as_object().unwrap().values()),
        counts(&[("b1", 10), ("b2", 10), ("b3", 10)]),
        "host processes go through the socket hooks"
    );
    let host_udp = client(&lab, None, &["udp", &vip, PORT, "6"]);
    assert_eq!(
        tally(host_udp.as_array().unwrap()).values().sum::<usize>(),
        6,
        "{host_udp}"
    );

    // Another network reaches neither the name nor the VIP.
    let out = lab.exec("outsider", &["dig", "+short", "+time=2", "web"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
    let tried = client(&lab, Some("outsider"), &["connect", &vip, PORT, "1"]);
    assert!(tried["0"].as_str().unwrap().starts_with("error"), "{tried}");

    let ls = lab.ok(&["alias", "ls"]);
    assert!(
        ls.contains("web") && ls.contains(&vip) && ls.contains("roundrobin"),
        "{ls}"
    );
    assert_eq!(lab.rulesets(), rules, "no iptables or nftables rule");
}

#[test]
fn maglev_keeps_the_connections_of_the_backends_that_stay() {
    if !privileged("maglev_keeps_the_connections_of_the_backends_that_stay") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        "10.83.0.0/24",
        "--alias-mode",
        "vip",
        "--alias-lb",
        "maglev",
        "svc",
    ]);
    let five = ["b1", "b2", "b3", "b4", "b5"];
    for b in five {
        backend(&lab, b, "svc", "db");
    }
    lab.run_d("cli", &["--network", "svc"]);
    wait_for_servers(&lab, "cli", "svc", &five);
    let vip = vip_of(&lab, "svc", "db");
    assert_eq!(alias(&lab, "svc", "db")["LB"], "maglev");

    let before = client(&lab, Some("cli"), &["connect", &vip, PORT, "200", "30000"]);
    let before = before.as_object().unwrap();
    assert_eq!(
        tally(before.values()).len(),
        5,
        "all five serve: {before:?}"
    );

    lab.ok(&["stop", "-t", "1", "b3"]);
    let after = client(&lab, Some("cli"), &["connect", &vip, PORT, "200", "30000"]);
    let after = after.as_object().unwrap();
    let mut moved = 0;
    for (port, was) in before {
        let now = &after[port];
        if was == "b3" {
            assert_ne!(now, "b3", "port {port} still went to the stopped backend");
            assert!(
                !now.as_str().unwrap().starts_with("error"),
                "port {port}: {now}"
            );
            moved += 1;
        } else {
            assert_eq!(
                now, was,
                "port {port} of a backend that stayed was re-mapped"
            );
        }
    }
    assert!(moved > 0, "some connections were b3's");
}

#[test]
fn established_connections_survive_a_new_backend_and_leaving_backends_get_none() {
    if !privileged("established_connections_survive_a_new_backend_and_leaving_backends_get_none") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&["network", "create", "--subnet", "10.84.0.0/24", "app"]);
    let vip = lab.ok(&[
        "alias",
        "create",
        "--network",
        "app",
        "--ip",
        "10.84.0.250",
        "api",
    ]);
    assert_eq!(vip.trim(), "10.84.0.250");
    backend(&lab, "b1", "app", "api");
    backend(&lab, "b2", "app", "api");
    lab.run_d("cli", &["--network", "app"]);
    wait_for_servers(&lab, "cli", "app", &["b1", "b2"]);

    // One connection held open from before b3 joins until b3 serves (the file says when).
    let joined = lab.dir.path().join("b3-serves");
    let held = Command::new(netd_bin())
        .env("NETD_SOCKET", lab.socket())
        .args(["exec", "cli", "--", "python3", &vip_script(), "hold"])
        .args(["10.84.0.250", PORT, "60"])
        .arg(&joined)
        .stdout(Stdio::piped())
        .spawn()
        .expect("holding client");
    lab.wait_established("cli", PORT.parse().unwrap());
    backend(&lab, "b3", "app", "api");
    wait_for_servers(&lab, "cli", "app", &["b3"]);
    std::fs::write(&joined, "").unwrap();
    let out = held.wait_with_output().unwrap();
    assert!(out.status.success(), "the held connection ended early");
    let names: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(names.len() > 1, "{names:?}");
    assert_eq!(
        tally(&names).len(),
        1,
        "one backend for the whole connection: {names:?}"
    );
    let first = tally(
        client(&lab, Some("cli"), &["connect", "10.84.0.250", PORT, "30"])
            .as_object()
            .unwrap()
            .values(),
    );
    assert_eq!(first.len(), 3, "the new backend takes its turn: {first:?}");

    // Stopped: no new connections; disconnected: none either; connected: back in.
    lab.ok(&["stop", "-t", "1", "b1"]);
    let stopped = client(&lab, Some("cli"), &["connect", "10.84.0.250", PORT, "20"]);
    assert_eq!(
        tally(stopped.as_object().unwrap().values()),
        counts(&[("b2", 10), ("b3", 10)])
    );
    lab.ok(&["network", "disconnect", "app", "b2"]);
    let one = client(&lab, Some("cli"), &["connect", "10.84.0.250", PORT, "10"]);
    assert_eq!(
        tally(one.as_object().unwrap().values()),
        counts(&[("b3", 10)])
    );
    lab.ok(&["network", "connect", "--alias", "api", "app", "b2"]);
    let two = client(&lab, Some("cli"), &["connect", "10.84.0.250", PORT, "10"]);
    assert_eq!(
        tally(two.as_object().unwrap().values()),
        counts(&[("b2", 5), ("b3", 5)])
    );
    let backends = alias(&lab, "app", "api")["Backends"].clone();
    assert_eq!(backends.as_array().unwrap().len(), 2, "{backends}");

    // An explicit alias outlives its backends and is released by `alias rm`.
    for c in ["b1", "b2", "b3"] {
        lab.ok(&["rm", "-f", c]);
    }
    assert_eq!(vip_of(&lab, "app", "api"), "10.84.0.250");
    lab.ok(&["alias", "rm", "--network", "app", "api"]);
    let err = lab.fails(&["alias", "inspect", "--network", "app", "api"]);
    assert!(err.contains("api"), "{err}");
    let err = lab.fails(&[
        "alias",
        "create",
        "--network",
        "app",
        "--lb",
        "fastest",
        "x",
    ]);
    assert!(err.contains("fastest"), "{err}");
}
