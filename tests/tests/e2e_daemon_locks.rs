//! Tier 3: one daemon per state. A second daemon that shares one path with a running daemon
//! (its network namespace, state dir, bpffs dir or API socket) refuses at once, names the
//! path and the holder's PID, and the first daemon loses nothing. A SIGKILLed daemon's
//! locks and socket are taken over by the next one.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{netd_bin, privileged, unique, wait_until, Lab};

/// A dir removed when the test ends, however it ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The second daemon's paths: its own, but for the one it shares.
struct Second {
    netns: String,
    state_dir: PathBuf,
    bpffs: PathBuf,
    socket: PathBuf,
}

/// Starts a daemon on `paths` and waits (bounded) for it to exit: (success, what it said).
fn run_second(paths: &Second) -> (bool, String) {
    let mut child = Command::new(netd_bin())
        .arg("--socket")
        .arg(&paths.socket)
        .arg("daemon")
        .arg("--state-dir")
        .arg(&paths.state_dir)
        .arg("--bpffs")
        .arg(&paths.bpffs)
        .arg("--netns")
        .arg(&paths.netns)
        .arg("--metrics-addr")
        .arg("none")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("a second daemon");
    let exited = wait_until(Duration::from_secs(20), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("second daemon's output");
    (
        exited && out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What the first daemon has: its host links, networks and containers.
fn holdings(lab: &Lab) -> (Vec<String>, serde_json::Value, serde_json::Value) {
    let mut links = lab.host_links();
    links.sort();
    (
        links,
        lab.json(&["network", "ls", "--format", "json"]),
        lab.json(&["ps", "--format", "json"]),
    )
}

#[test]
fn a_second_daemon_on_any_shared_path_refuses_and_the_first_loses_nothing() {
    if !privileged("a_second_daemon_on_any_shared_path_refuses_and_the_first_loses_nothing") {
        return;
    }
    let mut lab = Lab::new();
    lab.ok(&["network", "create", "--subnet", "10.86.0.0/24", "kept"]);
    lab.run_d("c1", &["--network", "kept"]);
    lab.run_d("c2", &["--network", "kept"]);
    let before = holdings(&lab);
    assert_eq!(before.2.as_array().map(Vec::len), Some(2), "{}", before.2);
    let other_ns = lab.add_namespace("netd-second");
    let own = lab.dir.path().join("second");
    let own_bpffs = PathBuf::from("/sys/fs/bpf").join(unique("netd-second"));
    // A second daemon that wrongly ran may have pinned maps there: removed even on failure.
    let _cleanup = RemoveOnDrop(own_bpffs.clone());
    let fresh = || Second {
        netns: other_ns.clone(),
        state_dir: own.join("state"),
        bpffs: own_bpffs.clone(),
        socket: own.join("netd.sock"),
    };
    let pid = format!("PID {}", lab.daemon_pid());
    let cases = [
        (
            "network namespace",
            format!("/run/netns/{}", lab.netns),
            Second {
                netns: lab.netns.clone(),
                ..fresh()
            },
        ),
        (
            "state dir",
            lab.state_dir().display().to_string(),
            Second {
                state_dir: lab.state_dir(),
                ..fresh()
            },
        ),
        (
            "bpffs dir",
            lab.bpffs.display().to_string(),
            Second {
                bpffs: lab.bpffs.clone(),
                ..fresh()
            },
        ),
        (
            "socket",
            lab.socket().display().to_string(),
            Second {
                socket: lab.socket(),
                ..fresh()
            },
        ),
    ];
    for (what, path, paths) in &cases {
        let (ok, said) = run_second(paths);
        assert!(!ok, "a second daemon sharing the {what} ran: {said}");
        println!("{what}: {}", said.trim());
        assert!(
            said.contains(what) && said.contains(&pid),
            "the refusal names the {what} and {pid}: {said}"
        );
        assert!(said.contains(path.as_str()), "names {path}: {said}");
        assert_eq!(
            holdings(&lab),
            before,
            "the first daemon kept everything ({what})"
        );
    }

    // A crashed daemon's locks go with it: the next one takes over its socket and state.
    lab.kill_daemon();
    lab.start_daemon();
    assert_eq!(holdings(&lab), before);
}
