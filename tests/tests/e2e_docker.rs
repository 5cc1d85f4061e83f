//! Real Docker on netd: a dockerd of the test's own (in the lab's host namespace, no
//! iptables) drives netd through its network and IPAM plugin, with real containers and real
//! traffic from the external client.

use std::time::Duration;

use integration_tests::{
    docker::{plugin_call, Dockerd, IMAGE, WEB},
    privileged, unique, wait_until, Lab, UPLINK_IP,
};
use serde_json::Value;

struct DockerLab {
    docker: Option<Dockerd>,
    lab: Lab,
    plugin: String,
}

impl DockerLab {
    fn new() -> Self {
        let plugin = unique("netd-t");
        let lab = Lab::with_external_args(&["--docker-plugin", &plugin]);
        let docker = Some(Dockerd::start(&lab));
        Self {
            docker,
            lab,
            plugin,
        }
    }

    fn d(&self) -> &Dockerd {
        self.docker.as_ref().expect("dockerd")
    }

    /// `docker network create -d <netd> ...`, returning the network's id.
    fn network(&self, name: &str, args: &[&str]) -> String {
        let mut all = vec!["network", "create", "-d", &self.plugin];
        all.extend_from_slice(args);
        all.push(name);
        self.d().ok(&all)
    }

    /// A detached container serving [`WEB`] on port 80.
    fn web(&self, name: &str, args: &[&str]) {
        let mut all = vec!["run", "-d", "--name", name, "--hostname", name];
        all.extend_from_slice(args);
        all.extend_from_slice(&[IMAGE, "sh", "-c", WEB]);
        self.d().ok(&all);
    }

    /// The netd network Docker's network `name` is.
    fn netd_network(&self, name: &str) -> Value {
        let id = self.d().ok(&["network", "inspect", "-f", "{{.Id}}", name]);
        self.lab.json(&["network", "inspect", &id[..12]])[0].clone()
    }

    /// `docker exec C ping` of `ip`: whether one of 3 echo requests is answered.
    fn pings(&self, container: &str, ip: &str) -> bool {
        let out = self
            .d()
            .docker(&["exec", container, "ping", "-c", "3", "-W", "1", ip]);
        out.status.success()
    }

    fn ip(&self, container: &str, network: &str) -> String {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
        self.d().ok(&["inspect", "-f", &format, container])
    }
}

impl Drop for DockerLab {
    fn drop(&mut self) {
        // Docker removes its containers through the plugin: before the plugin goes.
        drop(self.docker.take());
    }
}

/// An HTTP GET from the external client, retried until it answers (bounded).
fn get_from_outside(lab: &Lab, url: &str) -> String {
    let mut body = String::new();
    let answered = wait_until(Duration::from_secs(20), || {
        let out = lab.external(&["curl", "-s", "-m", "2", url]);
        body = String::from_utf8_lossy(&out.stdout).trim().to_string();
        out.status.success() && !body.is_empty()
    });
    assert!(answered, "{url} did not answer from outside");
    body
}

/// A GET of `/cgi-bin/who` from inside a new container on `network`.
fn get_from_container(d: &DockerLab, network: &str, host: &str, port: &str) -> String {
    let script = format!(
        "for i in $(seq 20); do printf 'GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port} | tail -1 | grep . && exit 0; sleep 0.5; done; exit 1"
    );
    d.d().ok(&[
        "run",
        "--rm",
        "--network",
        network,
        IMAGE,
        "sh",
        "-c",
        &script,
    ])
}

#[test]
fn docker_run_p_on_a_netd_network_is_reached_from_outside_and_from_containers() {
    if !privileged("docker_run_p_on_a_netd_network_is_reached_from_outside_and_from_containers") {
        return;
    }
    let d = DockerLab::new();
    let rules_before = d.lab.rulesets();
    // The tutorial's network and container, as written.
    d.network(
        "mynet",
        &[
            "--subnet",
            "192.168.100.0/24",
            "--gateway",
            "192.168.100.254",
        ],
    );
    d.web(
        "app",
        &[
            "--network",
            "mynet",
            "--ip",
            "192.168.100.100",
            "-p",
            "8080:80",
            "-p",
            "80",
            "-p",
            &format!("{UPLINK_IP}:8081:80"),
        ],
    );
    assert_eq!(d.ip("app", "mynet"), "192.168.100.100");

    // From outside, the client's own address reaches the container.
    let who = get_from_outside(&d.lab, &format!("http://{UPLINK_IP}:8080/cgi-bin/who"));
    assert_eq!(who, "10.99.0.2 app");
    let who = get_from_outside(&d.lab, &format!("http://{UPLINK_IP}:8081/cgi-bin/who"));
    assert_eq!(who, "10.99.0.2 app");

    // netd knows the network and the container, with Docker's ids, and the random port.
    let net = d.netd_network("mynet");
    assert_eq!(net["Origin"]["Kind"], "docker");
    assert_eq!(net["IPAM"]["Config"][0]["Gateway"], "192.168.100.254");
    let ps = d.lab.json(&["ps", "--format", "json"]);
    let app = ps
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Origin"]["Kind"] == "docker")
        .unwrap_or_else(|| panic!("no docker container in {ps}"));
    assert_eq!(app["State"]["Status"], "running");
    let name = app["Name"].as_str().unwrap().to_string();
    let ports = d.lab.ok(&["port", &name]);
    let random = ports
        .lines()
        .find(|l| !l.contains(":8080") && !l.contains(":8081"))
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or_else(|| panic!("no random port in {ports}"))
        .to_string();
    let (low, high) = d.lab.ephemeral_range();
    let port: u16 = random.parse().unwrap();
    assert!((low..=high).contains(&port), "{port} outside {low}-{high}");
    let who = get_from_outside(&d.lab, &format!("http://{UPLINK_IP}:{random}/cgi-bin/who"));
    assert_eq!(who, "10.99.0.2 app");

    // The plugin reports the real bindings, random port resolved (Docker itself cannot show
    // a plugin's: see the README).
    let endpoint = d.d().ok(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"mynet\").EndpointID}}",
        "app",
    ]);
    let network = d.d().ok(&["network", "inspect", "-f", "{{.Id}}", "mynet"]);
    let ids = format!(r#"{{"NetworkID":"{network}","EndpointID":"{endpoint}"}}"#);
    let (_, info) = plugin_call(&d.plugin, "NetworkDriver.EndpointOperInfo", &ids);
    let mut host_ports: Vec<u64> = info["Value"]["com.docker.network.portmap"]
        .as_array()
        .unwrap_or_else(|| panic!("{info}"))
        .iter()
        .map(|b| b["HostPort"].as_u64().unwrap())
        .collect();
    host_ports.sort();
    assert_eq!(host_ports, [8080, 8081, u64::from(port)], "{info}");

    // From a container of another network, through the host's address.
    d.network("other", &["--subnet", "192.168.101.0/24"]);
    let who = get_from_container(&d, "other", UPLINK_IP, "8080");
    assert!(who.ends_with(" app"), "{who}");

    // No rule and no proxy: the datapath did it all.
    assert_eq!(d.lab.rulesets(), rules_before);
    assert!(no_docker_proxy(), "a docker-proxy runs");
}

fn no_docker_proxy() -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().all(|p| {
        std::fs::read_to_string(p.path().join("comm")).map_or(true, |c| c.trim() != "docker-proxy")
    })
}

#[test]
fn netd_ipam_gives_docker_its_pools_and_addresses() {
    if !privileged("netd_ipam_gives_docker_its_pools_and_addresses") {
        return;
    }
    let d = DockerLab::new();
    let ipam = ["--ipam-driver", d.plugin.as_str()];
    let mut args = ipam.to_vec();
    args.extend(["--subnet", "10.50.0.0/24", "--ip-range", "10.50.0.128/25"]);
    d.network("ranged", &args);
    d.network("picked", &ipam);
    let inspect = |name: &str| {
        d.d()
            .ok(&["network", "inspect", "-f", "{{json .IPAM}}", name])
    };
    let picked: Value = serde_json::from_str(&inspect("picked")).unwrap();
    assert_eq!(picked["Driver"], d.plugin.as_str());
    let subnet = picked["Config"][0]["Subnet"].as_str().unwrap().to_string();
    assert!(
        subnet.ends_with("/16") || subnet.ends_with("/20"),
        "a default pool: {subnet}"
    );

    for (name, extra) in [("r1", vec![]), ("r2", vec!["--ip", "10.50.0.77"])] {
        let mut all = vec!["run", "-d", "--name", name, "--network", "ranged"];
        all.extend(extra);
        all.extend([IMAGE, "sleep", "1000"]);
        d.d().ok(&all);
    }
    assert_eq!(
        d.ip("r1", "ranged"),
        "10.50.0.128",
        "from the range, lowest first"
    );
    assert_eq!(d.ip("r2", "ranged"), "10.50.0.77");
    assert!(d.pings("r1", "10.50.0.77"));
    // netd's own containers share the pool: they get neither address.
    let net = d.netd_network("ranged");
    let netd_name = net["Name"].as_str().unwrap().to_string();
    d.lab.ok(&[
        "run",
        "-d",
        "--name",
        "own",
        "--network",
        &netd_name,
        "--",
        "sleep",
        "1000",
    ]);
    assert_eq!(d.lab.ip("own", &netd_name), "10.50.0.129");
    let err = d.lab.fails(&[
        "create",
        "--name",
        "own2",
        "--network",
        &netd_name,
        "--ip",
        "10.50.0.77",
    ]);
    assert!(err.contains("10.50.0.77"), "{err}");
    assert!(
        d.pings("r1", "10.50.0.129"),
        "Docker's and netd's containers are one network"
    );
    d.lab.ok(&["rm", "-f", "own"]);

    // Gone with the containers and networks: addresses, pools, bridges.
    let bridges_before = d
        .lab
        .host_links()
        .iter()
        .filter(|l| l.starts_with("nd-"))
        .count();
    d.d().ok(&["rm", "-f", "r1", "r2"]);
    d.d().ok(&[
        "run",
        "-d",
        "--name",
        "r3",
        "--network",
        "ranged",
        "--ip",
        "10.50.0.77",
        IMAGE,
        "sleep",
        "1000",
    ]);
    d.d().ok(&["rm", "-f", "r3"]);
    d.d().ok(&["network", "rm", "ranged", "picked"]);
    let pools = std::fs::read_to_string(d.lab.state_dir().join("ipam-pools.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&pools).unwrap(),
        serde_json::json!([])
    );
    let bridges = d
        .lab
        .host_links()
        .iter()
        .filter(|l| l.starts_with("nd-"))
        .count();
    assert_eq!(bridges, bridges_before - 2);
}

#[test]
fn docker_networks_are_isolated_and_connect_disconnect_live() {
    if !privileged("docker_networks_are_isolated_and_connect_disconnect_live") {
        return;
    }
    let d = DockerLab::new();
    d.network("a", &["--subnet", "10.61.0.0/24"]);
    d.network("b", &["--subnet", "10.62.0.0/24"]);
    d.network("quiet", &["--subnet", "10.63.0.0/24", "-o", "icc=false"]);
    let sleeper = |name: &str, args: &[&str]| {
        let mut all = vec!["run", "-d", "--name", name];
        all.extend_from_slice(args);
        all.extend([IMAGE, "sleep", "1000"]);
        d.d().ok(&all);
    };
    sleeper("a1", &["--network", "a", "--cap-add", "NET_ADMIN"]);
    sleeper("b1", &["--network", "b"]);
    sleeper("q1", &["--network", "quiet"]);
    sleeper("q2", &["--network", "quiet"]);
    let (a1, b1) = (d.ip("a1", "a"), d.ip("b1", "b"));
    assert!(
        d.pings("a1", "10.61.0.1"),
        "the gateway answers (the probe works)"
    );
    assert!(!d.pings("a1", &b1), "a reaches b");
    assert!(!d.pings("b1", &a1), "b reaches a");

    d.d().ok(&["network", "connect", "b", "a1"]);
    assert!(d.pings("a1", &b1), "connected, a1 reaches b1");
    assert!(d.pings("b1", &d.ip("a1", "b")));
    d.d().ok(&["network", "disconnect", "b", "a1"]);
    assert!(!d.pings("a1", &b1), "disconnected, a1 still reaches b1");

    assert!(d.pings("q1", "10.63.0.1"));
    assert!(
        !d.pings("q1", &d.ip("q2", "quiet")),
        "icc=false members talk"
    );

    // Anti-spoofing: a source address that is not the endpoint's is dropped.
    d.d().ok(&[
        "exec",
        "a1",
        "ip",
        "addr",
        "add",
        "10.61.0.200/24",
        "dev",
        "eth0",
    ]);
    let spoofed = d.d().docker(&[
        "exec",
        "a1",
        "ping",
        "-c",
        "2",
        "-W",
        "1",
        "-I",
        "10.61.0.200",
        "10.61.0.1",
    ]);
    assert!(!spoofed.status.success(), "a spoofed source got through");
    let drops = d.netd_network("a")["Drops"].clone();
    let spoof_drops = drops
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["Reason"] == "spoofed_ip")
        .map(|r| r["Packets"].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert!(
        spoof_drops >= 2,
        "spoofed echo requests not counted: {drops}"
    );
}

#[test]
fn restarts_keep_docker_containers_and_docker_rm_leaves_nothing() {
    if !privileged("restarts_keep_docker_containers_and_docker_rm_leaves_nothing") {
        return;
    }
    let mut d = DockerLab::new();
    let links_before = d.lab.host_links();
    let ports_before = d.lab.published_entries();
    d.network("mynet", &["--subnet", "10.64.0.0/24"]);
    d.web(
        "app",
        &["--network", "mynet", "--ip", "10.64.0.10", "-p", "8080:80"],
    );
    let url = format!("http://{UPLINK_IP}:8080/cgi-bin/who");
    assert_eq!(get_from_outside(&d.lab, &url), "10.99.0.2 app");

    // netd crashes: the datapath goes on serving without it, and it takes up where it was.
    d.lab.kill_daemon();
    assert_eq!(get_from_outside(&d.lab, &url), "10.99.0.2 app");
    d.lab.start_daemon();
    assert_eq!(get_from_outside(&d.lab, &url), "10.99.0.2 app");
    d.web("app2", &["--network", "mynet", "-p", "8082:80"]);
    let url2 = format!("http://{UPLINK_IP}:8082/cgi-bin/who");
    assert_eq!(get_from_outside(&d.lab, &url2), "10.99.0.2 app2");

    // dockerd restarts with live restore: its containers keep their network.
    d.docker.as_mut().unwrap().restart();
    assert_eq!(get_from_outside(&d.lab, &url), "10.99.0.2 app");
    assert!(d.pings("app2", "10.64.0.10"));

    d.d().ok(&["rm", "-f", "app", "app2"]);
    let ps = d.lab.json(&["ps", "--format", "json"]);
    assert_eq!(ps, serde_json::json!([]), "netd still has containers");
    assert_eq!(d.lab.published_entries(), ports_before);
    // The address is free again.
    d.d().ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--network",
        "mynet",
        "--ip",
        "10.64.0.10",
        IMAGE,
        "sleep",
        "100",
    ]);
    d.d().ok(&["rm", "-f", "again"]);
    d.d().ok(&["network", "rm", "mynet"]);
    assert_eq!(d.lab.host_links(), links_before, "links left behind");
    let nets = d.lab.json(&["network", "ls", "--format", "json"]);
    assert_eq!(
        nets.as_array().unwrap().len(),
        3,
        "only the predefined networks: {nets}"
    );
}

#[test]
fn docker_dns_aliases_and_netd_vips_balance_across_containers() {
    if !privileged("docker_dns_aliases_and_netd_vips_balance_across_containers") {
        return;
    }
    let d = DockerLab::new();
    d.network("svc", &["--subnet", "10.65.0.0/24", "-o", "alias-mode=vip"]);
    for name in ["s1", "s2"] {
        d.web(
            name,
            &[
                "--network",
                "name=svc,driver-opt=netd.aliases=web",
                "--network-alias",
                "search",
            ],
        );
    }
    for name in ["s1", "s2"] {
        let who = get_from_container(&d, "svc", &d.ip(name, "svc"), "80");
        assert!(who.ends_with(name), "{who}");
    }
    // Docker's own DNS: both members under the network alias.
    let found = d.d().ok(&[
        "run",
        "--rm",
        "--network",
        "svc",
        IMAGE,
        "nslookup",
        "search",
    ]);
    for name in ["s1", "s2"] {
        assert!(
            found.contains(&d.ip(name, "svc")),
            "{name} missing from {found}"
        );
    }
    // netd's VIP alias, resolved through Docker's DNS (which asks netd's), balanced by the
    // datapath in turns.
    let alias = d.lab.json(&["alias", "ls", "--format", "json"]);
    let vip = alias[0]["VIP"]
        .as_str()
        .unwrap_or_else(|| panic!("{alias}"))
        .to_string();
    // A records only: the order of busybox's A and AAAA answers varies.
    let script = "nslookup -type=a web; echo ---; for i in 1 2 3 4; do printf 'GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n' | nc -w 2 web 80 | tail -1; done";
    let out = d.d().ok(&[
        "run",
        "--rm",
        "--network",
        "svc",
        "--dns",
        "10.65.0.1",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    let (lookup, gets) = out.split_once("---").unwrap_or_else(|| panic!("{out}"));
    assert!(
        lookup.contains(&format!("Address: {vip}")),
        "web did not resolve to {vip}: {out}"
    );
    let hosts: Vec<&str> = gets
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|h| h.starts_with('s'))
        .collect();
    assert_eq!(hosts.len(), 4, "{out}");
    assert!(
        hosts.windows(2).all(|w| w[0] != w[1]),
        "not in turns: {hosts:?}"
    );
}

#[test]
fn plugin_calls_with_bad_fields_get_the_protocols_error_and_leave_nothing() {
    if !privileged("plugin_calls_with_bad_fields_get_the_protocols_error_and_leave_nothing") {
        return;
    }
    let plugin = unique("netd-t");
    let lab = Lab::with_external_args(&["--docker-plugin", &plugin]);
    let state = || {
        (
            lab.json(&["network", "ls", "--format", "json"]),
            lab.json(&["ps", "--format", "json"]),
            lab.host_links(),
        )
    };
    let before = state();
    let (status, ok) = plugin_call(&plugin, "Plugin.Activate", "");
    assert_eq!(
        (status, ok["Implements"].clone()),
        (200, serde_json::json!(["NetworkDriver", "IpamDriver"]))
    );
    let net = "ab".repeat(32);
    let good = format!(
        r#"{{"NetworkID":"{net}","IPv4Data":[{{"AddressSpace":"LocalDefault","Pool":"10.66.0.0/24","Gateway":"10.66.0.1/24"}}]}}"#
    );
    assert_eq!(
        plugin_call(&plugin, "NetworkDriver.CreateNetwork", &good),
        (200, serde_json::json!({}))
    );
    let endpoint = |ep: &str, addr: &str| {
        format!(r#"{{"NetworkID":"{net}","EndpointID":"{ep}","Interface":{{"Address":"{addr}"}}}}"#)
    };
    let ep = "cd".repeat(32);
    let (_, made) = plugin_call(
        &plugin,
        "NetworkDriver.CreateEndpoint",
        &endpoint(&ep, "10.66.0.5/24"),
    );
    assert_eq!(
        made["Interface"]["MacAddress"], "02:42:0a:42:00:05",
        "{made}"
    );
    let cases = [
        ("NetworkDriver.CreateNetwork", "{}".to_string(), "NetworkID"),
        (
            "NetworkDriver.CreateNetwork",
            good.replace("10.66.0.0/24", "10.67.0.0/33"),
            "IPv4Data.Pool",
        ),
        (
            "NetworkDriver.CreateNetwork",
            good.replace("ab", "ef").replace(
                r#""IPv4Data""#,
                r#""IPv6Data":[{"Pool":"fd00::/64"}],"IPv4Data""#,
            ),
            "IPv6",
        ),
        (
            "NetworkDriver.CreateNetwork",
            good.replace("ab", "ef")
                .replace("10.66.0", "10.68.0")
                .replace(
                    r#""IPv4Data""#,
                    r#""Options":{"com.docker.network.generic":{"colour":"blue"}},"IPv4Data""#,
                ),
            "colour",
        ),
        (
            "NetworkDriver.CreateEndpoint",
            endpoint(&ep, "10.66.0.5/24").replace(&net, &"ef".repeat(32)),
            "not a netd network",
        ),
        (
            "NetworkDriver.CreateEndpoint",
            endpoint(&"11".repeat(32), "10.66.0.999/24"),
            "Interface.Address",
        ),
        (
            "NetworkDriver.CreateEndpoint",
            endpoint(&"11".repeat(32), "10.69.0.5/24"),
            "10.69.0.5",
        ),
        (
            "NetworkDriver.CreateEndpoint",
            endpoint(&"11".repeat(32), "10.66.0.5/24"),
            "10.66.0.5",
        ),
        (
            "NetworkDriver.Join",
            format!(r#"{{"NetworkID":"{net}","EndpointID":"{ep}"}}"#),
            "SandboxKey",
        ),
        (
            "NetworkDriver.ProgramExternalConnectivity",
            format!(
                r#"{{"NetworkID":"{net}","EndpointID":"{ep}","Options":{{"com.docker.network.portmap":[{{"Proto":132,"Port":80,"HostPort":80}}]}}}}"#
            ),
            "portmap.Proto",
        ),
        (
            "NetworkDriver.EndpointOperInfo",
            format!(r#"{{"NetworkID":"{net}"}}"#),
            "EndpointID",
        ),
        (
            "IpamDriver.RequestPool",
            r#"{"AddressSpace":"netd","V6":true}"#.into(),
            "V6",
        ),
        (
            "IpamDriver.RequestPool",
            r#"{"AddressSpace":"other"}"#.into(),
            "AddressSpace",
        ),
        (
            "IpamDriver.RequestPool",
            r#"{"AddressSpace":"netd","Pool":"10.66.0.0/16"}"#.into(),
            "10.66.0.0/24",
        ),
        (
            "IpamDriver.RequestAddress",
            r#"{"PoolID":"10.200.0.0/24"}"#.into(),
            "10.200.0.0/24",
        ),
        (
            "IpamDriver.ReleaseAddress",
            r#"{"PoolID":"10.200.0.0/24"}"#.into(),
            "Address",
        ),
    ];
    for (method, body, named) in &cases {
        let key = if method.starts_with("Ipam") {
            "Error"
        } else {
            "Err"
        };
        let (status, answer) = plugin_call(&plugin, method, body);
        let why = answer[key]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {body}: {status} {answer}"));
        assert_eq!(status, 200, "{method}: {answer}");
        assert!(
            why.contains(named),
            "{method} {body}: {why:?} does not name {named}"
        );
    }
    let (status, answer) = plugin_call(&plugin, "NetworkDriver.CreateNetwork", "{");
    assert_eq!(status, 400, "{answer}");
    assert!(answer["Err"]
        .as_str()
        .unwrap()
        .contains("invalid request body"));
    assert_eq!(plugin_call(&plugin, "NetworkDriver.Bogus", "{}").0, 404);
    // The refused bindings left the endpoint's ports as they were.
    let (_, info) = plugin_call(
        &plugin,
        "NetworkDriver.EndpointOperInfo",
        &format!(r#"{{"NetworkID":"{net}","EndpointID":"{ep}"}}"#),
    );
    assert_eq!(
        info["Value"]["com.docker.network.portmap"],
        serde_json::json!([]),
        "{info}"
    );

    // Removals are idempotent, and leave what was there before.
    let ids = format!(r#"{{"NetworkID":"{net}","EndpointID":"{ep}"}}"#);
    for _ in 0..2 {
        assert_eq!(plugin_call(&plugin, "NetworkDriver.Leave", &ids).0, 200);
        assert_eq!(
            plugin_call(&plugin, "NetworkDriver.DeleteEndpoint", &ids),
            (200, serde_json::json!({}))
        );
    }
    for _ in 0..2 {
        let del = format!(r#"{{"NetworkID":"{net}"}}"#);
        assert_eq!(
            plugin_call(&plugin, "NetworkDriver.DeleteNetwork", &del),
            (200, serde_json::json!({}))
        );
    }
    assert_eq!(state(), before);
    assert!(
        !lab.state_dir().join("ipam-pools.json").exists(),
        "a refused pool was written"
    );
}

/// A second daemon, in a namespace of its own, started with `args`: its exit status and
/// what it printed. Nothing of it is left.
fn second_daemon(args: &[&str]) -> (bool, String) {
    let ns = unique("nd2");
    let dir = tempfile::tempdir().unwrap();
    let bpffs = format!("/sys/fs/bpf/netd-{ns}");
    for args in [
        vec!["netns", "add", &ns],
        vec!["-n", &ns, "link", "set", "lo", "up"],
    ] {
        let status = std::process::Command::new("ip")
            .args(&args)
            .status()
            .unwrap();
        assert!(status.success(), "ip {args:?}");
    }
    let out = std::process::Command::new(integration_tests::netd_bin())
        .arg("--socket")
        .arg(dir.path().join("netd.sock"))
        .args([
            "daemon",
            "--netns",
            &ns,
            "--metrics-addr",
            "none",
            "--bpffs",
            &bpffs,
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .args(args)
        .output()
        .unwrap();
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &ns])
        .status();
    let _ = std::fs::remove_dir_all(&bpffs);
    assert!(
        !dir.path().join("netd.sock").exists(),
        "the refused daemon left its API socket"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_plugin_name_is_checked_and_never_taken_from_a_live_daemon() {
    if !privileged("a_plugin_name_is_checked_and_never_taken_from_a_live_daemon") {
        return;
    }
    let plugin = unique("netd-t");
    let lab = Lab::with_external_args(&["--docker-plugin", &plugin]);
    let (ok, err) = second_daemon(&["--docker-plugin", &plugin]);
    assert!(
        !ok && err.contains(&format!("/run/docker/plugins/{plugin}.sock")),
        "{err}"
    );
    assert!(err.contains("--docker-plugin"), "{err}");
    // The first daemon's plugin still answers.
    assert_eq!(
        plugin_call(&plugin, "NetworkDriver.GetCapabilities", "").0,
        200
    );
    let (ok, err) = second_daemon(&["--docker-plugin", "../evil"]);
    assert!(!ok && err.contains("\"../evil\""), "{err}");
    drop(lab);
}
