//! Tier 3: macvlan endpoints over their life: restarts adopt and remake them, bad input is
//! named and leaves nothing, LAN addresses in use are refused or skipped, and the embedded
//! DNS answers in each container.

use integration_tests::{
    lan::{dig_until, first_node, in_range, macvlan_net, reaches, server, LAN_HOST, PORT, ROUTER},
    privileged, reach_script, Lab,
};

#[test]
fn a_restart_adopts_macvlan_endpoints_and_remakes_a_deleted_one() {
    if !privileged("a_restart_adopts_macvlan_endpoints_and_remakes_a_deleted_one") {
        return;
    }
    let (mut node01, _lan) = first_node();
    macvlan_net(&node01, "my_macvlan", "192.168.0.64/28", "bridge");
    let c1 = server(&node01, "c1", "my_macvlan");
    let from_c1 = |lab: &Lab, cmd: &[&str]| lab.exec("c1", cmd);
    reaches("c1 -> router", &|cmd| from_c1(&node01, cmd), &[ROUTER]);

    node01.kill_daemon();
    node01.start_daemon();
    reaches("after a SIGKILL", &|cmd| from_c1(&node01, cmd), &[ROUTER]);
    assert_eq!(node01.ip("c1", "my_macvlan"), c1);

    // Deleted behind the daemon's back: the next start puts it back, address and route.
    node01.exec_ok("c1", &["ip", "link", "del", "eth0"]);
    node01.kill_daemon();
    node01.start_daemon();
    reaches(
        "after eth0 was deleted",
        &|cmd| from_c1(&node01, cmd),
        &[ROUTER],
    );
    let addr = node01.exec_ok("c1", &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains(&format!("{c1}/24")), "{addr}");
    assert!(node01
        .daemon_log()
        .contains("re-plugging macvlan endpoint eth0"));
}

#[test]
fn bad_macvlan_input_is_named_and_leaves_nothing() {
    if !privileged("bad_macvlan_input_is_named_and_leaves_nothing") {
        return;
    }
    let (node01, _lan) = first_node();
    let links = node01.host_links();
    let networks = node01.ok(&["network", "ls"]);
    let create = |extra: &[&str]| {
        let mut args = vec!["network", "create", "--subnet=192.168.0.0/24"];
        args.extend_from_slice(extra);
        args.push("bad");
        node01.fails(&args)
    };
    for (extra, named) in [
        (&["-d", "macvlan", "-o", "parent=eth7"][..], "parent=eth7"),
        (
            &[
                "-d",
                "macvlan",
                "-o",
                "parent=eth0",
                "--ip-range=10.0.0.0/28",
            ],
            "10.0.0.0/28",
        ),
        (
            &[
                "-d",
                "macvlan",
                "-o",
                "parent=eth0",
                "-o",
                "macvlan_mode=loud",
            ],
            "macvlan_mode=loud",
        ),
        (
            &["-d", "macvlan", "-o", "parent=eth0", "-o", "icc=false"],
            "icc",
        ),
        (
            &["-d", "macvlan", "--internal", "-o", "parent=eth0"],
            "leave out -o parent",
        ),
        (
            &["-d", "macvlan", "-o", "host_access=true"],
            "host_access=true",
        ),
        (&["-d", "ipvlan", "-o", "parent=eth0"], "ipvlan"),
        (&["-d", "macvlan", "-o", "parent=eth0.10"], "802.1Q"),
    ] {
        let e = create(extra);
        assert!(e.contains(named), "{extra:?}: {e}");
    }
    macvlan_net(&node01, "lan", "192.168.0.64/28", "bridge");
    let e = node01.fails(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "lan",
        "-p",
        "8080:80",
        "--",
        "sleep",
        "60",
    ]);
    assert!(e.contains("macvlan") && e.contains("-p"), "{e}");
    assert!(!node01.ok(&["ps"]).contains("web"));
    node01.ok(&["network", "rm", "lan"]);
    assert_eq!(node01.ok(&["network", "ls"]), networks);
    assert_eq!(node01.host_links(), links);
    assert_eq!(node01.namespaces(), 0);
}

#[test]
fn addresses_in_use_on_the_lan_are_refused_and_skipped() {
    if !privileged("addresses_in_use_on_the_lan_are_refused_and_skipped") {
        return;
    }
    let (node01, _lan) = first_node();
    // The LAN host at .10 answers ARP; .50 is node01's own.
    macvlan_net(&node01, "lan", "192.168.0.8/29", "bridge");
    let run = |name: &str, ip: Option<&str>| {
        let mut args = vec!["run", "-d", "--name", name, "--network", "lan"];
        if let Some(ip) = ip {
            args.extend_from_slice(&["--ip", ip]);
        }
        args.extend_from_slice(&["--", "sleep", "120"]);
        node01.netd(&args)
    };
    for (ip, owner) in [
        (LAN_HOST, "answering ARP on eth0"),
        ("192.168.0.50", "this host"),
    ] {
        let out = run("taken", Some(ip));
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && e.contains(ip) && e.contains(owner),
            "{ip}: {e}"
        );
    }
    assert!(!node01.ok(&["ps"]).contains("taken"));
    let mut given = Vec::new();
    for name in ["a", "b", "c"] {
        assert!(run(name, None).status.success(), "run {name}");
        given.push(node01.ip(name, "lan"));
    }
    assert!(!given.contains(&LAN_HOST.to_string()), "{given:?}");
    assert!(given.iter().all(|ip| in_range(ip, 8, 8)), "{given:?}");
    // Three from .8/29 reach .10 in any order of allocation: it was seen and skipped.
    let log = node01.daemon_log();
    assert!(
        log.contains("192.168.0.10 of network lan is in use"),
        "{log}"
    );
}

#[test]
fn the_embedded_dns_answers_names_and_aliases_on_a_macvlan_network() {
    if !privileged("the_embedded_dns_answers_names_and_aliases_on_a_macvlan_network") {
        return;
    }
    let (mut node01, _lan) = first_node();
    macvlan_net(&node01, "my_macvlan", "192.168.0.64/28", "bridge");
    let script = reach_script();
    for (name, alias) in [("c1", "db"), ("c2", "web")] {
        node01.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "my_macvlan",
            "--alias",
            alias,
            "--",
            "python3",
            &script,
            "serve",
            PORT,
            "120",
        ]);
    }
    let c2 = node01.ip("c2", "my_macvlan");
    let resolv = node01.exec_ok("c1", &["cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    for name in ["c2", "web", "c2.my_macvlan", "web.my_macvlan"] {
        assert_eq!(dig_until(&node01, "c1", &[name], &c2), c2, "{name}");
    }
    assert_eq!(
        dig_until(&node01, "c1", &["+tcp", "c2"], &c2),
        c2,
        "over TCP"
    );

    // The servers come back with a restart, and a removed container's name goes.
    node01.kill_daemon();
    node01.start_daemon();
    assert_eq!(
        dig_until(&node01, "c1", &["web"], &c2),
        c2,
        "after a restart"
    );
    node01.ok(&["rm", "-f", "c2"]);
    assert_eq!(dig_until(&node01, "c1", &["c2"], ""), "", "a removed name");
}
