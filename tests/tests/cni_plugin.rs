//! netd-cni against the CNI spec: a harness of ours execs it as a runtime would (environment,
//! configuration on stdin, result or error on stdout), on namespaces the test makes, with a
//! lab's daemon behind it.

use std::{process::Command, time::Duration};

use integration_tests::{
    cni::{cni, conf, Call, Netns},
    peer_script, privileged, wait_until, Lab, UPLINK_IP,
};
use serde_json::{json, Value};

#[test]
fn add_check_del_follow_the_spec() {
    if !privileged("add_check_del_follow_the_spec") {
        return;
    }
    let lab = Lab::with_external();
    let links_before = lab.host_links();
    let ports_before = lab.published_entries();
    let (code, versions) = cni(&Call::new("VERSION"), "");
    assert_eq!(code, 0);
    assert_eq!(
        versions["supportedVersions"],
        json!(["0.4.0", "1.0.0", "1.1.0"])
    );

    let ns = Netns::new();
    let path = ns.path();
    let runtime = json!({"runtimeConfig": {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "ips": ["10.72.0.40/24"], "mac": "02:00:00:00:00:40", "aliases": {"podnet": ["web"]},
    }});
    let add = Call {
        container_id: "c0ffee0000000001",
        netns: &path,
        args: "IgnoreUnknown=1;K8S_POD_NAME=webpod",
        ..Call::new("ADD")
    };
    let (code, result) = cni(&add, &conf(&lab, "1.1.0", runtime.clone()));
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["cniVersion"], "1.1.0");
    assert_eq!(
        result["ips"][0],
        json!({"address": "10.72.0.40/24", "gateway": "10.72.0.1", "interface": 1})
    );
    assert_eq!(
        result["interfaces"][1],
        json!({"name": "eth0", "mac": "02:00:00:00:00:40", "sandbox": path})
    );
    assert_eq!(
        result["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.72.0.1"}])
    );
    assert_eq!(result["dns"]["nameservers"], json!(["10.72.0.1"]));
    let inside = Command::new("ip")
        .args(["-n", &ns.0, "-o", "addr", "show", "eth0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&inside.stdout).contains("10.72.0.40/24"));

    // First-class: its name, origin and alias in netd, and its published port from outside.
    let c = lab.inspect("webpod");
    assert_eq!(
        c["Origin"],
        json!({"Kind": "cni", "RuntimeId": "c0ffee0000000001"})
    );
    assert_eq!(
        c["NetworkSettings"]["Networks"]["podnet"]["Aliases"],
        json!(["web"])
    );
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            "python3",
            &peer_script(),
            "tcp-server",
            "80",
            "1",
        ])
        .spawn()
        .unwrap();
    lab.wait_listening("webpod", "tcp", 80);
    let out = lab.external(&["python3", &peer_script(), "tcp-client", UPLINK_IP, "8080"]);
    let peer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(peer.starts_with("peer=10.99.0.2:"), "{out:?}");
    let _ = server.wait();

    // 0.4.0 results carry the address's version; a second ADD of one attachment is refused.
    let ns2 = Netns::new();
    let path2 = ns2.path();
    let add2 = Call {
        container_id: "c0ffee0000000002",
        netns: &path2,
        ..Call::new("ADD")
    };
    let (code, old) = cni(&add2, &conf(&lab, "0.4.0", json!({})));
    assert_eq!(
        (code, old["ips"][0]["version"].clone()),
        (0, json!("4")),
        "{old}"
    );
    let (code, again) = cni(&add2, &conf(&lab, "0.4.0", json!({})));
    assert_eq!((code, again["code"].clone()), (1, json!(7)), "{again}");
    assert!(
        again["msg"].as_str().unwrap().contains("already attached"),
        "{again}"
    );

    // A second network of the same container is one more interface of it.
    let second = Call {
        ifname: "eth1",
        ..add
    };
    let other = conf(
        &lab,
        "1.1.0",
        json!({"name": "other", "subnet": "10.76.0.0/24"}),
    );
    let (code, more) = cni(&second, &other);
    assert_eq!(code, 0, "{more}");
    assert_eq!(more["interfaces"][1]["name"], "eth1");
    let nets = lab.inspect("webpod")["NetworkSettings"]["Networks"].clone();
    assert_eq!(nets.as_object().unwrap().len(), 2, "{nets}");
    let del_second = Call {
        command: "DEL",
        ..second
    };
    assert_eq!(cni(&del_second, &other), (0, Value::Null));
    let nets = lab.inspect("webpod")["NetworkSettings"]["Networks"].clone();
    assert_eq!(
        nets.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["podnet"]
    );
    lab.ok(&["network", "rm", "other"]);

    // CHECK: all there, then the host end gone.
    let check = Call {
        command: "CHECK",
        ..add
    };
    let prev = json!({"prevResult": result});
    assert_eq!(
        cni(&check, &conf(&lab, "1.1.0", prev.clone())),
        (0, Value::Null)
    );
    let host_end = c["NetworkSettings"]["Networks"]["podnet"]["HostInterface"]
        .as_str()
        .unwrap()
        .to_string();
    lab.host(&["ip", "link", "del", &host_end]);
    let (code, err) = cni(&check, &conf(&lab, "1.1.0", prev));
    assert_eq!((code, err["code"].clone()), (1, json!(100)), "{err}");
    assert!(
        err["details"].as_str().unwrap().contains(&host_end),
        "{err}"
    );

    // DEL twice, and DEL once the namespace is gone.
    let del = Call {
        command: "DEL",
        ..add
    };
    assert_eq!(cni(&del, &conf(&lab, "1.1.0", json!({}))), (0, Value::Null));
    assert_eq!(cni(&del, &conf(&lab, "1.1.0", json!({}))), (0, Value::Null));
    drop(ns2);
    let del2 = Call {
        command: "DEL",
        ..add2
    };
    assert_eq!(
        cni(&del2, &conf(&lab, "0.4.0", json!({}))),
        (0, Value::Null)
    );
    assert_eq!(lab.json(&["ps", "--format", "json"]), json!([]));
    assert_eq!(lab.published_entries(), ports_before);
    lab.ok(&["network", "rm", "podnet"]);
    assert_eq!(lab.host_links(), links_before);
}

#[test]
fn errors_use_the_specs_codes_and_leave_nothing() {
    if !privileged("errors_use_the_specs_codes_and_leave_nothing") {
        return;
    }
    let lab = Lab::with_external();
    let state = || {
        (
            lab.json(&["network", "ls", "--format", "json"]),
            lab.json(&["ps", "--format", "json"]),
            lab.host_links(),
        )
    };
    let before = state();
    let ns = Netns::new();
    let path = ns.path();
    let add = Call {
        container_id: "bad0000000000001",
        netns: &path,
        ..Call::new("ADD")
    };
    let rc = |v: Value| json!({"runtimeConfig": v});
    let cases: Vec<(Call, String, u32, &str)> = vec![
        (Call::new("ADD"), "{not json".into(), 6, "not valid JSON"),
        (Call { ..add }, conf(&lab, "0.1.0", json!({})), 1, "0.1.0"),
        (
            Call { command: "", ..add },
            conf(&lab, "1.1.0", json!({})),
            4,
            "CNI_COMMAND",
        ),
        (
            Call {
                command: "FROB",
                ..add
            },
            conf(&lab, "1.1.0", json!({})),
            4,
            "FROB",
        ),
        (
            Call { netns: "", ..add },
            conf(&lab, "1.1.0", json!({})),
            4,
            "CNI_NETNS",
        ),
        (
            Call {
                container_id: "",
                ..add
            },
            conf(&lab, "1.1.0", json!({})),
            4,
            "CNI_CONTAINERID",
        ),
        (
            Call { ..add },
            conf(&lab, "1.1.0", json!({"subnet": null, "network": "nonet"})),
            7,
            "nonet",
        ),
        (
            Call { ..add },
            conf(&lab, "1.1.0", rc(json!({"ips": ["fd00::5/64"]}))),
            7,
            "fd00::5/64",
        ),
        (
            Call { ..add },
            conf(&lab, "1.1.0", rc(json!({"ips": ["10.73.0.5/24"]}))),
            7,
            "10.73.0.5",
        ),
        (
            Call { ..add },
            conf(&lab, "1.1.0", rc(json!({"aliases": ["not a name"]}))),
            7,
            "not a name",
        ),
        (
            Call { ..add },
            conf(&lab, "1.1.0", rc(json!({"mac": "zz:00"}))),
            7,
            "zz:00",
        ),
        (
            Call { ..add },
            conf(
                &lab,
                "1.1.0",
                rc(
                    json!({"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "sctp"}]}),
                ),
            ),
            7,
            "sctp",
        ),
        (
            Call {
                ifname: "an-interface-name-too-long",
                ..add
            },
            conf(&lab, "1.1.0", json!({})),
            7,
            "an-interface-name-too-long",
        ),
        (
            Call {
                command: "CHECK",
                ..add
            },
            conf(&lab, "1.1.0", json!({"prevResult": {}})),
            3,
            "bad0000000000001",
        ),
        (
            Call {
                command: "STATUS",
                ..add
            },
            conf(&lab, "1.1.0", json!({"socket": "/nonexistent/netd.sock"})),
            50,
            "/nonexistent/netd.sock",
        ),
    ];
    for (call, stdin, code, named) in &cases {
        let (exit, err) = cni(call, stdin);
        assert_eq!(exit, 1, "{} {stdin}: {err}", call.command);
        assert_eq!(err["code"], *code, "{} {stdin}: {err}", call.command);
        let text = format!("{} {}", err["msg"], err["details"]);
        assert!(
            text.contains(named),
            "{} {stdin}: {text} does not name {named}",
            call.command
        );
        assert_eq!(state(), before, "{} {stdin} left something", call.command);
    }

    // GC removes the attachments the runtime no longer lists, and only those.
    let ns2 = Netns::new();
    let path2 = ns2.path();
    let keep = Call {
        container_id: "keep000000000001",
        netns: &path,
        ..Call::new("ADD")
    };
    let drop_me = Call {
        container_id: "gone000000000001",
        netns: &path2,
        ..Call::new("ADD")
    };
    assert_eq!(cni(&keep, &conf(&lab, "1.1.0", json!({}))).0, 0);
    assert_eq!(cni(&drop_me, &conf(&lab, "1.1.0", json!({}))).0, 0);
    let valid = json!({"cni.dev/valid-attachments": [{"containerID": "keep000000000001", "ifname": "eth0"}]});
    assert_eq!(
        cni(&Call::new("GC"), &conf(&lab, "1.1.0", valid)),
        (0, Value::Null)
    );
    let ps = lab.json(&["ps", "--format", "json"]);
    let ids: Vec<&str> = ps
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["Origin"]["RuntimeId"].as_str())
        .collect();
    assert_eq!(ids, ["keep000000000001"]);
    assert_eq!(
        cni(
            &Call {
                command: "STATUS",
                ..keep
            },
            &conf(&lab, "1.1.0", json!({}))
        ),
        (0, Value::Null)
    );
}

#[test]
fn a_pod_whose_namespace_died_is_released_without_a_del() {
    if !privileged("a_pod_whose_namespace_died_is_released_without_a_del") {
        return;
    }
    let lab = Lab::new();
    let ports_before = lab.published_entries();
    let maps = ["NETD_ENDPOINTS", "NETD_MEMBERS", "NETD_IFACE_CTRS"];
    let entries = || maps.map(|m| lab.map_entries(m));
    let entries_before = entries();
    let ns = Netns::new();
    let path = ns.path();
    let runtime = json!({"runtimeConfig": {
        "portMappings": [{"hostPort": 8081, "containerPort": 80, "protocol": "udp"}],
        "ips": ["10.72.0.50/24"],
    }});
    let add = Call {
        container_id: "dead000000000001",
        netns: &path,
        args: "K8S_POD_NAME=gonepod",
        ..Call::new("ADD")
    };
    let (code, result) = cni(&add, &conf(&lab, "1.1.0", runtime.clone()));
    assert_eq!(code, 0, "{result}");
    assert_eq!(lab.published_entries(), ports_before + 1);
    let links = lab.host_links();

    // The runtime's container dies and its namespace with it; no DEL comes.
    assert!(Command::new("ip")
        .args(["netns", "del", &ns.0])
        .status()
        .unwrap()
        .success());
    let released = wait_until(Duration::from_secs(15), || {
        lab.json(&["ps", "--format", "json"]) == json!([])
    });
    assert!(released, "the pod is released:\n{}", lab.daemon_log());
    assert_eq!(
        lab.published_entries(),
        ports_before,
        "its port is unpublished"
    );
    assert!(
        links.len() > lab.host_links().len(),
        "its host end went with the namespace"
    );
    assert!(
        lab.daemon_log()
            .contains("is gone: releasing its addresses and ports"),
        "the release is logged"
    );
    // Its endpoint, member and counter entries go with it (the repair after the release
    // forgets them).
    assert!(
        wait_until(Duration::from_secs(10), || entries() == entries_before),
        "datapath entries left after the release: {:?} against {entries_before:?}",
        entries()
    );

    // Its address and host port are free for the next pod.
    let ns = Netns::new();
    let path = ns.path();
    let again = Call {
        container_id: "dead000000000002",
        netns: &path,
        ..Call::new("ADD")
    };
    let (code, result) = cni(&again, &conf(&lab, "1.1.0", runtime));
    assert_eq!(code, 0, "{result}");
    let del = Call {
        command: "DEL",
        ..again
    };
    assert_eq!(cni(&del, &conf(&lab, "1.1.0", json!({}))), (0, Value::Null));
    lab.ok(&["network", "rm", "podnet"]);
}
