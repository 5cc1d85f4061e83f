//! The state dir on a full file system (a small tmpfs of the test's own): every write is all
//! or nothing, nothing observed is lost, the daemon starts and serves, and `rm` and
//! `network rm` work and free space.

use std::{path::Path, process::Command, time::Duration};

use integration_tests::{privileged, wait_until, Lab};
use serde_json::Value;

/// A tmpfs at a path of the test's, unmounted (lazily: the daemon may still hold it) on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "netd-full",
            ])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs at {}", at.display());
        Self(at.to_path_buf())
    }

    /// Fills the file system with one file until it refuses more.
    fn fill(&self) {
        let out = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", self.0.join("filler").display()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("No space left"), "dd: {err}");
        // The last blocks too: small files take a block each.
        for i in 0..64 {
            let _ = std::fs::write(self.0.join(format!("filler{i}")), [0u8; 512]);
        }
    }

    fn free(&self) {
        for entry in std::fs::read_dir(&self.0).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("filler") {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn reserved(lab: &Lab) -> String {
    lab.host(&["cat", "/proc/sys/net/ipv4/ip_local_reserved_ports"])
        .trim()
        .to_string()
}

fn tmp_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in walk(dir) {
        if entry.extension().is_some_and(|e| e == "tmp") {
            found.push(entry.display().to_string());
        }
    }
    found
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.starts_with(dir.join("netns")) {
            all.extend(walk(&p));
        }
        all.push(p);
    }
    all
}

fn container_file(lab: &Lab, name: &str, file: &str) -> String {
    let id = lab.inspect(name)["Id"].as_str().unwrap().to_string();
    std::fs::read_to_string(lab.state_dir().join("containers").join(id).join(file)).unwrap()
}

#[test]
fn a_full_state_disk_corrupts_nothing_and_blocks_no_recovery() {
    if !privileged("a_full_state_disk_corrupts_nothing_and_blocks_no_recovery") {
        return;
    }
    let mut lab = Lab::unstarted();
    let disk = Tmpfs::mount(&lab.state_dir(), "4m");
    lab.start_daemon();
    let operator = reserved(&lab);
    lab.ok(&["network", "create", "--subnet", "10.61.0.0/24", "n1"]);
    lab.ok(&["network", "create", "--subnet", "10.62.0.0/24", "n2"]);
    lab.run_d("a", &["--network", "n1", "-p", "8080:80"]);
    lab.run_d("e", &["--network", "n1"]);
    let hosts_before = container_file(&lab, "a", "hosts");
    let links_before = lab.host_links();
    let reserved_before = reserved(&lab);
    assert!(reserved_before.contains("8080"), "{reserved_before}");

    disk.fill();
    // A new container cannot be recorded: refused, naming the full disk, nothing made.
    let err = lab.fails(&[
        "run",
        "-d",
        "--name",
        "c",
        "--network",
        "n1",
        "-p",
        "8081:80",
        "--",
        "sleep",
        "100",
    ]);
    assert!(err.contains("full"), "{err}");
    assert_eq!(lab.host_links(), links_before, "a link was left");
    assert_eq!(reserved(&lab), reserved_before, "the sysctl changed");
    // (By name: `inspect c` would find any container whose id starts with c.)
    let ps = lab.json(&["ps", "--format", "json"]);
    let names: Vec<&str> = ps
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["Name"].as_str())
        .collect();
    assert!(!names.contains(&"c"), "c exists: {ps}");
    // A connect that cannot be recorded leaves the container's files as they were.
    let err = lab.fails(&["network", "connect", "n2", "a"]);
    assert!(err.contains("full"), "{err}");
    assert_eq!(container_file(&lab, "a", "hosts"), hosts_before);
    assert_eq!(lab.host_links(), links_before, "a link was left");
    assert!(
        tmp_files(&lab.state_dir()).is_empty(),
        "{:?}",
        tmp_files(&lab.state_dir())
    );

    // An exit observed on the full disk is known at once, and stop answers.
    let pid = lab.inspect("e")["State"]["Pid"].as_i64().unwrap();
    // SAFETY: kill(2) on the test container's process.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let exited = wait_until(Duration::from_secs(10), || {
        lab.inspect("e")["State"]["Status"] == "exited"
    });
    assert!(exited, "the exit was lost: {}", lab.inspect("e")["State"]);
    lab.ok(&["stop", "e"]);

    // A restart on the full disk: the daemon starts and serves, read-mostly.
    lab.kill_daemon();
    lab.start_daemon();
    assert_eq!(
        lab.inspect("e")["State"]["Status"],
        "exited",
        "after the restart"
    );
    // rm and network rm work, and free space and the reservation.
    lab.ok(&["rm", "-f", "a"]);
    assert_eq!(reserved(&lab), operator, "8080 stays reserved");
    lab.ok(&["network", "rm", "n2"]);

    // Space again: what was held in memory reaches the disk, and the bookkeeping is right
    // after a restart.
    disk.free();
    let e_id = lab.inspect("e")["Id"].as_str().unwrap().to_string();
    let config = lab
        .state_dir()
        .join("containers")
        .join(&e_id)
        .join("config.json");
    let recorded = wait_until(Duration::from_secs(15), || {
        std::fs::read_to_string(&config)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|c| !c["process"]["exit_code"].is_null())
    });
    assert!(recorded, "the exit never reached the disk");
    std::fs::write(lab.state_dir().join("networks/stale.json.tmp"), b"x").unwrap();
    std::fs::write(lab.state_dir().join("reconciles.json.tmp"), b"x").unwrap();
    lab.stop_daemon();
    lab.start_daemon();
    assert!(
        tmp_files(&lab.state_dir()).is_empty(),
        "{:?}",
        tmp_files(&lab.state_dir())
    );
    lab.ok(&["rm", "-f", "e"]);
    assert_eq!(
        reserved(&lab),
        operator,
        "netd's ports counted as the operator's"
    );
    lab.run_d("a2", &["--network", "n1", "-p", "8080:80"]);
    assert!(reserved(&lab).contains("8080"));
    lab.ok(&["rm", "-f", "a2"]);
    assert_eq!(reserved(&lab), operator);
    lab.ok(&["network", "rm", "n1"]);
    lab.kill_daemon();
    drop(disk);
}
