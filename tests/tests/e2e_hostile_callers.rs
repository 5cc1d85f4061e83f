//! The daemon against hostile callers: namespaces that are the host's under another name,
//! ids that are no ASCII or share their first characters, removals through the wrong door,
//! pools and retries the plugin must refuse, and processes `netd exec` left behind.

use std::{process::Command, time::Duration};

use integration_tests::{
    cni::{cni, conf, Call, Netns},
    docker::{plugin_call, plugin_endpoint, plugin_network, plugin_teardown},
    privileged, unique, wait_until, Lab,
};
use serde_json::json;

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
    let (net, ep) = ("ab".repeat(32), "cd".repeat(32));
    plugin_network(&plugin, &net, "10.66.0.0/24");
    plugin_endpoint(&plugin, &net, &ep, "10.66.0.5/24");

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
    plugin_teardown(&plugin, &net, &ep);
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
    plugin_network(&plugin, &net, "10.66.0.0/24");
    plugin_endpoint(&plugin, &net, odd, "10.66.0.6/24");
    plugin_teardown(&plugin, &net, odd);

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
    let (net, ep) = ("ab".repeat(32), "cd".repeat(32));
    plugin_network(&plugin, &net, "10.66.0.0/24");
    plugin_endpoint(&plugin, &net, &ep, "10.66.0.7/24");
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
    plugin_teardown(&plugin, &net, &ep);
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
    let (net, ep) = ("ab".repeat(32), "cd".repeat(32));
    plugin_network(&plugin, &net, "10.66.0.0/24");
    let create = json!({"NetworkID": net, "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.67.0.0/24"}]});
    let (_, retry) = plugin_call(&plugin, "NetworkDriver.CreateNetwork", &create.to_string());
    let why = retry["Err"].as_str().unwrap_or_default();
    assert!(
        why.contains("10.66.0.0/24") && why.contains("10.67.0.0/24"),
        "{retry}"
    );
    plugin_endpoint(&plugin, &net, &ep, "10.66.0.5/24");
    let endpoint =
        json!({"NetworkID": net, "EndpointID": ep, "Interface": {"Address": "10.66.0.6/24"}});
    let (_, retry) = plugin_call(
        &plugin,
        "NetworkDriver.CreateEndpoint",
        &endpoint.to_string(),
    );
    let why = retry["Err"].as_str().unwrap_or_default();
    assert!(
        why.contains("10.66.0.5") && why.contains("10.66.0.6"),
        "{retry}"
    );
    plugin_teardown(&plugin, &net, &ep);
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
