//! Real podman (CNI mode) on netd through netd-cni: published ports, names and aliases in
//! netd's DNS, isolation between networks, and `podman rm` releasing everything. One test:
//! podman's CNI cache is shared by the machine's podman processes.

use std::time::Duration;

use integration_tests::{
    docker::{IMAGE, WEB},
    podman::{self, Podman},
    privileged, wait_until, Lab, UPLINK_IP,
};

#[test]
fn podman_containers_run_on_netd_through_cni() {
    if !privileged("podman_containers_run_on_netd_through_cni") {
        return;
    }
    let lab = Lab::with_external();
    let rules_before = lab.rulesets();
    let ports_before = lab.published_entries();
    let p = Podman::new(
        &lab,
        &[("podnet", "10.74.0.0/24"), ("othernet", "10.75.0.0/24")],
    );
    p.run(&[
        "-d",
        "--name",
        "web1",
        "--hostname",
        "web1",
        "--network",
        "podnet",
        "--ip",
        "10.74.0.50",
        "-p",
        "8080:80",
        "--network-alias",
        "search",
        IMAGE,
        "sh",
        "-c",
        WEB,
    ]);
    assert_eq!(podman::ip(&p, "web1", "podnet"), "10.74.0.50");

    // Reached from outside through the published port, with the client's address.
    let url = format!("http://{UPLINK_IP}:8080/cgi-bin/who");
    let mut who = String::new();
    let answered = wait_until(Duration::from_secs(20), || {
        let out = lab.external(&["curl", "-s", "-m", "2", &url]);
        who = String::from_utf8_lossy(&out.stdout).trim().to_string();
        !who.is_empty()
    });
    assert!(answered && who == "10.99.0.2 web1", "{url}: {who:?}");

    // netd has it under podman's name, with its origin, alias and port.
    let c = lab.inspect("web1");
    assert_eq!(c["Origin"]["Kind"], "cni");
    assert_eq!(
        c["NetworkSettings"]["Networks"]["podnet"]["Aliases"][0],
        "search"
    );
    assert!(lab.ok(&["port", "web1"]).contains("0.0.0.0:8080"));

    // Names and aliases resolve in netd's DNS, which podman gives its containers.
    let found = p.run(&[
        "--rm",
        "--network",
        "podnet",
        IMAGE,
        "sh",
        "-c",
        "cat /etc/resolv.conf; nslookup search; nslookup web1",
    ]);
    assert!(found.contains("nameserver 10.74.0.1"), "{found}");
    assert_eq!(found.matches("Address: 10.74.0.50").count(), 2, "{found}");

    // Another netd network is isolated from it; its own gateway answers.
    p.run(&[
        "-d",
        "--name",
        "o1",
        "--network",
        "othernet",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let ping = |target: &str| {
        p.podman(&["exec", "o1", "ping", "-c", "3", "-W", "1", target])
            .status
            .success()
    };
    assert!(ping("10.75.0.1"), "the gateway answers (the probe works)");
    assert!(!ping("10.74.0.50"), "othernet reaches podnet");

    // podman rm releases everything: containers, ports, addresses, rules untouched.
    p.ok(&["rm", "-f", "-t", "0", "web1", "o1"]);
    assert_eq!(lab.json(&["ps", "--format", "json"]), serde_json::json!([]));
    assert_eq!(lab.published_entries(), ports_before);
    p.run(&[
        "-d",
        "--name",
        "again",
        "--network",
        "podnet",
        "--ip",
        "10.74.0.50",
        IMAGE,
        "sleep",
        "100",
    ]);
    p.ok(&["rm", "-f", "-t", "0", "again"]);
    assert_eq!(lab.rulesets(), rules_before);
}
