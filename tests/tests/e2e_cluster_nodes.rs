//! Three netd hosts in one cluster (etcd with TLS on an underlay of the test's own): nodes
//! join and are listed on every host, a live node's name is refused to another host, a dead
//! host is seen unreachable and only then removable, it rejoins when it comes back, and a
//! stopped etcd leaves each host working on its own until it is back.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{cluster::Cluster, has_etcd, netd_bin, privileged, wait_until, Lab};

const TTL: u32 = 3;
const ALL_READY: [(&str, bool); 3] = [("host1", true), ("host2", true), ("host3", true)];

/// Host 1 takes its underlay address from its uplink; the others are told theirs.
fn cluster() -> Cluster {
    Cluster::start(3, TTL, |i| match i {
        0 => vec!["--uplink".into(), "eth0".into()],
        i => vec![
            "--advertise-addr".into(),
            integration_tests::cluster::host_ip(i),
        ],
    })
}

#[test]
fn hosts_join_and_see_each_other() {
    if !privileged("hosts_join_and_see_each_other") || !has_etcd("hosts_join") {
        return;
    }
    let c = cluster();
    for i in 0..3 {
        assert!(
            c.wait_nodes(i, &ALL_READY, Duration::from_secs(20)),
            "host{} sees {:?}",
            i + 1,
            c.nodes(i)
        );
    }
    let nodes = c.nodes(1).unwrap();
    let addresses: Vec<&str> = nodes.iter().map(|(_, a, _)| a.as_str()).collect();
    assert_eq!(addresses, ["10.88.0.11", "10.88.0.12", "10.88.0.13"]);
    let table = c.hosts[0].ok(&["node", "ls"]);
    assert!(
        table.contains("host2") && table.contains("ready"),
        "{table}"
    );

    // A fourth host that claims host2's name is refused at start, naming host2's address.
    let mut fourth = Lab::unstarted();
    integration_tests::lan::wire(&c.underlay, "und0", &fourth.netns, "10.88.0.14/24", "u3x");
    let mut args = c.daemon_args(1, &["--advertise-addr".into(), "10.88.0.14".into()]);
    args.extend(["--netns".into(), fourth.netns.clone()]);
    fourth.daemon_args = Vec::new();
    let refused = Command::new(netd_bin())
        .arg("--socket")
        .arg(fourth.socket())
        .arg("daemon")
        .arg("--state-dir")
        .arg(fourth.state_dir())
        .arg("--bpffs")
        .arg(format!("/sys/fs/bpf/netd-{}", fourth.netns))
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("netd daemon");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a second host2 started");
    assert!(
        stderr.contains("host2") && stderr.contains("10.88.0.12"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir(format!("/sys/fs/bpf/netd-{}", fourth.netns));
}

#[test]
fn a_host_cut_off_is_unreachable_then_removable_and_rejoins() {
    if !privileged("a_host_cut_off_is_unreachable") || !has_etcd("a_host_cut_off") {
        return;
    }
    let c = cluster();
    assert!(c.wait_nodes(0, &ALL_READY, Duration::from_secs(20)));
    let refused = c.hosts[0].fails(&["node", "rm", "host3"]);
    assert!(refused.contains("alive"), "{refused}");
    let own = c.hosts[0].fails(&["node", "rm", "host1"]);
    assert!(own.contains("own"), "{own}");

    // host3's underlay link down: its lease is no longer renewed.
    let cut = Instant::now();
    let host3 = c.hosts[2].netns.clone();
    integration_tests::lan::ip(&["-n", &host3, "link", "set", "eth0", "down"]);
    let down = [("host1", true), ("host2", true), ("host3", false)];
    assert!(
        c.wait_nodes(0, &down, Duration::from_secs(TTL as u64 + 15)),
        "host1 sees {:?}",
        c.nodes(0)
    );
    println!(
        "host3 seen unreachable {:?} after its link went down (lease TTL {TTL} s)",
        cut.elapsed()
    );
    assert!(c.wait_nodes(1, &down, Duration::from_secs(5)));

    c.hosts[0].ok(&["node", "rm", "host3"]);
    let two = [("host1", true), ("host2", true)];
    assert!(
        c.wait_nodes(1, &two, Duration::from_secs(5)),
        "{:?}",
        c.nodes(1)
    );

    // Back on the underlay, host3 takes a new lease and its record again.
    integration_tests::lan::ip(&["-n", &host3, "link", "set", "eth0", "up"]);
    assert!(
        c.wait_nodes(1, &ALL_READY, Duration::from_secs(30)),
        "{:?}",
        c.nodes(1)
    );
}

/// The `alive_since` of `node` as host `i` lists it.
fn alive_since(c: &Cluster, i: usize, node: &str) -> Option<String> {
    let nodes = c.hosts[i].json(&["node", "ls", "--format", "json"]);
    let node = nodes.as_array()?.iter().find(|n| n["name"] == node)?;
    node["alive_since"].as_str().map(str::to_string)
}

#[test]
fn a_crashed_daemons_host_stays_ready_and_the_restart_adopts_its_heartbeat() {
    if !privileged("a_crashed_daemons_host_stays_ready") || !has_etcd("crashed_daemon") {
        return;
    }
    let mut c = cluster();
    assert!(c.wait_nodes(0, &ALL_READY, Duration::from_secs(20)));
    let since = alive_since(&c, 0, "host3").expect("host3 is alive");
    c.hosts[2].kill_daemon();
    // Watched for well past the TTL: the heartbeat alone keeps host3 ready, since its
    // containers still forward.
    let watch_until = Instant::now() + Duration::from_secs(2 * TTL as u64 + 2);
    while Instant::now() < watch_until {
        assert!(
            c.nodes(0)
                .is_some_and(|n| n.iter().all(|(_, _, ready)| *ready)),
            "host3 went unreachable with only its daemon down: {:?}",
            c.nodes(0)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    c.hosts[2].start_daemon();
    assert!(c.wait_nodes(0, &ALL_READY, Duration::from_secs(10)));
    assert_eq!(
        alive_since(&c, 0, "host3").as_deref(),
        Some(since.as_str()),
        "the restarted daemon took a new lease instead of adopting its heartbeat"
    );
    assert!(c.hosts[2]
        .daemon_log()
        .contains("adopting the running heartbeat"));
}

#[test]
fn hosts_work_on_while_etcd_is_stopped() {
    if !privileged("hosts_work_on_while_etcd_is_stopped") || !has_etcd("etcd_stopped") {
        return;
    }
    let mut c = cluster();
    assert!(c.wait_nodes(0, &ALL_READY, Duration::from_secs(20)));
    for i in 0..3 {
        c.etcd.kill(i);
    }
    // Cluster calls fail closed, naming the store; the host's own networks still work.
    let failed = wait_until(Duration::from_secs(20), || {
        let out = c.hosts[0].netd(&["node", "ls"]);
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("etcd at 10.88.0.101:2379")
    });
    assert!(failed, "{:?}", c.hosts[0].netd(&["node", "ls"]));
    c.hosts[0].ok(&["network", "create", "--subnet", "10.77.0.0/24", "local"]);
    c.hosts[0].ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "local",
        "--",
        "sleep",
        "60",
    ]);
    let reached = wait_until(Duration::from_secs(10), || {
        c.hosts[0].ping("c1", "10.77.0.1")
    });
    assert!(reached, "a bridge container reaches its gateway");

    // A daemon restarted while etcd is away starts (bounded), and joins when etcd is back.
    c.hosts[1].stop_daemon();
    let started = Instant::now();
    c.hosts[1].start_daemon();
    println!("a daemon started without etcd in {:?}", started.elapsed());

    for i in 0..3 {
        c.etcd.restart(i).unwrap();
    }
    c.etcd.wait_healthy(Duration::from_secs(60)).unwrap();
    for i in 0..3 {
        assert!(
            c.wait_nodes(i, &ALL_READY, Duration::from_secs(30)),
            "host{} sees {:?}",
            i + 1,
            c.nodes(i)
        );
    }
}
