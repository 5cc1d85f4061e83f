//! Tier 3: what the daemon writes is its own (its state and the containers' logs, which may
//! hold secrets: 0700 dirs, 0600 files), a container's process still gets the usual umask,
//! and the CLI ends quietly when its reader goes away (`netd ps | head -1`).

use std::{
    os::unix::{fs::PermissionsExt, process::ExitStatusExt},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{netd_bin, privileged, wait_until, Lab};

/// Files bind-mounted into containers, where any user must read them (in a 0700 dir).
const FOR_CONTAINERS: [&str; 3] = ["hosts", "resolv.conf", "hostname"];

/// Every file and dir under `dir` that others may read, write or enter (the files for
/// containers: write); the namespaces' bind mounts (nsfs files) are not the daemon's to mode.
fn open_to_others(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "netns") {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let for_containers = path
            .file_name()
            .is_some_and(|n| FOR_CONTAINERS.iter().any(|f| n == *f));
        let closed = if for_containers { 0o022 } else { 0o077 };
        if meta.permissions().mode() & closed != 0 {
            found.push(format!(
                "{} {:o}",
                path.display(),
                meta.permissions().mode() & 0o777
            ));
        }
        if meta.is_dir() {
            open_to_others(&path, found);
        }
    }
}

#[test]
fn state_and_logs_are_private_and_the_cli_survives_a_closed_pipe() {
    if !privileged("state_and_logs_are_private_and_the_cli_survives_a_closed_pipe") {
        return;
    }
    let lab = Lab::new();
    lab.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "--",
        "sh",
        "-c",
        "echo secret; umask; sleep 300",
    ]);
    let logged = wait_until(Duration::from_secs(10), || {
        lab.ok(&["logs", "talker"]).contains("0022")
    });
    assert!(
        logged,
        "the container logs its umask: {}",
        lab.ok(&["logs", "talker"])
    );
    assert!(lab.ok(&["logs", "talker"]).contains("secret"));
    let state = lab.state_dir();
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the state dir");
    let mut found = Vec::new();
    open_to_others(&state, &mut found);
    assert!(found.is_empty(), "open to others: {found:?}");
    // What a container's users read: a process that is not root reads its resolv.conf.
    let resolv = lab.exec_ok(
        "talker",
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "cat",
            "/etc/resolv.conf",
        ],
    );
    assert!(resolv.contains("nameserver"), "{resolv}");

    // A reader that is gone before the first line: EPIPE ends the CLI (SIGPIPE), no panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(netd_bin())
        .env("NETD_SOCKET", lab.socket())
        .args(["ps"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("panicked"), "{said}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {said}",
        out.status
    );
}
