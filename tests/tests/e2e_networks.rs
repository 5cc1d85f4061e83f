//! Tier 3: networks and addressing, end to end in throwaway host namespaces with real traffic.

use integration_tests::{privileged, Lab};

#[test]
fn two_containers_on_the_default_bridge_ping_each_other() {
    if !privileged("two_containers_on_the_default_bridge_ping_each_other") {
        return;
    }
    let lab = Lab::new();
    lab.run_d("a", &[]);
    lab.run_d("b", &[]);
    let a = lab.inspect("a");
    let net = &a["NetworkSettings"]["Networks"]["bridge"];
    assert_eq!(net["IPAddress"], "172.17.0.2");
    assert_eq!(net["Gateway"], "172.17.0.1");
    assert_eq!(net["MacAddress"], "02:42:ac:11:00:02");
    assert_eq!(lab.ip("b", "bridge"), "172.17.0.3");
    assert!(lab.ping("a", "172.17.0.3"));
    assert!(lab.ping("b", "172.17.0.2"));
    assert!(lab.ping("a", "172.17.0.1"), "the gateway answers");
    let route = lab.exec_ok("a", &["ip", "route", "show", "default"]);
    assert!(route.contains("via 172.17.0.1 dev eth0"), "{route}");

    // The bridge-port programs counted that traffic, per interface.
    let stats = lab.json(&["stats", "--format", "json"]);
    let a_stats = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Container"] == "a")
        .unwrap()
        .clone();
    assert!(a_stats["TxPackets"].as_u64().unwrap() >= 2, "{a_stats}");
    assert!(a_stats["RxPackets"].as_u64().unwrap() >= 2, "{a_stats}");
}

#[test]
fn user_network_with_subnet_gateway_and_static_ip() {
    if !privileged("user_network_with_subnet_gateway_and_static_ip") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        "192.168.100.0/24",
        "--gateway",
        "192.168.100.254",
        "--label",
        "team=web",
        "n1",
    ]);
    lab.run_d("web", &["--network", "n1", "--ip", "192.168.100.100"]);
    lab.run_d("db", &["--network", "n1"]);
    let net = &lab.json(&["network", "inspect", "n1"])[0];
    assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "192.168.100.0/24");
    assert_eq!(net["IPAM"]["Config"][0]["Gateway"], "192.168.100.254");
    assert_eq!(net["Labels"]["team"], "web");
    assert_eq!(net["Driver"], "bridge");
    assert_eq!(net["Containers"].as_object().unwrap().len(), 2);
    let web = &lab.inspect("web")["NetworkSettings"]["Networks"]["n1"];
    assert_eq!(web["IPAddress"], "192.168.100.100");
    assert_eq!(web["IPPrefixLen"], 24);
    assert_eq!(web["Gateway"], "192.168.100.254");
    let addr = lab.exec_ok("web", &["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains("192.168.100.100/24"), "{addr}");
    assert_eq!(
        lab.ip("db", "n1"),
        "192.168.100.1",
        "the gateway is not .1, so .1 is the first free address"
    );
    assert!(lab.ping("web", "192.168.100.1"));
    assert!(lab.ping("db", "192.168.100.254"));
    let bridge = net["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(bridge, format!("nd-{}", &net["Id"].as_str().unwrap()[..12]));
    assert!(lab.host_links().contains(&bridge));
}

#[test]
fn ip_range_restricts_dynamic_addresses() {
    if !privileged("ip_range_restricts_dynamic_addresses") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        "10.20.0.0/16",
        "--ip-range",
        "10.20.5.0/24",
        "ranged",
    ]);
    lab.ok(&["create", "--name", "a", "--network", "ranged"]);
    lab.ok(&["create", "--name", "b", "--network", "ranged"]);
    lab.ok(&[
        "create",
        "--name",
        "c",
        "--network",
        "ranged",
        "--ip",
        "10.20.0.9",
    ]);
    let ip = |c: &str| lab.inspect(c)["NetworkSettings"]["Networks"]["ranged"]["IPAddress"].clone();
    assert_eq!(ip("a"), "10.20.5.0");
    assert_eq!(ip("b"), "10.20.5.1");
    assert_eq!(
        ip("c"),
        "10.20.0.9",
        "static addresses may sit outside the range"
    );
    let cfg = &lab.json(&["network", "inspect", "ranged"])[0]["IPAM"]["Config"][0];
    assert_eq!(cfg["IPRange"], "10.20.5.0/24");
    assert_eq!(cfg["Gateway"], "10.20.0.1");
}

#[test]
fn default_pools_and_network_listing() {
    if !privileged("default_pools_and_network_listing") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&["network", "create", "one"]);
    lab.ok(&[
        "network",
        "create",
        "--internal",
        "--mtu",
        "1400",
        "-o",
        "com.docker.network.bridge.name=br-two",
        "two",
    ]);
    assert!(lab.host_links().contains(&"br-two".to_string()));
    let subnet =
        |n: &str| lab.json(&["network", "inspect", n])[0]["IPAM"]["Config"][0]["Subnet"].clone();
    assert_eq!(subnet("bridge"), "172.17.0.0/16");
    assert_eq!(subnet("one"), "172.18.0.0/16");
    assert_eq!(subnet("two"), "172.19.0.0/16");
    let two = &lab.json(&["network", "inspect", "two"])[0];
    assert_eq!(two["Internal"], true);
    assert_eq!(two["Options"]["com.docker.network.driver.mtu"], "1400");
    let table = lab.ok(&["network", "ls"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("NETWORK ID")
            && header.contains("NAME")
            && header.contains("DRIVER")
            && header.contains("SCOPE")
    );
    for name in ["bridge", "host", "none", "one", "two"] {
        assert!(
            table
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(name)),
            "{name} missing:\n{table}"
        );
    }
    let listed = lab.json(&["network", "ls", "--format", "json"]);
    assert_eq!(listed.as_array().unwrap().len(), 5);

    lab.run_d("m", &["--network", "two"]);
    let link = lab.exec_ok("m", &["ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1400"), "{link}");
    let routes = lab.exec_ok("m", &["ip", "route"]);
    assert!(
        !routes.contains("default"),
        "internal networks have no default route: {routes}"
    );

    let err = lab.fails(&["network", "rm", "two"]);
    assert!(err.contains("m"), "{err}");
    let err = lab.fails(&["network", "rm", "bridge"]);
    assert!(err.contains("pre-defined"), "{err}");
    let pruned = lab.ok(&["network", "prune", "-f"]);
    let pruned: Vec<&str> = pruned.lines().skip(1).collect();
    assert_eq!(pruned, vec!["one"], "only the unused network goes");
    lab.ok(&["rm", "-f", "m"]);
    lab.ok(&["network", "rm", "two"]);
    assert_eq!(
        lab.json(&["network", "ls", "--format", "json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(
        !lab.host_links().iter().any(|l| l.starts_with("nd-")),
        "{:?}",
        lab.host_links()
    );
}

#[test]
fn bad_input_is_named_and_leaves_nothing_behind() {
    if !privileged("bad_input_is_named_and_leaves_nothing_behind") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&["network", "create", "--subnet", "10.30.0.0/24", "n1"]);
    lab.run_d("a", &["--network", "n1", "--ip", "10.30.0.10"]);
    let links = lab.host_links();
    let cases: &[(&[&str], &str)] = &[
        (
            &["network", "create", "--subnet", "10.40.0.0", "x"],
            "10.40.0.0",
        ),
        (
            &["network", "create", "--subnet", "10.40.0.5/24", "x"],
            "10.40.0.5/24",
        ),
        (
            &["network", "create", "--subnet", "10.40.0.0/31", "x"],
            "10.40.0.0/31",
        ),
        (
            &["network", "create", "--subnet", "10.40.0.0/32", "x"],
            "10.40.0.0/32",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.40.0.0/24",
                "--gateway",
                "10.41.0.1",
                "x",
            ],
            "10.41.0.1",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.40.0.0/24",
                "--gateway",
                "10.40.0.255",
                "x",
            ],
            "broadcast",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.40.0.0/24",
                "--gateway",
                "10.40.0.0",
                "x",
            ],
            "network address",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.40.0.0/24",
                "--ip-range",
                "10.41.0.0/25",
                "x",
            ],
            "10.41.0.0/25",
        ),
        (
            &["network", "create", "--subnet", "10.30.0.0/16", "x"],
            "n1",
        ),
        (&["network", "create", "n1"], "n1"),
        (&["network", "create", "bad name"], "bad name"),
        (
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.bridge.name=averyveryverylongname",
                "x",
            ],
            "averyveryverylongname",
        ),
        (
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.bridge.name=lo",
                "x",
            ],
            "lo",
        ),
        (&["network", "create", "-o", "colour=red", "x"], "colour"),
        (
            &[
                "run",
                "-d",
                "--name",
                "b",
                "--network",
                "n1",
                "--ip",
                "10.30.0.10",
                "--",
                "sleep",
                "1",
            ],
            "10.30.0.10",
        ),
        (
            &[
                "run",
                "-d",
                "--name",
                "b",
                "--network",
                "n1",
                "--ip",
                "10.31.0.10",
                "--",
                "sleep",
                "1",
            ],
            "10.31.0.10",
        ),
        (
            &[
                "run",
                "-d",
                "--name",
                "b",
                "--network",
                "n1",
                "--ip",
                "10.30.0.1",
                "--",
                "sleep",
                "1",
            ],
            "gateway",
        ),
        (
            &[
                "run",
                "-d",
                "--name",
                "b",
                "--network",
                "n1",
                "--ip",
                "10.30.0.999",
                "--",
                "sleep",
                "1",
            ],
            "10.30.0.999",
        ),
        (
            &[
                "run",
                "-d",
                "--name",
                "a",
                "--network",
                "n1",
                "--",
                "sleep",
                "1",
            ],
            "a",
        ),
        (&["run", "-d", "--name", "-b", "--", "sleep", "1"], "-b"),
        (
            &[
                "run",
                "-d",
                "--name",
                "b",
                "--network",
                "nope",
                "--",
                "sleep",
                "1",
            ],
            "nope",
        ),
        (
            &[
                "run",
                "-d",
                "--name",
                "b",
                "--network",
                "n1",
                "--",
                "/no/such/binary",
            ],
            "/no/such/binary",
        ),
        (
            &[
                "run",
                "-d",
                "--name",
                "b",
                "--mac-address",
                "01:00:5e:00:00:01",
                "--",
                "sleep",
                "1",
            ],
            "01:00:5e:00:00:01",
        ),
        (
            &[
                "run",
                "-d",
                "--name",
                "b",
                "--netns-path",
                "/tmp/not-a-namespace",
                "--",
                "sleep",
                "1",
            ],
            "/tmp/not-a-namespace",
        ),
        (&["network", "rm", "n1"], "a"),
        (&["network", "rm", "nope"], "nope"),
        (&["rm", "nope"], "nope"),
        (&["rm", "a"], "running"),
        (&["network", "connect", "n1", "nope"], "nope"),
        (&["network", "disconnect", "bridge", "a"], "not connected"),
    ];
    for (args, needle) in cases {
        let err = lab.fails(args);
        assert!(
            err.contains(needle),
            "netd {} should name {needle:?}, said: {err}",
            args.join(" ")
        );
    }
    assert_eq!(lab.host_links(), links, "no stray link");
    assert_eq!(lab.namespaces(), 1, "no stray namespace");
    assert_eq!(
        lab.json(&["ps", "--format", "json"])
            .as_array()
            .unwrap()
            .len(),
        1,
        "no stray container"
    );
    assert_eq!(
        lab.json(&["network", "ls", "--format", "json"])
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let n1 = &lab.json(&["network", "inspect", "n1"])[0];
    assert_eq!(n1["AddressesInUse"], 1, "no stray address reservation");
    // The next dynamic address is the lowest free one: nothing was kept by the failures.
    lab.ok(&["create", "--name", "b", "--network", "n1"]);
    assert_eq!(lab.ip("b", "n1"), "10.30.0.2");
}

#[test]
fn api_errors_are_json_with_proper_statuses() {
    if !privileged("api_errors_are_json_with_proper_statuses") {
        return;
    }
    let lab = Lab::new();
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
            .arg(lab.socket())
            .args(args)
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.to_string(), body.to_string())
    };
    let (code, body) = curl(&["-XPOST", "-d", "{not json", "http://netd/v1/networks"]);
    assert_eq!(code, "400");
    assert!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["message"].is_string());
    let (code, body) = curl(&[
        "-XPOST",
        "-d",
        r#"{"name":"x","colour":"red"}"#,
        "http://netd/v1/networks",
    ]);
    assert_eq!(code, "400");
    assert!(body.contains("colour"), "{body}");
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(2 << 20));
    let big_file = lab.dir.path().join("big.json");
    std::fs::write(&big_file, big).unwrap();
    let (code, body) = curl(&[
        "-XPOST",
        "--data-binary",
        &format!("@{}", big_file.display()),
        "http://netd/v1/networks",
    ]);
    assert_eq!(code, "413");
    assert!(body.contains("larger than"), "{body}");
    let (code, body) = curl(&["http://netd/v1/networks/nope"]);
    assert_eq!(
        (code.as_str(), body.contains("network nope not found")),
        ("404", true),
        "{body}"
    );
    let (code, _) = curl(&["-XDELETE", "http://netd/v1/networks/bridge"]);
    assert_eq!(code, "403");
    let (code, body) = curl(&["http://netd/v1/networks"]);
    assert_eq!(code, "200");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let mode = std::fs::metadata(lab.socket())
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.unwrap(), 0o600);
}
