//! Tier 3: conntrack under a flood. A daemon with an 8,192-entry table (and a 2,048-entry
//! pending one) holds three established TCP connections: from the external client through a
//! published port, from a container masqueraded to the external client, and from a container
//! to a VIP. While they sit idle for 60 s, the external client sends 2x the table's capacity
//! of new flows: UDP datagrams to a published UDP port, each from its own port, and spoofed
//! SYNs to the published TCP port, which the container answers and nobody acknowledges.

use std::{process::Child, time::Duration};

use integration_tests::{
    child::{output_of, spawn_exec, spawn_in_namespace, wait_ready},
    peer_script, privileged, wait_until, Lab, EXTERNAL_IP, UPLINK_IP,
};

const IDLE_SECS: &str = "60";
/// New flows: twice the table's entries.
const FLOOD: &str = "16384";

fn hold(mut child: Child) -> Child {
    wait_ready(&mut child);
    child
}

#[test]
fn answered_connections_outlive_a_flood_of_new_flows() {
    if !privileged("answered_connections_outlive_a_flood_of_new_flows") {
        return;
    }
    let lab = Lab::with_external_args(&["--conntrack-max", "8192"]);
    let script = peer_script();
    let ext = lab.external.clone().expect("an external namespace");
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        "10.83.0.0/24",
        "--alias-mode",
        "vip",
        "svc",
    ]);
    lab.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "svc",
        "--alias",
        "api",
        "-p",
        "8080:80",
        "-p",
        "5353:53/udp",
        "--",
        "python3",
        &script,
        "tcp-echo",
        "80",
        "300",
    ]);
    lab.wait_listening("web", "tcp", 80);
    lab.run_d("client", &["--network", "svc"]);
    let vip = lab.json(&["alias", "inspect", "--network", "svc", "api"])["VIP"]
        .as_str()
        .unwrap()
        .to_string();
    let echo = spawn_in_namespace(&ext, &["python3", &script, "tcp-echo", "9100", "300"]);
    let listening = wait_until(Duration::from_secs(20), || {
        !lab.external(&["ss", "-Htln", "sport = :9100"])
            .stdout
            .is_empty()
    });
    assert!(listening, "the external echo server listens");

    let held = [
        (
            "published",
            hold(spawn_in_namespace(
                &ext,
                &["python3", &script, "tcp-hold", UPLINK_IP, "8080", IDLE_SECS],
            )),
        ),
        (
            "masqueraded",
            hold(spawn_exec(
                &lab,
                "client",
                &[
                    "python3",
                    &script,
                    "tcp-hold",
                    EXTERNAL_IP,
                    "9100",
                    IDLE_SECS,
                ],
            )),
        ),
        (
            "vip",
            hold(spawn_exec(
                &lab,
                "client",
                &["python3", &script, "tcp-hold", &vip, "80", IDLE_SECS],
            )),
        ),
    ];
    for flood in ["udp-flood", "syn-flood"] {
        let port = if flood == "udp-flood" { "5353" } else { "8080" };
        let out = lab.external(&[
            "timeout", "50", "python3", &script, flood, UPLINK_IP, port, FLOOD,
        ]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("sent {FLOOD}")),
            "{flood}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let scrape = lab.host(&["curl", "-sf", "http://127.0.0.1:9640/metrics"]);
    let entries: Vec<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("netd_map_entries{map=\"NETD_CT"))
        .collect();
    println!("after the flood: {entries:?}");
    for (what, child) in held {
        assert_eq!(output_of(child).trim(), "ok", "{what}");
    }
    // New connections are still taken.
    let fresh = hold(spawn_in_namespace(
        &ext,
        &["python3", &script, "tcp-hold", UPLINK_IP, "8080", "0"],
    ));
    assert_eq!(output_of(fresh).trim(), "ok");
    let mut echo = echo;
    let _ = echo.kill();
    let _ = echo.wait();
}
