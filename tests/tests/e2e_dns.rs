//! Tier 3: the embedded DNS with real clients (dig, the C library's resolver): names scoped to
//! networks, PTR, aliases in round robin, forwarding to an upstream the test runs, internal
//! networks, and hostile queries.

use std::process::{Child, Command, Stdio};

use integration_tests::{dns_script, privileged, Lab, DNS_UPSTREAM_PORT};

/// `dig +short` from a container, over UDP or TCP.
fn dig(lab: &Lab, from: &str, args: &[&str]) -> String {
    let mut cmd = vec!["dig", "+short", "+time=2", "+tries=1"];
    cmd.extend_from_slice(args);
    String::from_utf8_lossy(&lab.exec(from, &cmd).stdout)
        .trim()
        .to_string()
}

/// The resolver of the test, in the lab's host namespace; stopped on drop.
struct Upstream(Child);

impl Upstream {
    fn start(lab: &Lab) -> Self {
        let upstream = Self::spawn(lab, "upstream");
        lab.wait_host_listening("udp", DNS_UPSTREAM_PORT);
        upstream
    }

    /// One that takes every query and never answers (it says when it listens).
    fn silent(lab: &Lab) -> Self {
        let mut upstream = Self::spawn(lab, "silent");
        integration_tests::child::wait_ready(&mut upstream.0);
        upstream
    }

    fn spawn(lab: &Lab, mode: &str) -> Self {
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.netns, "python3", &dns_script(), mode])
            .arg(DNS_UPSTREAM_PORT.to_string())
            .arg("120")
            .stdout(Stdio::piped())
            .spawn()
            .expect("upstream resolver");
        Self(child)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn names_resolve_on_their_networks_only() {
    if !privileged("names_resolve_on_their_networks_only") {
        return;
    }
    let lab = Lab::new();
    let _upstream = Upstream::start(&lab);
    lab.ok(&["network", "create", "--subnet", "10.71.0.0/24", "n1"]);
    lab.ok(&["network", "create", "--subnet", "10.72.0.0/24", "n2"]);
    lab.run_d(
        "web",
        &["--network", "n1", "--alias", "api", "--hostname", "webhost"],
    );
    lab.run_d("db", &["--network", "n2"]);
    lab.run_d("client", &["--network", "n1"]);
    lab.run_d("legacy", &[]);
    let web = lab.ip("web", "n1");

    let resolv = lab.exec_ok("client", &["cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.71.0.1"), "{resolv}");
    for name in ["web", "api", "webhost", "web.n1", "WEB"] {
        assert_eq!(dig(&lab, "client", &[name]), web, "{name}");
    }
    assert_eq!(dig(&lab, "client", &["+tcp", "web"]), web, "over TCP");
    // The C library's resolver, as programs use it.
    let getent = lab.exec_ok("client", &["getent", "hosts", "web"]);
    assert!(getent.starts_with(&web), "{getent}");
    assert_eq!(dig(&lab, "client", &["-x", &web]), "web.n1.");
    assert_eq!(dig(&lab, "client", &["db"]), "", "db is on n2");
    assert_eq!(
        dig(&lab, "client", &["outside.test"]),
        "192.0.2.53",
        "forwarded upstream"
    );
    // The default bridge has no names, as in Docker.
    assert!(!lab
        .exec("legacy", &["getent", "hosts", "web"])
        .status
        .success());

    // Connected to n2, the client resolves db too; disconnected, no more.
    lab.ok(&["network", "connect", "n2", "client"]);
    assert_eq!(dig(&lab, "client", &["db"]), lab.ip("db", "n2"));
    lab.ok(&["network", "disconnect", "n2", "client"]);
    assert_eq!(dig(&lab, "client", &["db"]), "");
    // A removed container's name goes with it.
    lab.ok(&["rm", "-f", "web"]);
    assert_eq!(dig(&lab, "client", &["web"]), "");
}

#[test]
fn a_shared_alias_answers_every_address_in_turn() {
    if !privileged("a_shared_alias_answers_every_address_in_turn") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&["network", "create", "--subnet", "10.73.0.0/24", "n"]);
    for name in ["b1", "b2", "b3"] {
        lab.run_d(name, &["--network", "n", "--alias", "svc"]);
    }
    lab.run_d("client", &["--network", "n"]);
    let mut all: Vec<String> = ["b1", "b2", "b3"].iter().map(|b| lab.ip(b, "n")).collect();
    all.sort();
    let mut firsts = Vec::new();
    for _ in 0..3 {
        let answer = dig(&lab, "client", &["svc"]);
        let mut got: Vec<String> = answer.lines().map(String::from).collect();
        firsts.push(got[0].clone());
        got.sort();
        assert_eq!(got, all, "every backend, every time");
    }
    firsts.sort();
    assert_eq!(firsts, all, "each one first in turn");
}

#[test]
fn internal_networks_resolve_members_but_nothing_outside() {
    if !privileged("internal_networks_resolve_members_but_nothing_outside") {
        return;
    }
    let lab = Lab::new();
    let upstream = Upstream::start(&lab);
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        "10.74.0.0/24",
        "--internal",
        "sealed",
    ]);
    lab.run_d("a", &["--network", "sealed"]);
    lab.run_d("b", &["--network", "sealed"]);
    assert_eq!(dig(&lab, "a", &["b"]), lab.ip("b", "sealed"));
    let out = lab.exec("a", &["dig", "+time=2", "+tries=1", "outside.test"]);
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("REFUSED"), "{out}");
    drop(upstream);
}

/// CPU seconds the daemon has used, from /proc.
fn daemon_cpu(lab: &Lab) -> f64 {
    let pid = lab.daemon_pid();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn malformed_and_truncated_queries_get_an_error_or_nothing() {
    if !privileged("malformed_and_truncated_queries_get_an_error_or_nothing") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&["network", "create", "--subnet", "10.75.0.0/24", "n"]);
    lab.run_d("web", &["--network", "n"]);
    lab.run_d("client", &["--network", "n"]);
    let script = dns_script();
    let garbage = lab.exec_ok("client", &["python3", &script, "garbage", "10.75.0.1"]);
    for line in garbage.lines() {
        assert!(
            line == "no reply" || line == "reply rcode=1",
            "only FORMERR or silence: {garbage}"
        );
    }
    for _ in 0..5 {
        lab.exec_ok("client", &["python3", &script, "half-tcp", "10.75.0.1"]);
    }
    // The server still answers, over both transports, and no task spins.
    let before = daemon_cpu(&lab);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let spent = daemon_cpu(&lab) - before;
    assert!(spent < 0.5, "the daemon used {spent} s of CPU while idle");
    assert_eq!(dig(&lab, "client", &["web"]), lab.ip("web", "n"));
    assert_eq!(dig(&lab, "client", &["+tcp", "web"]), lab.ip("web", "n"));
}

#[test]
fn legacy_links_on_the_default_bridge_write_hosts_entries() {
    if !privileged("legacy_links_on_the_default_bridge_write_hosts_entries") {
        return;
    }
    let lab = Lab::new();
    lab.run_d("db", &[]);
    lab.run_d("app", &["--link", "db:database"]);
    let db = lab.ip("db", "bridge");
    let hosts = lab.exec_ok("app", &["cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{db}\tdatabase db\n")), "{hosts}");
    let getent = lab.exec_ok("app", &["getent", "hosts", "database"]);
    assert!(getent.starts_with(&db), "{getent}");

    lab.ok(&["network", "create", "--subnet", "10.76.0.0/24", "n"]);
    let err = lab.fails(&[
        "run",
        "-d",
        "--name",
        "x",
        "--network",
        "n",
        "--link",
        "db",
        "--",
        "sleep",
        "1",
    ]);
    assert!(
        err.contains("--link db") && err.contains("default bridge"),
        "{err}"
    );
    let err = lab.fails(&[
        "run", "-d", "--name", "x", "--link", "nope", "--", "sleep", "1",
    ]);
    assert!(err.contains("nope"), "{err}");
    let err = lab.fails(&[
        "run", "-d", "--name", "x", "--link", ":alias", "--", "sleep", "1",
    ]);
    assert!(err.contains(":alias"), "{err}");
    assert_eq!(
        lab.json(&["ps", "--format", "json"])
            .as_array()
            .unwrap()
            .len(),
        2,
        "nothing left"
    );
}

#[test]
fn a_gateways_dns_answers_its_containers_and_not_the_uplink() {
    if !privileged("a_gateways_dns_answers_its_containers_and_not_the_uplink") {
        return;
    }
    let lab = Lab::with_external();
    lab.ok(&["network", "create", "--subnet", "10.73.0.0/24", "nat1"]);
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        "10.74.0.0/24",
        "-o",
        "gateway-mode=routed",
        "routed1",
    ]);
    // Not "a": dig takes it for a record type.
    lab.run_d("alpha", &["--network", "nat1"]);
    lab.run_d("beta", &["--network", "routed1"]);
    for (network, gateway, member) in [
        ("nat1", "10.73.0.1", "alpha"),
        ("routed1", "10.74.0.1", "beta"),
    ] {
        let server = format!("@{gateway}");
        let ip = lab.ip(member, network);
        for transport in ["+notcp", "+tcp"] {
            assert_eq!(
                dig(&lab, member, &[&server, transport, member]),
                ip,
                "{member} resolves through its gateway ({transport})"
            );
            // A LAN neighbour routes to the gateway address through the host's uplink.
            let out = lab.external(&[
                "dig", "+short", "+time=1", "+tries=1", &server, transport, member,
            ]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                !out.status.success() && !text.contains(&ip),
                "the uplink got an answer from {gateway} ({transport}): {text}"
            );
        }
    }
}

/// The daemon's resident memory, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// Bound of the daemon's memory under a flood of forwards (debug build).
const FLOOD_RSS_MIB: u64 = 120;

#[test]
fn a_flood_of_unknown_names_keeps_memory_bounded_and_names_answering() {
    if !privileged("a_flood_of_unknown_names_keeps_memory_bounded_and_names_answering") {
        return;
    }
    let lab = Lab::new();
    // An upstream that never answers: each forward waits its timeout.
    let silent = Upstream::silent(&lab);
    lab.ok(&["network", "create", "--subnet", "10.78.0.0/24", "fl"]);
    lab.run_d("web", &["--network", "fl"]);
    lab.run_d("flooder", &["--network", "fl"]);
    let web = lab.ip("web", "fl");
    let pid = lab.daemon_pid();
    let mut flood = integration_tests::child::spawn_exec(
        &lab,
        "flooder",
        &["python3", &dns_script(), "flood", "10.78.0.1", "20000"],
    );
    let mut peak = rss_mib(pid);
    let mut answered = 0;
    loop {
        peak = peak.max(rss_mib(pid));
        // The network's names answer while the forwards wait.
        if dig(&lab, "web", &["@10.78.0.1", "web"]) == web {
            answered += 1;
        }
        if flood.try_wait().unwrap().is_some() {
            break;
        }
    }
    assert!(integration_tests::child::output_of(flood).contains("sent 20000"));
    // The forwards in flight time out over the next seconds; the names keep answering.
    for _ in 0..10 {
        peak = peak.max(rss_mib(pid));
        assert_eq!(dig(&lab, "web", &["@10.78.0.1", "web"]), web);
    }
    drop(silent);
    println!("daemon RSS peak under the flood: {peak} MiB; names answered during it: {answered}");
    assert!(peak < FLOOD_RSS_MIB, "RSS peaked at {peak} MiB");
}

/// TCP connections a network's DNS server holds at once (`dns::tcp::MAX_TCP_CONNECTIONS`).
const DNS_TCP_CONNECTIONS: &str = "64";

#[test]
fn a_networks_dns_holds_a_bounded_number_of_tcp_connections() {
    if !privileged("a_networks_dns_holds_a_bounded_number_of_tcp_connections") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&["network", "create", "--subnet", "10.79.0.0/24", "tc"]);
    lab.run_d("web", &["--network", "tc"]);
    lab.run_d("holder", &["--network", "tc"]);
    let web = lab.ip("web", "tc");
    // 64 connections answered, 8 more closed unanswered, and the 64 still answer.
    let out = lab.exec(
        "holder",
        &[
            "python3",
            &dns_script(),
            "tcp-hold",
            "10.79.0.1",
            DNS_TCP_CONNECTIONS,
            "8",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        format!("held {DNS_TCP_CONNECTIONS} refused 8 answered {DNS_TCP_CONNECTIONS}"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dig(&lab, "web", &["@10.79.0.1", "+notcp", "web"]), web);
    // The held connections are closed now: TCP answers again once the server has seen it.
    let tcp_again = integration_tests::wait_until(std::time::Duration::from_secs(10), || {
        dig(&lab, "web", &["@10.79.0.1", "+tcp", "web"]) == web
    });
    assert!(tcp_again, "a TCP query after the held connections closed");
    let scrape = lab.host(&["curl", "-sf", "http://127.0.0.1:9640/metrics"]);
    let refused: f64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("netd_dns_tcp_refused_total{network=\"tc\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0);
    assert_eq!(refused, 8.0, "refused connections counted");
}
