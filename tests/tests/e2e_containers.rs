//! Tier 3: container sandboxes end to end: modes, live connect/disconnect, removal, restart
//! after a crash, concurrency.

use std::process::Command;

use integration_tests::{privileged, unique, wait_until, Lab};

fn ifaces(lab: &Lab, container: &str) -> Vec<String> {
    lab.exec_ok(container, &["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

#[test]
fn containers_on_one_user_network_talk() {
    if !privileged("containers_on_one_user_network_talk") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&["network", "create", "app"]);
    lab.run_d("server", &["--network", "app"]);
    lab.run_d("client", &["--network", "app", "--hostname", "cli"]);
    let server_ip = lab.ip("server", "app");
    assert_eq!(server_ip, "172.18.0.2");
    // A real TCP exchange: a listener in one container, a client in the other.
    lab.ok(&[
        "exec",
        "server",
        "--",
        "sh",
        "-c",
        "python3 -c \"
import socket
s = socket.socket(); s.bind(('0.0.0.0', 8080)); s.listen()
c, addr = s.accept(); c.sendall(('hello ' + addr[0]).encode()); c.close()
\" > /dev/null 2>&1 &",
    ]);
    lab.wait_listening("server", "tcp", 8080);
    let reply = lab.exec_ok(
        "client",
        &["python3", "-c", &format!(
            "import socket\ns=socket.create_connection(('{server_ip}',8080),timeout=5)\nprint(s.recv(100).decode())"
        )],
    );
    assert_eq!(reply.trim(), "hello 172.18.0.3");
    assert_eq!(lab.exec_ok("client", &["hostname"]).trim(), "cli");
    let hosts = lab.exec_ok("client", &["cat", "/etc/hosts"]);
    assert!(hosts.contains("172.18.0.3\tcli"), "{hosts}");
    let resolv = lab.exec_ok("client", &["cat", "/etc/resolv.conf"]);
    assert!(!resolv.contains("nameserver 127."), "{resolv}");
    // An IPv4-only network: no IPv6 on the container's interface (as Docker does), nor on
    // the host end or the bridge; loopback keeps ::1.
    let sysctl = |c: &str, iface: &str| {
        let path = format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6");
        lab.exec_ok(c, &["cat", &path]).trim().to_string()
    };
    assert_eq!(sysctl("client", "eth0"), "1");
    assert_eq!(sysctl("client", "lo"), "0");
    assert_eq!(
        lab.exec_ok("client", &["ip", "-6", "addr", "show", "dev", "eth0"]),
        ""
    );
    let bridge = lab.json(&["network", "inspect", "app"])[0]["Options"]
        ["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .to_string();
    let host_side = lab.host(&[
        "cat",
        &format!("/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6"),
    ]);
    assert_eq!(host_side.trim(), "1", "{bridge}");
}

#[test]
fn host_none_and_container_modes() {
    if !privileged("host_none_and_container_modes") {
        return;
    }
    let lab = Lab::new();
    lab.run_d("h", &["--network", "host"]);
    let host_view = ifaces(&lab, "h");
    assert!(
        host_view.contains(&"netd0".to_string()),
        "host mode sees the host's interfaces: {host_view:?}"
    );
    assert_eq!(host_view, lab.host_links());

    lab.run_d("n", &["--network", "none"]);
    assert_eq!(ifaces(&lab, "n"), vec!["lo"]);
    let lo = lab.exec_ok("n", &["ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}");

    lab.run_d("a", &[]);
    lab.run_d("side", &["--network", "container:a"]);
    let addr_a = lab.exec_ok("a", &["ip", "-o", "-4", "addr", "show", "eth0"]);
    let addr_side = lab.exec_ok("side", &["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert_eq!(addr_a, addr_side, "container:OTHER shares the namespace");
    let link_side = lab.exec_ok("side", &["ip", "-o", "link", "show", "eth0"]);
    assert!(link_side.contains("02:42:ac:11:00:02"), "{link_side}");
    assert_eq!(
        lab.inspect("side")["HostConfig"]["NetworkMode"],
        "container:a"
    );
    let err = lab.fails(&["rm", "-f", "a"]);
    assert!(err.contains("side"), "{err}");
    lab.ok(&["rm", "-f", "side", "a", "n", "h"]);
    assert_eq!(lab.namespaces(), 0);
}

#[test]
fn connect_and_disconnect_live() {
    if !privileged("connect_and_disconnect_live") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&["network", "create", "--subnet", "10.50.0.0/24", "back"]);
    lab.run_d("db", &["--network", "back"]);
    lab.run_d("web", &[]);
    // Until connected, the other network is routed through the gateway, where isolation
    // stops it.
    let route = lab.exec_ok("web", &["ip", "route", "get", "10.50.0.2"]);
    assert!(route.contains("via 172.17.0.1 dev eth0"), "{route}");
    assert!(!lab.ping("web", "10.50.0.2"), "another network");
    lab.ok(&[
        "network",
        "connect",
        "--ip",
        "10.50.0.77",
        "--alias",
        "frontend",
        "back",
        "web",
    ]);
    assert_eq!(ifaces(&lab, "web"), vec!["lo", "eth0", "eth1"]);
    let eth1 = lab.exec_ok("web", &["ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(eth1.contains("10.50.0.77/24"), "{eth1}");
    assert!(lab.ping("web", "10.50.0.2"));
    let route = lab.exec_ok("web", &["ip", "route", "get", "10.50.0.2"]);
    assert!(
        route.contains("dev eth1") && !route.contains("via"),
        "now on-link: {route}"
    );
    let nets = &lab.inspect("web")["NetworkSettings"]["Networks"];
    assert_eq!(nets["back"]["Aliases"][0], "frontend");
    assert_eq!(nets.as_object().unwrap().len(), 2);
    let route = lab.exec_ok("web", &["ip", "route", "show", "default"]);
    assert!(
        route.contains("dev eth0"),
        "the first network keeps the default route: {route}"
    );

    lab.ok(&["network", "disconnect", "back", "web"]);
    assert_eq!(ifaces(&lab, "web"), vec!["lo", "eth0"]);
    let route = lab.exec_ok("web", &["ip", "route", "get", "10.50.0.2"]);
    assert!(
        route.contains("via 172.17.0.1 dev eth0"),
        "back to the gateway: {route}"
    );
    assert!(!lab.ping("web", "10.50.0.2"), "apart again");
    let back = &lab.json(&["network", "inspect", "back"])[0];
    assert_eq!(back["AddressesInUse"], 1, "the address was freed");
    let err = lab.fails(&["network", "connect", "back", "db"]);
    assert!(err.contains("already connected"), "{err}");
}

#[test]
fn rm_leaves_no_veth_namespace_or_address() {
    if !privileged("rm_leaves_no_veth_namespace_or_address") {
        return;
    }
    let lab = Lab::new();
    let before = lab.host_links();
    lab.run_d("a", &[]);
    let pid = lab.inspect("a")["State"]["Pid"].as_i64().unwrap();
    let veth = lab
        .host_links()
        .into_iter()
        .find(|l| l.starts_with("veth"))
        .expect("a veth");
    assert_eq!(veth.len(), 11, "veth + 7 hex: {veth}");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    lab.ok(&["rm", "-f", "a"]);
    assert_eq!(lab.host_links(), before, "no veth left");
    assert_eq!(lab.namespaces(), 0);
    // Gone, or a zombie that its parent has not reaped yet.
    let stat = || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let stopped = || {
        let stat = stat();
        stat.is_empty() || stat.contains(") Z")
    };
    assert!(
        wait_until(std::time::Duration::from_secs(10), stopped),
        "the process was not stopped: {}",
        stat()
    );
    assert_eq!(
        lab.json(&["stats", "--format", "json"]),
        serde_json::json!([]),
        "no counters left"
    );
    lab.ok(&["create", "--name", "b"]);
    assert_eq!(lab.ip("b", "bridge"), "172.17.0.2");
}

#[test]
fn foreground_run_logs_and_exit_codes() {
    if !privileged("foreground_run_logs_and_exit_codes") {
        return;
    }
    let lab = Lab::new();
    let out = lab.netd(&[
        "run",
        "--name",
        "fg",
        "--",
        "sh",
        "-c",
        "echo hi from $(hostname); exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let id = lab.inspect("fg")["Id"].as_str().unwrap().to_string();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("hi from {}\n", &id[..12])
    );
    assert_eq!(lab.ok(&["logs", "fg"]), format!("hi from {}\n", &id[..12]));
    let state = &lab.inspect("fg")["State"];
    assert_eq!(
        (state["Status"].as_str(), state["ExitCode"].as_i64()),
        (Some("exited"), Some(3))
    );
    lab.ok(&["start", "fg"]);
    let out = lab.netd(&["run", "--rm", "--name", "gone", "--", "true"]);
    assert!(out.status.success());
    assert!(lab.fails(&["inspect", "gone"]).contains("not found"));
    let out = lab.exec("fg", &["sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn netns_path_attaches_an_existing_namespace() {
    if !privileged("netns_path_attaches_an_existing_namespace") {
        return;
    }
    let lab = Lab::new();
    let runtime_ns = unique("rt");
    let ok = Command::new("ip")
        .args(["netns", "add", &runtime_ns])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let path = format!("/run/netns/{runtime_ns}");
    let result = std::panic::catch_unwind(|| {
        lab.ok(&[
            "run",
            "-d",
            "--name",
            "ext",
            "--netns-path",
            &path,
            "--",
            "sleep",
            "600",
        ]);
        let addr = Command::new("ip")
            .args(["-n", &runtime_ns, "-4", "-o", "addr", "show", "eth0"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&addr.stdout).contains("172.17.0.2/16"));
        lab.run_d("peer", &[]);
        assert!(lab.ping("peer", "172.17.0.2"));
        lab.ok(&["rm", "-f", "ext"]);
        assert!(
            std::path::Path::new(&path).exists(),
            "a namespace netd did not make is not removed"
        );
        let links = Command::new("ip")
            .args(["-n", &runtime_ns, "-o", "link"])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&links.stdout).contains("eth0"));
    });
    let _ = Command::new("ip")
        .args(["netns", "del", &runtime_ns])
        .status();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn sigkill_and_restart_keep_everything() {
    if !privileged("sigkill_and_restart_keep_everything") {
        return;
    }
    let mut lab = Lab::new();
    lab.ok(&["network", "create", "--subnet", "10.60.0.0/24", "keep"]);
    lab.run_d("a", &["--network", "keep"]);
    lab.run_d("b", &["--network", "keep"]);
    lab.ok(&["network", "connect", "bridge", "b"]);
    let before_ps = lab.json(&["ps", "--format", "json"]);
    let before_nets = lab.json(&["network", "ls", "--format", "json"]);
    let links = lab.host_links();
    let sandbox = lab.inspect("a")["NetworkSettings"]["SandboxKey"]
        .as_str()
        .unwrap()
        .to_string();
    lab.kill_daemon();
    let ping_direct = Command::new("nsenter")
        .arg(format!("--net={sandbox}"))
        .args(["ping", "-c", "1", "-W", "2", "10.60.0.3"])
        .output()
        .unwrap();
    assert!(
        ping_direct.status.success(),
        "containers keep talking while the daemon is down"
    );
    lab.start_daemon();
    assert_eq!(lab.json(&["ps", "--format", "json"]), before_ps);
    assert_eq!(
        lab.json(&["network", "ls", "--format", "json"]),
        before_nets
    );
    assert_eq!(lab.host_links(), links, "adopted, not recreated");
    assert!(lab.ping("a", "10.60.0.3"));
    lab.run_d("c", &["--network", "keep"]);
    assert_eq!(lab.ip("c", "keep"), "10.60.0.4");
    assert_eq!(lab.inspect("a")["State"]["Status"], "running");

    // A veth lost while the daemon was down is recreated with the same address.
    let veth = lab.inspect("a");
    let ip_a = veth["NetworkSettings"]["Networks"]["keep"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    lab.kill_daemon();
    let port = lab
        .host_links()
        .into_iter()
        .filter(|l| l.starts_with("veth"))
        .find(|l| {
            let out = Command::new("ip")
                .args(["netns", "exec", &lab.netns, "ip", "-o", "link", "show", l])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).contains("alias netd:")
        })
        .expect("a netd veth");
    lab.host(&["ip", "link", "del", &port]);
    // An orphan carrying netd's mark goes; a link netd does not own stays.
    lab.host(&["ip", "link", "add", "orphan0", "type", "bridge"]);
    lab.host(&[
        "ip",
        "link",
        "set",
        "orphan0",
        "alias",
        "netd:0000000000000000",
    ]);
    lab.host(&["ip", "link", "add", "theirs0", "type", "bridge"]);
    lab.start_daemon();
    let links = lab.host_links();
    assert!(
        !links.contains(&"orphan0".to_string()) && links.contains(&"theirs0".to_string()),
        "{links:?}"
    );
    let count = lab
        .host_links()
        .iter()
        .filter(|l| l.starts_with("veth"))
        .count();
    assert_eq!(count, 4);
    for c in ["a", "b", "c"] {
        let nets = &lab.inspect(c)["NetworkSettings"]["Networks"];
        assert!(nets["keep"]["IPAddress"].is_string());
    }
    assert_eq!(lab.ip("a", "keep"), ip_a.as_str());
    assert!(lab.ping("c", "10.60.0.2"));
    assert!(lab.ping("c", "10.60.0.3"));
}

#[test]
fn fifty_parallel_runs_get_fifty_addresses() {
    if !privileged("fifty_parallel_runs_get_fifty_addresses") {
        return;
    }
    let lab = Lab::new();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let socket = lab.socket();
            std::thread::spawn(move || {
                Command::new(integration_tests::netd_bin())
                    .env("NETD_SOCKET", socket)
                    .args([
                        "run",
                        "-d",
                        "--name",
                        &format!("p{i}"),
                        "--",
                        "sleep",
                        "600",
                    ])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let all = lab.json(&["ps", "--format", "json"]);
    let mut ips: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 50);
    let expected: std::collections::BTreeSet<String> =
        (2..52).map(|i| format!("172.17.0.{i}")).collect();
    assert_eq!(
        ips.into_iter().collect::<std::collections::BTreeSet<_>>(),
        expected
    );
}
