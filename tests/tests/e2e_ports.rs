//! Tier 3: published ports, end to end. A throwaway host with an uplink to an external client
//! namespace; servers in containers; real TCP and UDP.

use std::{process::Output, time::Duration};

use integration_tests::{lines_of, peer_script, privileged, Lab, EXTERNAL_IP, UPLINK_IP};

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a server container with `args` (e.g. `-p 8080:80`) and `peer.py MODE PORT...`, and
/// waits until it listens.
fn server(lab: &Lab, name: &str, args: &[&str], peer: &[&str]) {
    let script = peer_script();
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--", "python3", &script]);
    all.extend_from_slice(peer);
    lab.ok(&all);
    let proto = if peer[0].starts_with("udp") {
        "udp"
    } else {
        "tcp"
    };
    lab.wait_listening(name, proto, peer[1].parse().expect("a port"));
}

fn client_external(lab: &Lab, mode: &str, host: &str, port: &str) -> Output {
    lab.external(&["timeout", "30", "python3", &peer_script(), mode, host, port])
}

fn client_in(lab: &Lab, container: &str, mode: &str, host: &str, port: &str) -> Output {
    lab.exec(
        container,
        &["timeout", "30", "python3", &peer_script(), mode, host, port],
    )
}

#[test]
fn external_clients_reach_a_published_port_with_their_own_address() {
    if !privileged("external_clients_reach_a_published_port_with_their_own_address") {
        return;
    }
    let lab = Lab::with_external();
    let before = lab.rulesets();
    server(&lab, "web", &["-p", "8080:80"], &["tcp-server", "80"]);
    let reply = text(&client_external(&lab, "tcp-client", UPLINK_IP, "8080"));
    assert!(
        reply.starts_with(&format!("peer={EXTERNAL_IP}:")),
        "the server sees the real client: {reply:?}"
    );
    let ports = &lab.inspect("web")["NetworkSettings"]["Ports"]["80/tcp"][0];
    assert_eq!(
        (ports["HostIp"].as_str(), ports["HostPort"].as_str()),
        (Some("0.0.0.0"), Some("8080"))
    );
    assert_eq!(lab.ok(&["port", "web"]).trim(), "80/tcp -> 0.0.0.0:8080");

    // Other containers reach it at the host address too, with their own address.
    lab.run_d("other", &[]);
    let other_ip = lab.ip("other", "bridge");
    let reply = text(&client_in(&lab, "other", "tcp-client", UPLINK_IP, "8080"));
    assert!(reply.starts_with(&format!("peer={other_ip}:")), "{reply:?}");
    // And the server reaches itself (hairpin), seen as coming from the host address.
    let reply = text(&client_in(&lab, "web", "tcp-client", UPLINK_IP, "8080"));
    assert!(
        reply.starts_with(&format!("peer={UPLINK_IP}:")),
        "{reply:?}"
    );

    // Processes of the host reach it at 127.0.0.1 and at the host's address, through the
    // socket hooks, and getpeername() shows what they connected to.
    let script = peer_script();
    for addr in ["127.0.0.1", UPLINK_IP] {
        let reply = lab.host(&[
            "timeout",
            "20",
            "python3",
            &script,
            "tcp-peername",
            addr,
            "8080",
        ]);
        assert!(
            reply.contains(&format!("peername={addr}:8080")),
            "{reply:?}"
        );
        assert!(
            reply.starts_with("peer=172.17.0.1:"),
            "the container sees the host's bridge address: {reply:?}"
        );
    }

    assert_eq!(
        lab.rulesets(),
        before,
        "netd installs no iptables or nftables rule"
    );
}

#[test]
fn udp_is_published_and_a_replaced_container_gets_the_flow() {
    if !privileged("udp_is_published_and_a_replaced_container_gets_the_flow") {
        return;
    }
    let lab = Lab::with_external();
    server(
        &lab,
        "dns",
        &["-p", "5353:53/udp"],
        &["udp-server", "53", "100000", "old"],
    );
    let reply = text(&client_external(&lab, "udp-client", UPLINK_IP, "5353"));
    assert!(reply.contains(&format!("peer={EXTERNAL_IP}:")), "{reply:?}");

    // One long-lived flow (one socket, one source port) while the container is replaced. A
    // conntrack entry left behind would keep it on the old address (given to `filler`, which
    // does not answer) for as long as the flow lasts, since every datagram refreshes it.
    let ext = lab.external.clone().unwrap();
    let mut stream = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ext,
            "timeout",
            "40",
            "python3",
            &peer_script(),
            "udp-stream",
            UPLINK_IP,
            "5353",
            "30",
            " new peer=",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(stream.stdout.take().unwrap());
    let first = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("no reply from the old container within 20 s");
    assert!(first.contains(" old peer="), "{first}");
    lab.ok(&["rm", "-f", "dns"]);
    lab.run_d("filler", &[]); // the old address goes to someone else
    server(
        &lab,
        "dns2",
        &["-p", "5353:53/udp"],
        &["udp-server", "53", "100000", "new"],
    );
    assert!(stream.wait().unwrap().success(), "the stream failed");
    // The reader ends at the end of the stream's output.
    let out: Vec<String> = lines.iter().collect();
    assert!(
        out.iter().any(|l| l.contains(" new peer=")),
        "the flow never reached the new container within 30 s:\n{first}\n{}",
        out.join("\n")
    );
}

#[test]
fn loopback_ports_random_ports_ranges_and_conflicts() {
    if !privileged("loopback_ports_random_ports_ranges_and_conflicts") {
        return;
    }
    let lab = Lab::with_external();
    server(
        &lab,
        "local",
        &["-p", "127.0.0.1:8081:80"],
        &["tcp-server", "80"],
    );
    let out = client_external(&lab, "tcp-client", UPLINK_IP, "8081");
    assert!(
        !out.status.success(),
        "a 127.0.0.1 port is not reachable from outside: {}",
        text(&out)
    );
    let local = lab.host(&[
        "timeout",
        "20",
        "python3",
        &peer_script(),
        "tcp-client",
        "127.0.0.1",
        "8081",
    ]);
    assert!(
        local.starts_with("peer="),
        "but it is from the host itself: {local:?}"
    );

    lab.ok(&[
        "run", "-d", "--name", "rand", "--expose", "80", "-P", "-p", "90", "--", "sleep", "600",
    ]);
    let c = lab.inspect("rand");
    let (lo, hi) = lab.ephemeral_range();
    for port in ["80/tcp", "90/tcp"] {
        let host_port: u16 = c["NetworkSettings"]["Ports"][port][0]["HostPort"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (lo..=hi).contains(&host_port),
            "{port} -> {host_port} outside {lo}-{hi}"
        );
    }

    lab.ok(&[
        "run",
        "-d",
        "--name",
        "ranged",
        "-p",
        "9000-9002:7000-7002/udp",
        "--",
        "sleep",
        "600",
    ]);
    let ports = lab.ok(&["port", "ranged"]);
    for (c, h) in [(7000, 9000), (7001, 9001), (7002, 9002)] {
        assert!(
            ports.contains(&format!("{c}/udp -> 0.0.0.0:{h}")),
            "{ports}"
        );
    }

    let err = lab.fails(&[
        "run", "-d", "--name", "dup", "-p", "8081:80", "--", "sleep", "1",
    ]);
    assert!(
        err.contains("8081") && err.contains("local"),
        "0.0.0.0 clashes with 127.0.0.1: {err}"
    );
    let err = lab.fails(&[
        "run",
        "-d",
        "--name",
        "dup",
        "-p",
        "9001:1/udp",
        "--",
        "sleep",
        "1",
    ]);
    assert!(err.contains("ranged"), "{err}");
    let err = lab.fails(&[
        "run", "-d", "--name", "dup", "-p", "0:80", "--", "sleep", "1",
    ]);
    assert!(err.contains("0:80"), "{err}");
    let err = lab.fails(&[
        "run", "-d", "--name", "dup", "-p", "70000:80", "--", "sleep", "1",
    ]);
    assert!(err.contains("70000"), "{err}");
    let err = lab.fails(&[
        "run", "-d", "--name", "dup", "-p", "1-2:3", "--", "sleep", "1",
    ]);
    assert!(err.contains("differ in length"), "{err}");
    let err = lab.fails(&[
        "run",
        "-d",
        "--name",
        "dup",
        "--network",
        "host",
        "-p",
        "80",
        "--",
        "sleep",
        "1",
    ]);
    assert!(err.contains("-p 80"), "{err}");
    lab.ok(&["network", "create", "--internal", "inside"]);
    let err = lab.fails(&[
        "run",
        "-d",
        "--name",
        "dup",
        "--network",
        "inside",
        "-p",
        "80",
        "--",
        "sleep",
        "1",
    ]);
    assert!(err.contains("internal"), "{err}");
    assert!(
        lab.fails(&["inspect", "dup"]).contains("not found"),
        "failed runs leave no container"
    );
    // A second container may use 127.0.0.2 where the first holds 127.0.0.1.
    lab.ok(&[
        "run",
        "-d",
        "--name",
        "local2",
        "-p",
        "127.0.0.2:8081:80",
        "--",
        "sleep",
        "600",
    ]);
}

#[test]
fn containers_reach_the_outside_from_the_uplink_address() {
    if !privileged("containers_reach_the_outside_from_the_uplink_address") {
        return;
    }
    let lab = Lab::with_external();
    let script = peer_script();
    let server = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.external.as_deref().unwrap(),
            "timeout",
            "30",
            "python3",
            &script,
            "tcp-server",
            "9000",
            "1",
        ])
        .spawn()
        .unwrap();
    lab.run_d("app", &[]);
    let reply = text(&client_in(&lab, "app", "tcp-client", EXTERNAL_IP, "9000"));
    let mut server = server;
    let _ = server.wait();
    assert!(
        reply.starts_with(&format!("peer={UPLINK_IP}:")),
        "masqueraded to the uplink: {reply:?}"
    );
    // Pings too: with no route back to the container subnet, the external host can only
    // answer the uplink's address.
    lab.external(&["ip", "route", "del", "default"]);
    assert!(
        lab.ping("app", EXTERNAL_IP),
        "ping from a container is masqueraded"
    );
}

#[test]
fn removing_the_container_removes_its_mapping() {
    if !privileged("removing_the_container_removes_its_mapping") {
        return;
    }
    let lab = Lab::with_external();
    server(&lab, "web", &["-p", "8080:80"], &["tcp-server", "80"]);
    assert!(client_external(&lab, "tcp-client", UPLINK_IP, "8080")
        .status
        .success());
    lab.ok(&["rm", "-f", "web"]);
    // Nothing of the mapping is left in the datapath...
    assert_eq!(lab.published_entries(), 0);
    // ... so the host itself answers: nothing listens there, a reset. A mapping left behind
    // would send the SYN to the container's old address, where nothing answers at all.
    let out = lab.external(&["timeout", "10", "python3", "-c", &format!(
        "import socket\ntry:\n  socket.create_connection(('{UPLINK_IP}', 8080), timeout=5); print('connected')\nexcept ConnectionRefusedError: print('refused')\nexcept OSError as e: print('failed', e)"
    )]);
    assert_eq!(text(&out), "refused");
}

#[test]
fn a_bulk_transfer_completes() {
    if !privileged("a_bulk_transfer_completes") {
        return;
    }
    let lab = Lab::with_external();
    let bytes = 8 * 1024 * 1024;
    server(
        &lab,
        "bulk",
        &["-p", "8090:80"],
        &["bulk-server", "80", &bytes.to_string()],
    );
    let out = lab.external(&[
        "timeout",
        "20",
        "python3",
        &peer_script(),
        "bulk-client",
        UPLINK_IP,
        "8090",
    ]);
    assert_eq!(
        text(&out),
        bytes.to_string(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_transfer_survives_a_daemon_crash() {
    if !privileged("a_transfer_survives_a_daemon_crash") {
        return;
    }
    let mut lab = Lab::with_external();
    let bytes = 8 * 1024 * 1024;
    server(
        &lab,
        "bulk",
        &["-p", "8090:80"],
        &["bulk-server", "80", &bytes.to_string()],
    );
    let ext = lab.external.clone().unwrap();
    let client = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ext,
            "timeout",
            "60",
            "python3",
            &peer_script(),
            "bulk-client",
            UPLINK_IP,
            "8090",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    lab.wait_established("bulk", 80);
    lab.kill_daemon();
    std::thread::sleep(Duration::from_millis(300));
    lab.start_daemon();
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        text(&out),
        bytes.to_string(),
        "every byte arrived, without a reset"
    );
}

#[test]
fn ports_published_on_a_running_container_are_reached_at_once() {
    if !privileged("ports_published_on_a_running_container_are_reached_at_once") {
        return;
    }
    let lab = Lab::with_external();
    server(&lab, "web", &[], &["tcp-server", "80"]);
    lab.run_d("other", &[]);
    let listed = lab.ok(&["port", "web", "-p", "8085:80", "-p", "127.0.0.1:8086:80"]);
    assert_eq!(
        listed.trim(),
        "80/tcp -> 0.0.0.0:8085\n80/tcp -> 127.0.0.1:8086"
    );
    let reply = text(&client_external(&lab, "tcp-client", UPLINK_IP, "8085"));
    assert!(
        reply.starts_with(&format!("peer={EXTERNAL_IP}:")),
        "{reply:?}"
    );
    // Another container's port that clashes is refused by name, and the list is all or none.
    let err = lab.fails(&["port", "other", "-p", "9000:90", "-p", "8085:80"]);
    assert!(err.contains("8085") && err.contains("web"), "{err}");
    assert_eq!(lab.ok(&["port", "other"]), "");
    let err = lab.fails(&["port", "other", "-p", "80:99999"]);
    assert!(err.contains("99999"), "{err}");
    // Ports that processes of the host hold, over IPv4 or dual-stack IPv6, are refused.
    let script = "import socket,sys,time\nfam=socket.AF_INET6 if sys.argv[1]=='6' else socket.AF_INET\ns=socket.socket(fam)\ns.bind(('::' if fam==socket.AF_INET6 else '0.0.0.0', int(sys.argv[2])))\ns.listen()\ntime.sleep(60)";
    let mut holders = Vec::new();
    for (family, port) in [("4", "8090"), ("6", "8091")] {
        let holder = std::process::Command::new("ip")
            .args([
                "netns", "exec", &lab.netns, "python3", "-c", script, family, port,
            ])
            .spawn()
            .unwrap();
        holders.push(holder);
        lab.wait_host_listening("tcp", port.parse().unwrap());
        let err = lab.fails(&["port", "other", "-p", &format!("{port}:80")]);
        assert!(
            err.contains("in use by a process on the host"),
            "{port}: {err}"
        );
    }
    for mut holder in holders {
        let _ = holder.kill();
        let _ = holder.wait();
    }
    assert_eq!(lab.published_entries(), 2);
    lab.ok(&["rm", "-f", "web"]);
    assert_eq!(lab.published_entries(), 0);
}
