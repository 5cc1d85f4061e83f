//! A LAN of a test's own for the macvlan tiers, as in Docker's tutorial: a "LAN" namespace
//! with a bridge, a router at .1 and a LAN host at .10 (each answering TCP and UDP on
//! [`PORT`]), and servers (labs, each with its own daemon) whose `eth0` sits on it; with
//! reachability probes that wait, bounded, for what must work.

use std::{
    collections::BTreeMap,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::{reach_script, Lab};

pub const PORT: &str = "7000";
pub const ROUTER: &str = "192.168.0.1";
pub const LAN_HOST: &str = "192.168.0.10";

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The LAN: a bridge in a namespace of `owner`'s, with a router and a LAN host on it.
pub struct Lan {
    pub ns: String,
    pub router: String,
    pub host: String,
    servers: Vec<Child>,
}

impl Lan {
    pub fn new(owner: &mut Lab) -> Self {
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
    pub fn wire(&self, ns: &str, addr: &str, port: &str) {
        wire(&self.ns, "lan0", ns, addr, port);
    }
}

/// Gives namespace `ns` an `eth0` with `addr`, through port `port` of `bridge` in namespace
/// `switch`.
pub fn wire(switch: &str, bridge: &str, ns: &str, addr: &str, port: &str) {
    let peer = format!("{port}p");
    ip(&[
        "-n", switch, "link", "add", port, "type", "veth", "peer", "name", &peer,
    ]);
    ip(&["-n", switch, "link", "set", port, "master", bridge, "up"]);
    ip(&[
        "-n", switch, "link", "set", &peer, "netns", ns, "name", "eth0",
    ]);
    ip(&["-n", ns, "addr", "add", addr, "dev", "eth0"]);
    ip(&["-n", ns, "link", "set", "eth0", "up"]);
    ip(&["-n", ns, "link", "set", "lo", "up"]);
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
pub fn node(lan: &Lan, addr: &str, port: &str) -> Lab {
    let lab = Lab::new();
    lan.wire(&lab.netns, addr, port);
    lab
}

/// node01, with the LAN in namespaces of its lab, its `eth0` on it at .50.
pub fn first_node() -> (Lab, Lan) {
    let mut node01 = Lab::new();
    let lan = Lan::new(&mut node01);
    lan.wire(&node01.netns, "192.168.0.50/24", "l-node01");
    (node01, lan)
}

pub fn in_netns(ns: &str, cmd: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .expect("ip netns exec")
}

pub fn targets(to: &[&str]) -> Vec<String> {
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
pub fn probe(run: &dyn Fn(&[&str]) -> Output, to: &[&str]) -> BTreeMap<String, bool> {
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
pub fn reaches(what: &str, run: &dyn Fn(&[&str]) -> Output, to: &[&str]) {
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
pub fn reaches_none(what: &str, run: &dyn Fn(&[&str]) -> Output, to: &[&str]) {
    let got = probe(run, to);
    assert_eq!(got.len(), to.len() * 3, "{what}: {got:?}");
    assert!(got.values().all(|ok| !*ok), "{what}: {got:?}");
}

pub fn server(lab: &Lab, name: &str, network: &str) -> String {
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

pub fn in_range(ip: &str, range_start: u8, len: u8) -> bool {
    let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
    ip.starts_with("192.168.0.") && (range_start..range_start + len).contains(&last)
}

pub fn macvlan_net(lab: &Lab, name: &str, range: &str, mode: &str) {
    macvlan_net_with(lab, name, range, mode, &[]);
}

pub fn macvlan_net_with(lab: &Lab, name: &str, range: &str, mode: &str, options: &[&str]) {
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

/// What `dig +short` from `container` answers, asked until it answers `want` or 20 s pass.
pub fn dig_until(lab: &Lab, container: &str, args: &[&str], want: &str) -> String {
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
