//! Tier 3: UDP datagrams bigger than the MTU, fragmented by their sender, through a published
//! port (from the external client to a container and back) and through masquerade (from a
//! container to the external client and back).

use std::time::Duration;

use integration_tests::{
    child::{output_of, spawn_in_namespace},
    peer_script, privileged, wait_until, Lab, EXTERNAL_IP, UPLINK_IP,
};

const BYTES: &str = "4000";

#[test]
fn a_4k_datagram_reaches_a_published_port_and_its_echo_comes_back_whole() {
    if !privileged("a_4k_datagram_reaches_a_published_port_and_its_echo_comes_back_whole") {
        return;
    }
    let lab = Lab::with_external();
    let script = peer_script();
    lab.ok(&[
        "run",
        "-d",
        "--name",
        "echo",
        "-p",
        "5353:53/udp",
        "--",
        "python3",
        &script,
        "udp-echo",
        "53",
        "120",
    ]);
    lab.wait_listening("echo", "udp", 53);
    let out = lab.external(&[
        "timeout", "30", "python3", &script, "udp-big", UPLINK_IP, "5353", BYTES,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    // The container saw the client's own address, and all of its bytes came back.
    assert!(
        text.trim().starts_with(&format!("{EXTERNAL_IP}:"))
            && text.trim().ends_with(&format!(" {BYTES}")),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_4k_datagram_leaves_a_container_masqueraded_and_its_echo_comes_back_whole() {
    if !privileged("a_4k_datagram_leaves_a_container_masqueraded_and_its_echo_comes_back_whole") {
        return;
    }
    let lab = Lab::with_external();
    let script = peer_script();
    let ext = lab.external.clone().expect("an external namespace");
    let echo = spawn_in_namespace(&ext, &["python3", &script, "udp-echo", "9053", "60"]);
    let listening = wait_until(Duration::from_secs(20), || {
        let out = lab.external(&["ss", "-Huln", "sport = :9053"]);
        !out.stdout.is_empty()
    });
    assert!(listening, "the external echo server listens");
    lab.run_d("client", &[]);
    let out = lab.exec(
        "client",
        &[
            "timeout",
            "30",
            "python3",
            &script,
            "udp-big",
            EXTERNAL_IP,
            "9053",
            BYTES,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // The server saw the uplink's address, never the container's.
    assert!(
        text.trim().starts_with(&format!("{UPLINK_IP}:"))
            && text.trim().ends_with(&format!(" {BYTES}")),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut echo = echo;
    let _ = echo.kill();
    let _ = output_of(echo);
}
