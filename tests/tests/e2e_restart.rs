//! Tier 3: restarts and upgrades under load. The daemon is SIGKILLed and started again ten
//! times while four flows run: a TCP stream through a published port, a masqueraded TCP
//! connection to the outside, a TCP connection to a VIP, and a UDP flow through a published
//! port. The datapath forwards on while no daemon runs; every flow must go on after each
//! restart, with no reset and no byte or datagram lost. The same holds across a restart that
//! resizes the conntrack tables, and across an upgrade to a build whose NETD_PORTS value grew
//! (and back).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use integration_tests::{peer_script, privileged, wait_until, Lab, EXTERNAL_IP, UPLINK_IP};

const RESTARTS: usize = 10;

/// One flow's client: the folder of its progress and stop files, and how to read its result.
struct Flow {
    name: &'static str,
    dir: PathBuf,
    client: Client,
}

enum Client {
    /// A process of the test in the external client's namespace.
    External(Child),
    /// A netd container: its output is in `netd logs`.
    Container(&'static str),
}

impl Flow {
    fn new(lab: &Lab, name: &'static str, client: impl FnOnce(&str) -> Client) -> Self {
        let dir = lab.dir.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let client = client(dir.to_str().unwrap());
        Flow { name, dir, client }
    }

    /// Bytes echoed (datagrams answered) so far.
    fn progress(&self) -> u64 {
        read_count(&self.dir.join("progress"))
    }

    /// Waits until the flow has moved past `at`.
    fn wait_past(&self, lab: &Lab, at: u64, after: &str) {
        let moved = wait_until(Duration::from_secs(30), || self.progress() > at);
        assert!(
            moved,
            "{} is stuck at {at} {after}:\n{}",
            self.name,
            lab.daemon_log()
        );
    }

    /// Stops the client and returns its last line.
    fn finish(self, lab: &Lab) -> String {
        std::fs::write(self.dir.join("stop"), b"").unwrap();
        let out = match self.client {
            Client::External(child) => {
                let out = child.wait_with_output().unwrap();
                assert!(out.status.success(), "{}: {out:?}", self.name);
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
            Client::Container(name) => {
                let done = wait_until(Duration::from_secs(20), || {
                    lab.inspect(name)["State"]["Running"] == false
                });
                assert!(done, "{} ended", self.name);
                lab.ok(&["logs", name])
            }
        };
        out.lines().last().unwrap_or_default().to_string()
    }
}

fn read_count(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `key=N` of a client's result line.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn peer_in_external(lab: &Lab, args: &[&str]) -> Child {
    let ext = lab.external.clone().unwrap();
    Command::new("ip")
        .args(["netns", "exec", &ext, "python3", &peer_script()])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn peer_container(lab: &Lab, name: &str, args: &[&str], peer: &[&str]) {
    let script = peer_script();
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--", "python3", &script]);
    all.extend_from_slice(peer);
    lab.ok(&all);
}

#[test]
fn ten_sigkills_under_load_lose_nothing() {
    if !privileged("ten_sigkills_under_load_lose_nothing") {
        return;
    }
    let mut lab = Lab::with_external();
    lab.ok(&["network", "create", "--subnet", "10.94.0.0/24", "load"]);
    let net = ["--network", "load"];

    // Servers: two published echoes, one echo outside, one VIP backend.
    let published_tcp = [&net[..], &["-p", "8095:80"]].concat();
    peer_container(&lab, "tcp-echo", &published_tcp, &["tcp-echo", "80", "110"]);
    let published_udp = [&net[..], &["-p", "8097:80/udp"]].concat();
    peer_container(&lab, "udp-echo", &published_udp, &["udp-echo", "80", "110"]);
    let outside = peer_in_external(&lab, &["tcp-echo", "9096", "110"]);
    let vip = lab.ok(&["alias", "create", "--network", "load", "svc"]);
    let vip = vip.trim().to_string();
    let backend = [&net[..], &["--alias", "svc"]].concat();
    peer_container(&lab, "backend", &backend, &["tcp-echo", "8098", "110"]);
    lab.wait_listening("tcp-echo", "tcp", 80);
    lab.wait_listening("udp-echo", "udp", 80);
    lab.wait_listening("backend", "tcp", 8098);

    // Clients.
    let flows = [
        Flow::new(&lab, "published", |dir| {
            Client::External(peer_in_external(
                &lab,
                &["tcp-stream", UPLINK_IP, "8095", dir],
            ))
        }),
        Flow::new(&lab, "masqueraded", |dir| {
            peer_container(
                &lab,
                "masq-client",
                &net,
                &["tcp-stream", EXTERNAL_IP, "9096", dir],
            );
            Client::Container("masq-client")
        }),
        Flow::new(&lab, "vip", |dir| {
            peer_container(&lab, "vip-client", &net, &["tcp-stream", &vip, "8098", dir]);
            Client::Container("vip-client")
        }),
        Flow::new(&lab, "udp", |dir| {
            Client::External(peer_in_external(
                &lab,
                &["udp-count", UPLINK_IP, "8097", dir],
            ))
        }),
    ];
    for flow in &flows {
        flow.wait_past(&lab, 0, "before the first kill");
    }

    for restart in 1..=RESTARTS {
        let at: Vec<u64> = flows.iter().map(Flow::progress).collect();
        lab.kill_daemon();
        // With no daemon, the datapath forwards on.
        for (flow, at) in flows.iter().zip(&at) {
            flow.wait_past(&lab, *at, &format!("with the daemon killed ({restart})"));
        }
        lab.start_daemon();
        let at: Vec<u64> = flows.iter().map(Flow::progress).collect();
        for (flow, at) in flows.iter().zip(&at) {
            flow.wait_past(&lab, *at, &format!("after restart {restart}"));
        }
    }

    let mut results = Vec::new();
    for flow in flows {
        let name = flow.name;
        results.push((name, flow.finish(&lab)));
    }
    for (name, line) in &results {
        match *name {
            "udp" => assert_eq!(
                field(line, "sent"),
                field(line, "replied"),
                "{name}: every datagram answered: {line}"
            ),
            _ => assert_eq!(
                field(line, "sent"),
                field(line, "echoed"),
                "{name}: every byte echoed, no reset: {line}"
            ),
        }
        println!("{name}: {line}");
    }
    drop(outside);
}

#[test]
fn a_conntrack_resize_keeps_the_connections() {
    if !privileged("a_conntrack_resize_keeps_the_connections") {
        return;
    }
    let mut lab = Lab::with_external();
    lab.ok(&["network", "create", "--subnet", "10.96.0.0/24", "resize"]);
    let net = ["--network", "resize"];
    let published_tcp = [&net[..], &["-p", "8099:80"]].concat();
    peer_container(&lab, "echo", &published_tcp, &["tcp-echo", "80", "110"]);
    let outside = peer_in_external(&lab, &["tcp-echo", "9097", "110"]);
    lab.wait_listening("echo", "tcp", 80);
    let flows = [
        Flow::new(&lab, "published", |dir| {
            Client::External(peer_in_external(
                &lab,
                &["tcp-stream", UPLINK_IP, "8099", dir],
            ))
        }),
        Flow::new(&lab, "masqueraded", |dir| {
            peer_container(
                &lab,
                "client",
                &net,
                &["tcp-stream", EXTERNAL_IP, "9097", dir],
            );
            Client::Container("client")
        }),
    ];
    for flow in &flows {
        flow.wait_past(&lab, 0, "before the resize");
    }
    // An upgrade that changes the tables' layout: their pins are made anew, entries moved.
    lab.stop_daemon();
    lab.daemon_args = vec!["--conntrack-max".into(), "65536".into()];
    lab.start_daemon();
    for flow in &flows {
        let at = flow.progress();
        flow.wait_past(&lab, at, "after the resize");
    }
    let log = lab.daemon_log();
    assert!(
        log.contains("pinned map NETD_CT is not this build's (entries 262144 -> 65536): made anew"),
        "{log}"
    );
    for flow in flows {
        let name = flow.name;
        let line = flow.finish(&lab);
        assert_eq!(
            field(&line, "sent"),
            field(&line, "echoed"),
            "{name}: every byte echoed, no reset: {line}"
        );
    }
    drop(outside);
}

#[test]
fn an_upgrade_that_grows_a_map_keeps_the_connections() {
    if !privileged("an_upgrade_that_grows_a_map_keeps_the_connections") {
        return;
    }
    let grown = integration_tests::grown_netd_bin();
    let mut lab = Lab::with_external();
    lab.ok(&["network", "create", "--subnet", "10.97.0.0/24", "upgrade"]);
    let published_tcp = ["--network", "upgrade", "-p", "8100:80"];
    peer_container(&lab, "echo", &published_tcp, &["tcp-echo", "80", "110"]);
    lab.wait_listening("echo", "tcp", 80);
    let flow = Flow::new(&lab, "published", |dir| {
        Client::External(peer_in_external(
            &lab,
            &["tcp-stream", UPLINK_IP, "8100", dir],
        ))
    });
    flow.wait_past(&lab, 0, "before the upgrade");

    // The next build appended a field to NETD_PORTS's value: its entries move into the new
    // map, and the connection (conntrack's, unchanged) goes on.
    lab.stop_daemon();
    lab.start_daemon_of(&grown);
    flow.wait_past(&lab, flow.progress(), "after the upgrade");
    let log = lab.daemon_log();
    assert!(
        log.contains("pinned map NETD_PORTS is not this build's (value size 8 -> 16): made anew, 1 entries moved into it"),
        "{log}"
    );
    assert_eq!(lab.published_entries(), 1);

    // Back to this build: the value shrinks, the map is reset and published again.
    lab.stop_daemon();
    lab.start_daemon();
    flow.wait_past(&lab, flow.progress(), "after the downgrade");
    assert!(
        lab.daemon_log().contains(
            "pinned map NETD_PORTS is not this build's (value size 16 -> 8): made anew, its entries are reset"
        ),
        "{}",
        lab.daemon_log()
    );
    assert_eq!(lab.published_entries(), 1, "published again by reconcile");
    let line = flow.finish(&lab);
    assert_eq!(
        field(&line, "sent"),
        field(&line, "echoed"),
        "every byte echoed, no reset: {line}"
    );
}
