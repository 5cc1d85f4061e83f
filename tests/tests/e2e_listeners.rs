//! The daemon's listeners against hostile local users: floods of idle and slow clients on
//! every listener, metric labels from clients, a daemon that does not answer, and a SIGTERM
//! with clients connected.

use std::{
    io::Write,
    os::unix::net::UnixStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{
    cni::{cni, conf, Call},
    docker::plugin_call,
    netd_bin, privileged, unique, wait_until, Lab,
};
use serde_json::{json, Value};

fn flood_script() -> String {
    format!("{}/scripts/flood.py", env!("CARGO_MANIFEST_DIR"))
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
