//! Real Docker on netd: a dockerd of the test's own (in the lab's host namespace, no
//! iptables) drives netd through its network and IPAM plugin, with real containers and real
//! traffic from the external client.

use std::time::Duration;

use integration_tests::{
    docker::{Dockerd, IMAGE, WEB},
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
        let _ = std::fs::remove_file(format!("/run/docker/plugins/{}.sock", self.plugin));
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
    let (low, high) = ephemeral_range(&d.lab);
    let port: u16 = random.parse().unwrap();
    assert!((low..=high).contains(&port), "{port} outside {low}-{high}");
    let who = get_from_outside(&d.lab, &format!("http://{UPLINK_IP}:{random}/cgi-bin/who"));
    assert_eq!(who, "10.99.0.2 app");

    // From a container of another network, through the host's address.
    d.network("other", &["--subnet", "192.168.101.0/24"]);
    let who = get_from_container(&d, "other", UPLINK_IP, "8080");
    assert!(who.ends_with(" app"), "{who}");

    // No rule and no proxy: the datapath did it all.
    assert_eq!(d.lab.rulesets(), rules_before);
    assert!(no_docker_proxy(), "a docker-proxy runs");
}

fn ephemeral_range(lab: &Lab) -> (u16, u16) {
    let range = lab.host(&["cat", "/proc/sys/net/ipv4/ip_local_port_range"]);
    let mut it = range.split_whitespace().map(|p| p.parse().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

fn no_docker_proxy() -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().all(|p| {
        std::fs::read_to_string(p.path().join("comm")).map_or(true, |c| c.trim() != "docker-proxy")
    })
}
