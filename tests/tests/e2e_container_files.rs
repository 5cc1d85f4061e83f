//! Tier 3: a running process sees the hosts, resolv.conf and hostname files the daemon keeps
//! for its container: after `network connect` and `disconnect`, what the process reads
//! through its bind mounts is what the daemon wrote.

use std::process::Command;

use integration_tests::{privileged, Lab};

const FILES: [&str; 3] = ["hosts", "resolv.conf", "hostname"];

/// `/etc/FILE` as the container's first process sees it (its own mount namespace).
fn seen(pid: u64, file: &str) -> String {
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "cat", &format!("/etc/{file}")])
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_running_process_sees_its_files_change() {
    if !privileged("a_running_process_sees_its_files_change") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&["network", "create", "--subnet", "10.87.0.0/24", "one"]);
    lab.ok(&["network", "create", "--subnet", "10.88.0.0/24", "two"]);
    // On the default bridge: the host's resolvers, no embedded DNS yet.
    lab.run_d("c1", &[]);
    let inspect = lab.inspect("c1");
    let pid = inspect["State"]["Pid"].as_u64().expect("a running process");
    let id = inspect["Id"].as_str().unwrap().to_string();
    let dir = lab.state_dir().join("containers").join(&id);
    let written = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    let before: Vec<String> = FILES.iter().map(|f| seen(pid, f)).collect();

    lab.ok(&["network", "connect", "one", "c1"]);
    lab.ok(&["network", "connect", "two", "c1"]);
    let ip = lab.ip("c1", "two");
    assert!(written("hosts").contains(&ip), "the daemon wrote {ip}");
    for file in FILES {
        assert_eq!(seen(pid, file), written(file), "{file} after connect");
    }
    assert!(seen(pid, "hosts").contains(&ip));
    assert_ne!(seen(pid, "resolv.conf"), before[1], "the embedded DNS now");

    lab.ok(&["network", "disconnect", "two", "c1"]);
    for file in FILES {
        assert_eq!(seen(pid, file), written(file), "{file} after disconnect");
    }
    assert!(!seen(pid, "hosts").contains(&ip));
}
