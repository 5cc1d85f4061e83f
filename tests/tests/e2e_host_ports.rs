//! Tier 3: a published host port belongs to its container, and the host's own sockets keep
//! theirs: published ports are reserved from the kernel's ephemeral picks
//! (`net.ipv4.ip_local_reserved_ports`), and a host socket bound to a published port's
//! number still gets its replies.

use std::{process::Child, time::Duration};

use integration_tests::{
    child::spawn_in_namespace, peer_script, privileged, reach_script, wait_until, Lab, EXTERNAL_IP,
};

/// An echo server on the external client, stopped on drop.
struct Echo(Child);

impl Echo {
    fn start(lab: &Lab) -> Self {
        let ext = lab.external.clone().expect("an external namespace");
        let child = spawn_in_namespace(
            &ext,
            &["python3", &peer_script(), "udp-echo", "9053", "120"],
        );
        let listening = wait_until(Duration::from_secs(20), || {
            !lab.external(&["ss", "-Huln", "sport = :9053"])
                .stdout
                .is_empty()
        });
        assert!(listening, "the external echo server listens");
        Self(child)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A container taking UDP on `spec`'s container port, answering nothing.
fn sink(lab: &Lab, name: &str, spec: &str, port: &str) {
    lab.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "-p",
        spec,
        "--",
        "python3",
        &reach_script(),
        "sink",
        port,
        "120",
    ]);
    lab.wait_listening(name, "udp", port.parse().unwrap());
}

fn reserved(lab: &Lab) -> String {
    lab.host(&["cat", "/proc/sys/net/ipv4/ip_local_reserved_ports"])
        .trim()
        .to_string()
}

#[test]
fn a_host_socket_bound_to_a_published_ports_number_gets_its_replies() {
    if !privileged("a_host_socket_bound_to_a_published_ports_number_gets_its_replies") {
        return;
    }
    let lab = Lab::with_external();
    let _echo = Echo::start(&lab);
    sink(&lab, "dns", "5353:53/udp", "53");
    let reply = lab.host(&[
        "timeout",
        "30",
        "python3",
        &peer_script(),
        "udp-from",
        "5353",
        EXTERNAL_IP,
        "9053",
    ]);
    assert!(
        reply.trim().ends_with(" query"),
        "the host socket's reply: {reply:?}"
    );
}

#[test]
fn host_ephemeral_ports_never_take_a_published_port() {
    if !privileged("host_ephemeral_ports_never_take_a_published_port") {
        return;
    }
    let lab = Lab::with_external();
    let _echo = Echo::start(&lab);
    let before = reserved(&lab);
    // A range in the middle of the kernel's ephemeral ports.
    sink(&lab, "many", "40000-40999:40000-40999/udp", "40000");
    assert!(reserved(&lab).contains("40000-40999"), "{}", reserved(&lab));
    let out = lab.host(&[
        "timeout",
        "120",
        "python3",
        &peer_script(),
        "udp-many",
        EXTERNAL_IP,
        "9053",
        "10000",
        "40000",
        "40999",
    ]);
    assert_eq!(out.trim(), "replies=10000 in_range=0");
    lab.ok(&["rm", "-f", "many"]);
    assert_eq!(reserved(&lab), before, "unpublished, unreserved");
}
