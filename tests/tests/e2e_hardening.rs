//! The daemon against hostile callers: namespaces that are the host's under another name,
//! ids that are no ASCII, removals through the wrong door, floods of idle and slow clients
//! on every listener, a daemon that does not answer, and a SIGTERM with clients connected.

use std::{
    io::Write,
    os::unix::net::UnixStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{
    cni::{cni, conf, Call, Netns},
    docker::plugin_call,
    netd_bin, privileged, unique, wait_until, Lab,
};
use serde_json::{json, Value};

fn flood_script() -> String {
    format!("{}/scripts/flood.py", env!("CARGO_MANIFEST_DIR"))
}

/// The machine's own links (read only), to check that nothing was made there.
fn root_links() -> String {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(str::to_string))
        .collect();
    names.sort();
    names.join(" ")
}

/// A bind mount of a namespace file at a path of the test's, unmounted on drop.
struct BindMount(std::path::PathBuf);

impl BindMount {
    fn new(from: &str, at: std::path::PathBuf) -> Self {
        std::fs::write(&at, b"").unwrap();
        let ok = Command::new("mount")
            .arg("--bind")
            .arg(from)
            .arg(&at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount --bind {from} {}", at.display());
        Self(at)
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_hosts_namespace_is_refused_by_every_front_door_whatever_its_path() {
    if !privileged("the_hosts_namespace_is_refused_by_every_front_door_whatever_its_path") {
        return;
    }
    let plugin = unique("netd-t");
    let lab = Lab::with_external_args(&["--docker-plugin", &plugin]);
    // The test runs in the namespace the daemon was started in (the machine's): reached
    // through this process's /proc entry and through a bind mount of it. And the daemon's
    // own, by its name and by its /proc entry.
    let started_in = format!("/proc/{}/ns/net", std::process::id());
    let bind = BindMount::new(&started_in, lab.dir.path().join("hostns"));
    let paths = [
        started_in.clone(),
        bind.0.display().to_string(),
        format!("/run/netns/{}", lab.netns),
        format!("/proc/{}/ns/net", lab.daemon_pid()),
    ];
    // A Docker endpoint to join (its veth is made at CreateEndpoint, in the daemon's).
    let net = "ab".repeat(32);
    let ep = "cd".repeat(32);
    let create = json!({"NetworkID": net, "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.66.0.0/24", "Gateway": "10.66.0.1/24"}]});
    assert_eq!(
        plugin_call(&plugin, "NetworkDriver.CreateNetwork", &create.to_string()).0,
        200
    );
    let endpoint =
        json!({"NetworkID": net, "EndpointID": ep, "Interface": {"Address": "10.66.0.5/24"}});
    let (status, made) = plugin_call(
        &plugin,
        "NetworkDriver.CreateEndpoint",
        &endpoint.to_string(),
    );
    assert_eq!(status, 200, "{made}");
    assert!(made.get("Err").is_none(), "{made}");

    let machine = root_links();
    let links = lab.host_links();
    let containers = lab.json(&["ps", "--format", "json"]);
    let networks = lab.json(&["network", "ls", "--format", "json"]);
    for path in &paths {
        let err = lab.fails(&[
            "run",
            "-d",
            "--name",
            "escape",
            "--netns-path",
            path,
            "--",
            "sleep",
            "100",
        ]);
        assert!(
            err.contains(path.as_str()),
            "run --netns-path {path}: {err}"
        );

        let ns_call = Call {
            container_id: "escape0000000001",
            netns: path,
            ..Call::new("ADD")
        };
        let (code, answer) = cni(&ns_call, &conf(&lab, "1.0.0", json!({})));
        assert_ne!(code, 0, "CNI ADD in {path}: {answer}");
        let msg = format!("{} {}", answer["msg"], answer["details"]);
        assert!(msg.contains(path.as_str()), "CNI ADD in {path}: {answer}");

        let join = json!({"NetworkID": net, "EndpointID": ep, "SandboxKey": path});
        let (_, answer) = plugin_call(&plugin, "NetworkDriver.Join", &join.to_string());
        let why = answer["Err"].as_str().unwrap_or_default();
        assert!(why.contains(path.as_str()), "Join {path}: {answer}");

        assert_eq!(
            root_links(),
            machine,
            "{path}: a link appeared in the machine's namespace"
        );
        assert_eq!(
            lab.host_links(),
            links,
            "{path}: a link was left in the daemon's"
        );
        assert_eq!(lab.json(&["ps", "--format", "json"]), containers, "{path}");
        assert_eq!(
            lab.json(&["network", "ls", "--format", "json"]),
            networks,
            "{path}: CNI's network was left behind"
        );
    }
    let ids = json!({"NetworkID": net, "EndpointID": ep}).to_string();
    assert_eq!(
        plugin_call(&plugin, "NetworkDriver.DeleteEndpoint", &ids).0,
        200
    );
    let del = json!({"NetworkID": net}).to_string();
    assert_eq!(
        plugin_call(&plugin, "NetworkDriver.DeleteNetwork", &del).0,
        200
    );
    drop(bind);
}

#[test]
fn ids_that_are_not_ascii_are_text_and_panic_nothing() {
    if !privileged("ids_that_are_not_ascii_are_text_and_panic_nothing") {
        return;
    }
    let plugin = unique("netd-t");
    let lab = Lab::with_external_args(&["--docker-plugin", &plugin]);
    // Byte 12 falls inside a character: a byte slice there would panic.
    let odd = "ab€€€€€€€€€€€€€€€€€€€€";
    let create = json!({"NetworkID": odd, "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.66.0.0/24"}]});
    let (status, answer) = plugin_call(&plugin, "NetworkDriver.CreateNetwork", &create.to_string());
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["Err"].as_str().is_some_and(|e| e.contains('€')),
        "{answer}"
    );

    let net = "ab".repeat(32);
    let create = json!({"NetworkID": net, "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.66.0.0/24"}]});
    assert_eq!(
        plugin_call(&plugin, "NetworkDriver.CreateNetwork", &create.to_string()),
        (200, json!({}))
    );
    let endpoint =
        json!({"NetworkID": net, "EndpointID": odd, "Interface": {"Address": "10.66.0.6/24"}});
    let (status, made) = plugin_call(
        &plugin,
        "NetworkDriver.CreateEndpoint",
        &endpoint.to_string(),
    );
    assert_eq!(status, 200, "{made}");
    assert!(made.get("Err").is_none(), "{made}");
    let ids = json!({"NetworkID": net, "EndpointID": odd}).to_string();
    assert_eq!(
        plugin_call(&plugin, "NetworkDriver.DeleteEndpoint", &ids),
        (200, json!({}))
    );
    let del = json!({"NetworkID": net}).to_string();
    assert_eq!(
        plugin_call(&plugin, "NetworkDriver.DeleteNetwork", &del).0,
        200
    );

    // A CNI container id of any text gets a container, and DEL takes it all away.
    let networks = lab.json(&["network", "ls", "--format", "json"]);
    let ns = Netns::new();
    let path = ns.path();
    let add = Call {
        container_id: "コンテナ-ü-0000000000001",
        netns: &path,
        ..Call::new("ADD")
    };
    let (code, result) = cni(&add, &conf(&lab, "1.0.0", json!({})));
    assert_eq!(code, 0, "{result}");
    let (code, result) = cni(
        &Call {
            command: "DEL",
            ..add
        },
        &conf(&lab, "1.0.0", json!({})),
    );
    assert_eq!(code, 0, "{result}");
    assert!(lab
        .json(&["ps", "--format", "json"])
        .as_array()
        .unwrap()
        .is_empty());
    lab.ok(&["network", "rm", "podnet"]);
    assert_eq!(lab.json(&["network", "ls", "--format", "json"]), networks);
    assert!(
        !lab.daemon_log().contains("panicked"),
        "{}",
        lab.daemon_log()
    );
}

#[test]
fn ids_sharing_their_first_characters_are_two_containers() {
    if !privileged("ids_sharing_their_first_characters_are_two_containers") {
        return;
    }
    let lab = Lab::new();
    let (a, b) = (Netns::new(), Netns::new());
    let (pa, pb) = (a.path(), b.path());
    // ctr sends NAMESPACE-ID: the first 12 characters of both are `ct-webserver`.
    for (id, path) in [("ct-webserver1", &pa), ("ct-webserver2", &pb)] {
        let add = Call {
            container_id: id,
            netns: path,
            ..Call::new("ADD")
        };
        let (code, result) = cni(&add, &conf(&lab, "1.0.0", json!({})));
        assert_eq!(code, 0, "{id}: {result}");
    }
    let names: Vec<String> = lab
        .json(&["ps", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"cni-ct-webserver1".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"cni-ct-webserver2".to_string()),
        "{names:?}"
    );
    for (id, path) in [("ct-webserver1", &pa), ("ct-webserver2", &pb)] {
        let del = Call {
            container_id: id,
            netns: path,
            ..Call::new("DEL")
        };
        assert_eq!(cni(&del, &conf(&lab, "1.0.0", json!({}))).0, 0);
    }
}

#[test]
fn a_docker_endpoint_is_removed_only_through_docker() {
    if !privileged("a_docker_endpoint_is_removed_only_through_docker") {
        return;
    }
    let plugin = unique("netd-t");
    let lab = Lab::with_external_args(&["--docker-plugin", &plugin]);
    let net = "ab".repeat(32);
    let ep = "cd".repeat(32);
    let create = json!({"NetworkID": net, "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.66.0.0/24"}]});
    assert_eq!(
        plugin_call(&plugin, "NetworkDriver.CreateNetwork", &create.to_string()).0,
        200
    );
    let endpoint =
        json!({"NetworkID": net, "EndpointID": ep, "Interface": {"Address": "10.66.0.7/24"}});
    assert_eq!(
        plugin_call(
            &plugin,
            "NetworkDriver.CreateEndpoint",
            &endpoint.to_string()
        )
        .0,
        200
    );
    let all = lab.json(&["ps", "--format", "json"]);
    let name = all[0]["Name"]
        .as_str()
        .expect("the endpoint's container")
        .to_string();
    for origin in ["docker", "DOCKER", "cni", "netd", "anything"] {
        let path = format!("/v1/containers/{name}?force=true&origin={origin}");
        let (status, body) = api_call(&lab, "DELETE", &path);
        assert_eq!(status, 403, "origin={origin}: {body}");
    }
    assert!(lab.fails(&["rm", "-f", &name]).contains("docker"));
    assert_eq!(lab.json(&["ps", "--format", "json"]), all);
    let ids = json!({"NetworkID": net, "EndpointID": ep}).to_string();
    assert_eq!(
        plugin_call(&plugin, "NetworkDriver.DeleteEndpoint", &ids).0,
        200
    );
    assert!(lab
        .json(&["ps", "--format", "json"])
        .as_array()
        .unwrap()
        .is_empty());
}

/// One request on the API socket: the status and the body.
fn api_call(lab: &Lab, method: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "--unix-socket"])
        .arg(lab.socket())
        .args(["-X", method, "-w", "\n%{http_code}"])
        .arg(format!("http://netd{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("a status line");
    (status.parse().unwrap_or(0), body.to_string())
}

type Lines = std::sync::mpsc::Receiver<String>;

/// flood.py against `target`, started from the lab's host namespace, once it holds its
/// connections; with the lines it prints after `ready`.
fn flood(lab: &Lab, target: &str, (idle, head, body): (u32, u32, u32)) -> (Child, Lines) {
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.netns,
            "python3",
            &flood_script(),
            target,
        ])
        .args([
            idle.to_string(),
            head.to_string(),
            body.to_string(),
            "120".into(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = integration_tests::lines_of(child.stdout.take().unwrap());
    let line = lines.recv_timeout(Duration::from_secs(60));
    assert!(
        line.as_deref().is_ok_and(|l| l.starts_with("ready")),
        "flood.py {target}: {line:?}"
    );
    (child, lines)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The stated bound: every API call during a flood answers within this (the head time of
/// a listener is 5 s; a call needs one turn).
const FLOOD_LATENCY_BOUND: Duration = Duration::from_secs(10);

/// Runs every kind of call once (API, metrics scrape, plugin) and returns the slowest time.
fn operations(lab: &Lab, plugin: &str, round: usize, scrape: bool) -> Duration {
    let mut slowest = Duration::ZERO;
    let net = format!("fl{round}");
    let subnet = format!("10.81.{round}.0/24");
    let run = [
        "run",
        "-d",
        "--name",
        &net,
        "--network",
        &net,
        "-p",
        "8080",
        "--",
        "sleep",
        "100",
    ];
    for args in [
        &["network", "create", "--subnet", &subnet, &net][..],
        &run[..],
        &["ps"][..],
        &["network", "inspect", &net][..],
        &["rm", "-f", &net][..],
        &["network", "rm", &net][..],
    ] {
        let t = Instant::now();
        lab.ok(args);
        slowest = slowest.max(t.elapsed());
    }
    if scrape {
        let t = Instant::now();
        let metrics = lab.host(&[
            "curl",
            "-sf",
            "--max-time",
            "10",
            "http://127.0.0.1:9640/metrics",
        ]);
        slowest = slowest.max(t.elapsed());
        assert!(metrics.contains("netd_"), "round {round}: no metrics");
    }
    let t = Instant::now();
    let (status, caps) = plugin_call(plugin, "NetworkDriver.GetCapabilities", "");
    assert_eq!(status, 200, "round {round}: {caps}");
    slowest.max(t.elapsed())
}

/// Waits until the server has closed some connection of each flood (its idle ones go at
/// the head time), then ends them.
fn end_floods(floods: Vec<(Child, Lines)>) {
    for (_, lines) in &floods {
        let line = lines.recv_timeout(Duration::from_secs(30));
        assert_eq!(
            line.as_deref(),
            Ok("closed"),
            "the server closed none of the flood's connections"
        );
    }
    for (mut f, _) in floods {
        drop(f.stdin.take());
        let _ = f.wait();
    }
}

#[test]
fn idle_and_slow_clients_on_every_listener_block_no_operation() {
    if !privileged("idle_and_slow_clients_on_every_listener_block_no_operation") {
        return;
    }
    let plugin = unique("netd-t");
    let lab = Lab::with_external_args(&["--docker-plugin", &plugin]);
    let api = lab.socket().display().to_string();
    let plugin_socket = format!("/run/docker/plugins/{plugin}.sock");
    let pid = lab.daemon_pid();
    let base = open_fds(pid);
    // Within each listener's bound of waiting connections (metrics 128, sockets 512): idle
    // clients, half-sent heads and trickled bodies, held and re-opened as they are closed.
    let floods = vec![
        flood(&lab, "127.0.0.1:9640", (100, 10, 10)),
        flood(&lab, &api, (300, 100, 100)),
        flood(&lab, &plugin_socket, (200, 50, 50)),
    ];
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        slowest = slowest.max(operations(&lab, &plugin, round, true));
    }
    end_floods(floods);
    // Past the metrics port's bound: it evicts and refuses (a scrape may be turned away
    // meanwhile), holds no more than its bound, and the API does not notice.
    let metrics = vec![flood(&lab, "127.0.0.1:9640", (600, 150, 150))];
    for round in 3..5 {
        slowest = slowest.max(operations(&lab, &plugin, round, false));
        // The listeners' bounds: waiting and busy connections of the metrics port
        // (128 + 16) and of the two sockets (512 + 256 each), over what it held before.
        assert!(
            open_fds(pid) < base + 1680,
            "the daemon holds {} descriptors, {base} before the floods",
            open_fds(pid)
        );
    }
    end_floods(metrics);
    slowest = slowest.max(operations(&lab, &plugin, 5, true));
    assert!(
        slowest < FLOOD_LATENCY_BOUND,
        "an operation took {slowest:?} under the flood"
    );
}

#[test]
fn metric_labels_take_nothing_from_clients() {
    if !privileged("metric_labels_take_nothing_from_clients") {
        return;
    }
    let lab = Lab::new();
    let series = |lab: &Lab| {
        lab.host(&["curl", "-sf", "http://127.0.0.1:9640/metrics"])
            .lines()
            .filter(|l| l.starts_with("netd_api_operations_total"))
            .count()
    };
    lab.ok(&["network", "ls"]);
    let before = series(&lab);
    for i in 0..500 {
        let mut s = UnixStream::connect(lab.socket()).unwrap();
        let req = format!(
            "M{i}X /v1/random/{i}?q={i} HTTP/1.1\r\nHost: netd\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut answer);
        assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    }
    let after = series(&lab);
    assert!(
        after <= before + 2,
        "500 requests of invented methods and paths made {} series",
        after - before
    );
}

#[test]
fn sigterm_ends_the_daemon_whatever_clients_are_connected() {
    if !privileged("sigterm_ends_the_daemon_whatever_clients_are_connected") {
        return;
    }
    let mut lab = Lab::new();
    lab.run_d("a", &[]);
    let pid = lab.daemon_pid();
    let base = open_fds(pid);
    let mut monitor = Command::new(netd_bin())
        .env("NETD_SOCKET", lab.socket())
        .arg("monitor")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let api = lab.socket().display().to_string();
    let (mut half, _) = flood(&lab, &api, (5, 5, 5));
    let (mut metrics, _) = flood(&lab, "127.0.0.1:9640", (5, 5, 5));
    // Connected: the monitor stream and the floods' 30 connections are the daemon's.
    assert!(
        wait_until(Duration::from_secs(10), || open_fds(pid) > base + 30),
        "{} descriptors, {base} before",
        open_fds(pid)
    );
    // SAFETY: kill(2) on the lab's daemon.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let t = Instant::now();
    let gone = wait_until(Duration::from_secs(15), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    assert!(
        gone,
        "the daemon still runs {:?} after SIGTERM",
        t.elapsed()
    );
    let _ = monitor.kill();
    let _ = monitor.wait();
    for f in [&mut half, &mut metrics] {
        let _ = f.kill();
        let _ = f.wait();
    }
    // The container's namespace and process stay: a restart adopts it.
    lab.stop_daemon();
    lab.start_daemon();
    assert!(lab.inspect("a")["State"]["Running"]
        .as_bool()
        .unwrap_or(false));
}

#[test]
fn a_daemon_that_does_not_answer_is_given_up_on() {
    if !privileged("a_daemon_that_does_not_answer_is_given_up_on") {
        return;
    }
    let lab = Lab::new();
    let pid = lab.daemon_pid() as i32;
    struct Cont(i32);
    impl Drop for Cont {
        fn drop(&mut self) {
            // SAFETY: kill(2) on the lab's daemon.
            unsafe { libc::kill(self.0, libc::SIGCONT) };
        }
    }
    // SAFETY: kill(2) on the lab's daemon.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let cont = Cont(pid);
    let out = Command::new(netd_bin())
        .env("NETD_SOCKET", lab.socket())
        .env("NETD_TIMEOUT", "2")
        .args(["network", "ls"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("did not answer within 2 s"), "{err}");
    let (code, answer) = cni(&Call::new("STATUS"), &conf(&lab, "1.1.0", json!({})));
    assert_ne!(code, 0, "STATUS of a stopped daemon: {answer}");
    assert_eq!(answer["code"], 50, "{answer}");
    assert!(
        answer["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("did not answer"),
        "{answer}"
    );
    drop(cont);
    assert_eq!(
        cni(&Call::new("STATUS"), &conf(&lab, "1.1.0", json!({}))).0,
        0
    );
    let _: Value = lab.json(&["network", "ls", "--format", "json"]);
}

#[test]
fn the_plugin_grants_no_pool_a_network_could_not_have_and_no_changed_retry() {
    if !privileged("the_plugin_grants_no_pool_a_network_could_not_have_and_no_changed_retry") {
        return;
    }
    let plugin = unique("netd-t");
    let lab = Lab::with_external_args(&["--docker-plugin", &plugin]);
    for (pool, named) in [
        ("127.0.0.0/24", "loopback"),
        ("224.0.0.0/24", "multicast"),
        ("10.5.0.1/32", "10.5.0.1/32"),
        ("10.5.0.0/31", "10.5.0.0/31"),
        ("0.0.0.0/8", "this network"),
    ] {
        let req = json!({"AddressSpace": "netd", "Pool": pool}).to_string();
        let (status, answer) = plugin_call(&plugin, "IpamDriver.RequestPool", &req);
        let why = answer["Error"].as_str().unwrap_or_default();
        assert!(status == 200 && why.contains(named), "{pool}: {answer}");
    }
    assert!(
        !lab.state_dir().join("ipam-pools.json").exists(),
        "a refused pool was persisted"
    );
    let net = "ab".repeat(32);
    let create = |pool: &str| {
        json!({"NetworkID": net, "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": pool}]})
            .to_string()
    };
    let first = plugin_call(
        &plugin,
        "NetworkDriver.CreateNetwork",
        &create("10.66.0.0/24"),
    );
    assert_eq!(first, (200, json!({})));
    let (_, retry) = plugin_call(
        &plugin,
        "NetworkDriver.CreateNetwork",
        &create("10.67.0.0/24"),
    );
    let why = retry["Err"].as_str().unwrap_or_default();
    assert!(
        why.contains("10.66.0.0/24") && why.contains("10.67.0.0/24"),
        "{retry}"
    );
    let endpoint = |addr: &str| {
        json!({"NetworkID": net, "EndpointID": "cd".repeat(32), "Interface": {"Address": addr}})
            .to_string()
    };
    let (status, _) = plugin_call(
        &plugin,
        "NetworkDriver.CreateEndpoint",
        &endpoint("10.66.0.5/24"),
    );
    assert_eq!(status, 200);
    let (_, retry) = plugin_call(
        &plugin,
        "NetworkDriver.CreateEndpoint",
        &endpoint("10.66.0.6/24"),
    );
    let why = retry["Err"].as_str().unwrap_or_default();
    assert!(
        why.contains("10.66.0.5") && why.contains("10.66.0.6"),
        "{retry}"
    );
    let ids = json!({"NetworkID": net, "EndpointID": "cd".repeat(32)}).to_string();
    assert_eq!(
        plugin_call(&plugin, "NetworkDriver.DeleteEndpoint", &ids).0,
        200
    );
    let del = json!({"NetworkID": net}).to_string();
    assert_eq!(
        plugin_call(&plugin, "NetworkDriver.DeleteNetwork", &del).0,
        200
    );
}

#[test]
fn rm_f_stops_the_processes_exec_started_too() {
    if !privileged("rm_f_stops_the_processes_exec_started_too") {
        return;
    }
    let lab = Lab::new();
    lab.run_d("a", &[]);
    let mut exec = integration_tests::child::spawn_exec(&lab, "a", &["sleep", "987"]);
    // The CLI runs the command as its child, and ends when it does.
    let cli = exec.id().to_string();
    let running = wait_until(Duration::from_secs(10), || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
            let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
            let ppid = stat.rsplit(") ").next().and_then(|r| r.split(' ').nth(1));
            std::fs::read_to_string(p.path().join("cmdline")).is_ok_and(|c| c == "sleep\0987\0")
                && ppid == Some(cli.as_str())
        })
    });
    assert!(running, "netd exec a -- sleep did not start");
    lab.ok(&["rm", "-f", "a"]);
    let gone = wait_until(Duration::from_secs(10), || {
        exec.try_wait().ok().flatten().is_some()
    });
    assert!(gone, "the exec'd process outlived its container");
}
