//! Tier 3: macvlan networks on a LAN of the test's own, as in Docker's tutorial: a "LAN"
//! namespace with a bridge, a router at .1 and a LAN host at .10, and two servers node01 and
//! node02 (each a lab with its own daemon) whose `eth0` sits on that LAN.

use std::{
    collections::BTreeMap,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{privileged, reach_script, Lab};

const PORT: &str = "7000";
const ROUTER: &str = "192.168.0.1";
const LAN_HOST: &str = "192.168.0.10";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The LAN: a bridge in a namespace of `owner`'s, with a router and a LAN host on it.
struct Lan {
    ns: String,
    router: String,
    host: String,
    servers: Vec<Child>,
}

impl Lan {
    fn new(owner: &mut Lab) -> Self {
        let ns = owner.add_namespace("nlan");
        ip(&["-n", &ns, "link", "add", "lan0", "type", "bridge"]);
        ip(&["-n", &ns, "link", "set", "lan0", "up"]);
        let mut lan = Self {
            router: owner.add_namespace("nrtr"),
            host: owner.add_namespace("nlh"),
            ns,
            servers: Vec::new(),
        };
        for (ns, addr, port) in [
            (lan.router.clone(), "192.168.0.1/24", "l-router"),
            (lan.host.clone(), "192.168.0.10/24", "l-host"),
        ] {
            lan.wire(&ns, addr, port);
            let server = Command::new("ip")
                .args(["netns", "exec", &ns, "python3", &reach_script()])
                .args(["serve", PORT, "120"])
                .stdout(Stdio::null())
                .spawn()
                .expect("a LAN server");
            lan.servers.push(server);
        }
        lan
    }

    /// Gives namespace `ns` an `eth0` with `addr` on the LAN, through bridge port `port`.
    fn wire(&self, ns: &str, addr: &str, port: &str) {
        let lan = self.ns.as_str();
        let peer = format!("{port}p");
        ip(&[
            "-n", lan, "link", "add", port, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["-n", lan, "link", "set", port, "master", "lan0", "up"]);
        ip(&["-n", lan, "link", "set", &peer, "netns", ns, "name", "eth0"]);
        ip(&["-n", ns, "addr", "add", addr, "dev", "eth0"]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

/// A lab with an `eth0` on the LAN at `addr`, through LAN port `port`.
fn node(lan: &Lan, addr: &str, port: &str) -> Lab {
    let lab = Lab::new();
    lan.wire(&lab.netns, addr, port);
    lab
}

/// node01, with the LAN in namespaces of its lab, its `eth0` on it at .50.
fn first_node() -> (Lab, Lan) {
    let mut node01 = Lab::new();
    let lan = Lan::new(&mut node01);
    lan.wire(&node01.netns, "192.168.0.50/24", "l-node01");
    (node01, lan)
}

fn in_netns(ns: &str, cmd: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .expect("ip netns exec")
}

fn targets(to: &[&str]) -> Vec<String> {
    to.iter()
        .flat_map(|ip| {
            [
                format!("tcp:{ip}:{PORT}"),
                format!("udp:{ip}:{PORT}"),
                format!("icmp:{ip}"),
            ]
        })
        .collect()
}

/// One round of TCP, UDP and ping to each address; what answered.
fn probe(run: &dyn Fn(&[&str]) -> Output, to: &[&str]) -> BTreeMap<String, bool> {
    let script = reach_script();
    let targets = targets(to);
    let mut cmd = vec!["python3", script.as_str(), "probe", "1"];
    cmd.extend(targets.iter().map(String::as_str));
    String::from_utf8_lossy(&run(&cmd).stdout)
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(t, r)| (t.to_string(), r == "ok"))
        .collect()
}

/// Every protocol reaches each of `to`, within 20 s (the first probes may wait on ARP).
fn reaches(what: &str, run: &dyn Fn(&[&str]) -> Output, to: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = probe(run, to);
        if got.len() == to.len() * 3 && got.values().all(|ok| *ok) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {got:?}");
    }
}

/// No protocol reaches any of `to` (after `reaches` showed the path works otherwise).
fn reaches_none(what: &str, run: &dyn Fn(&[&str]) -> Output, to: &[&str]) {
    let got = probe(run, to);
    assert_eq!(got.len(), to.len() * 3, "{what}: {got:?}");
    assert!(got.values().all(|ok| !*ok), "{what}: {got:?}");
}

fn server(lab: &Lab, name: &str, network: &str) -> String {
    let script = reach_script();
    lab.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--hostname",
        name,
        "--network",
        network,
    ]
    .into_iter()
    .chain(["--", "python3", &script, "serve", PORT, "120"])
    .collect::<Vec<_>>());
    lab.wait_listening(name, "tcp", 7000);
    lab.wait_listening(name, "udp", 7000);
    lab.ip(name, network)
}

fn in_range(ip: &str, range_start: u8, len: u8) -> bool {
    let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
    ip.starts_with("192.168.0.") && (range_start..range_start + len).contains(&last)
}

fn macvlan_net(lab: &Lab, name: &str, range: &str, mode: &str) {
    macvlan_net_with(lab, name, range, mode, &[]);
}

fn macvlan_net_with(lab: &Lab, name: &str, range: &str, mode: &str, options: &[&str]) {
    let range = format!("--ip-range={range}");
    let mode = format!("macvlan_mode={mode}");
    let mut args = vec![
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet=192.168.0.0/24",
    ];
    args.extend_from_slice(&[
        &range,
        "--gateway=192.168.0.1",
        "-o",
        &mode,
        "-o",
        "parent=eth0",
    ]);
    for option in options {
        args.extend_from_slice(&["-o", option]);
    }
    args.push(name);
    lab.ok(&args);
}

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
fn a_restart_adopts_macvlan_endpoints_and_remakes_a_deleted_one() {
    if !privileged("a_restart_adopts_macvlan_endpoints_and_remakes_a_deleted_one") {
        return;
    }
    let (mut node01, _lan) = first_node();
    macvlan_net(&node01, "my_macvlan", "192.168.0.64/28", "bridge");
    let c1 = server(&node01, "c1", "my_macvlan");
    let from_c1 = |lab: &Lab, cmd: &[&str]| lab.exec("c1", cmd);
    reaches("c1 -> router", &|cmd| from_c1(&node01, cmd), &[ROUTER]);

    node01.kill_daemon();
    node01.start_daemon();
    reaches("after a SIGKILL", &|cmd| from_c1(&node01, cmd), &[ROUTER]);
    assert_eq!(node01.ip("c1", "my_macvlan"), c1);

    // Deleted behind the daemon's back: the next start puts it back, address and route.
    node01.exec_ok("c1", &["ip", "link", "del", "eth0"]);
    node01.kill_daemon();
    node01.start_daemon();
    reaches(
        "after eth0 was deleted",
        &|cmd| from_c1(&node01, cmd),
        &[ROUTER],
    );
    let addr = node01.exec_ok("c1", &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains(&format!("{c1}/24")), "{addr}");
    assert!(node01
        .daemon_log()
        .contains("re-plugging macvlan endpoint eth0"));
}

#[test]
fn bad_macvlan_input_is_named_and_leaves_nothing() {
    if !privileged("bad_macvlan_input_is_named_and_leaves_nothing") {
        return;
    }
    let (node01, _lan) = first_node();
    let links = node01.host_links();
    let networks = node01.ok(&["network", "ls"]);
    let create = |extra: &[&str]| {
        let mut args = vec!["network", "create", "--subnet=192.168.0.0/24"];
        args.extend_from_slice(extra);
        args.push("bad");
        node01.fails(&args)
    };
    for (extra, named) in [
        (&["-d", "macvlan", "-o", "parent=eth7"][..], "parent=eth7"),
        (
            &[
                "-d",
                "macvlan",
                "-o",
                "parent=eth0",
                "--ip-range=10.0.0.0/28",
            ],
            "10.0.0.0/28",
        ),
        (
            &[
                "-d",
                "macvlan",
                "-o",
                "parent=eth0",
                "-o",
                "macvlan_mode=loud",
            ],
            "macvlan_mode=loud",
        ),
        (
            &["-d", "macvlan", "-o", "parent=eth0", "-o", "icc=false"],
            "icc",
        ),
        (&["-d", "macvlan"], "parent"),
        (&["-d", "ipvlan", "-o", "parent=eth0"], "ipvlan"),
    ] {
        let e = create(extra);
        assert!(e.contains(named), "{extra:?}: {e}");
    }
    macvlan_net(&node01, "lan", "192.168.0.64/28", "bridge");
    let e = node01.fails(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "lan",
        "-p",
        "8080:80",
        "--",
        "sleep",
        "60",
    ]);
    assert!(e.contains("macvlan") && e.contains("-p"), "{e}");
    assert!(!node01.ok(&["ps"]).contains("web"));
    node01.ok(&["network", "rm", "lan"]);
    assert_eq!(node01.ok(&["network", "ls"]), networks);
    assert_eq!(node01.host_links(), links);
    assert_eq!(node01.namespaces(), 0);
}

#[test]
fn addresses_in_use_on_the_lan_are_refused_and_skipped() {
    if !privileged("addresses_in_use_on_the_lan_are_refused_and_skipped") {
        return;
    }
    let (node01, _lan) = first_node();
    // The LAN host at .10 answers ARP; .50 is node01's own.
    macvlan_net(&node01, "lan", "192.168.0.8/29", "bridge");
    let run = |name: &str, ip: Option<&str>| {
        let mut args = vec!["run", "-d", "--name", name, "--network", "lan"];
        if let Some(ip) = ip {
            args.extend_from_slice(&["--ip", ip]);
        }
        args.extend_from_slice(&["--", "sleep", "120"]);
        node01.netd(&args)
    };
    for (ip, owner) in [
        (LAN_HOST, "answering ARP on eth0"),
        ("192.168.0.50", "this host"),
    ] {
        let out = run("taken", Some(ip));
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && e.contains(ip) && e.contains(owner),
            "{ip}: {e}"
        );
    }
    assert!(!node01.ok(&["ps"]).contains("taken"));
    let mut given = Vec::new();
    for name in ["a", "b", "c"] {
        assert!(run(name, None).status.success(), "run {name}");
        given.push(node01.ip(name, "lan"));
    }
    assert!(!given.contains(&LAN_HOST.to_string()), "{given:?}");
    assert!(given.iter().all(|ip| in_range(ip, 8, 8)), "{given:?}");
    // Three from .8/29 reach .10 in any order of allocation: it was seen and skipped.
    let log = node01.daemon_log();
    assert!(
        log.contains("192.168.0.10 of network lan is in use"),
        "{log}"
    );
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

/// What `dig +short` from `container` answers, asked until it answers `want` or 20 s pass.
fn dig_until(lab: &Lab, container: &str, args: &[&str], want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut cmd = vec!["dig", "+short", "+time=2", "+tries=1"];
        cmd.extend_from_slice(args);
        let got = String::from_utf8_lossy(&lab.exec(container, &cmd).stdout)
            .trim()
            .to_string();
        if got == want || Instant::now() > deadline {
            return got;
        }
    }
}

#[test]
fn the_embedded_dns_answers_names_and_aliases_on_a_macvlan_network() {
    if !privileged("the_embedded_dns_answers_names_and_aliases_on_a_macvlan_network") {
        return;
    }
    let (mut node01, _lan) = first_node();
    macvlan_net(&node01, "my_macvlan", "192.168.0.64/28", "bridge");
    let script = reach_script();
    for (name, alias) in [("c1", "db"), ("c2", "web")] {
        node01.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "my_macvlan",
            "--alias",
            alias,
            "--",
            "python3",
            &script,
            "serve",
            PORT,
            "120",
        ]);
    }
    let c2 = node01.ip("c2", "my_macvlan");
    let resolv = node01.exec_ok("c1", &["cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    for name in ["c2", "web", "c2.my_macvlan", "web.my_macvlan"] {
        assert_eq!(dig_until(&node01, "c1", &[name], &c2), c2, "{name}");
    }
    assert_eq!(
        dig_until(&node01, "c1", &["+tcp", "c2"], &c2),
        c2,
        "over TCP"
    );

    // The servers come back with a restart, and a removed container's name goes.
    node01.kill_daemon();
    node01.start_daemon();
    assert_eq!(
        dig_until(&node01, "c1", &["web"], &c2),
        c2,
        "after a restart"
    );
    node01.ok(&["rm", "-f", "c2"]);
    assert_eq!(dig_until(&node01, "c1", &["c2"], ""), "", "a removed name");
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
