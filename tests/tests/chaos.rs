//! Tier 3 chaos: the daemon is SIGKILLed at random moments while two clients churn
//! (containers run and removed, with published ports and in a runtime-provided namespace,
//! networks made and removed, containers connected and disconnected, ports published on
//! running containers). After each kill the
//! daemon starts again and every invariant is checked: what the kernel and the state dir hold
//! is exactly what the state says, and nothing belongs to nothing. The seed is printed;
//! `NETD_CHAOS_SEED=N` replays a run (the kill moments still fall where the machine puts
//! them).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::Duration,
};

use integration_tests::{netd_bin, privileged, wait_until, Lab};
use serde_json::Value;

const KILLS: usize = 100;
const CLIENTS: usize = 2;
const NAMES: usize = 6;
const NETWORKS: usize = 3;

/// xorshift64*: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the clients run in containers: a marker only this test's processes carry.
fn marker() -> String {
    format!("6001.{}", std::process::id())
}

/// One random operation through the CLI; failures (the daemon is down, a name is taken, a
/// network is in use) are part of the churn.
fn churn_once(socket: &Path, rng: &mut Rng, runtime_ns: &[String]) {
    let name = format!("c{}", rng.below(NAMES));
    let net = rng.below(NETWORKS);
    let network = format!("n{net}");
    let marker = marker();
    let mut args: Vec<String> = match rng.below(11) {
        0..=2 => {
            let mut a = vec!["run", "-d", "--name", &name, "--network", &network];
            let port;
            if rng.below(2) == 0 {
                port = format!("{}:80", 18000 + rng.below(NAMES * 4));
                a.extend(["-p", &port]);
            }
            // The last name's container lives in a namespace a runtime made.
            let ns;
            if name == format!("c{}", NAMES - 1) {
                ns = runtime_ns[0].clone();
                a.extend(["--netns-path", &ns]);
            }
            a.extend(["--", "sleep", &marker]);
            a.into_iter().map(String::from).collect()
        }
        3..=4 => vec!["rm".into(), "-f".into(), name],
        5 => vec![
            "network".into(),
            "create".into(),
            "--subnet".into(),
            format!("10.95.{net}.0/24"),
            network,
        ],
        6 => vec!["network".into(), "rm".into(), network],
        7..=8 => vec!["network".into(), "connect".into(), network, name],
        9 => vec!["network".into(), "disconnect".into(), network, name],
        // Published on a running container.
        _ => vec![
            "port".into(),
            name,
            "-p".into(),
            format!("{}:81", 18100 + rng.below(NAMES * 4)),
        ],
    };
    args.insert(0, socket.display().to_string());
    args.insert(0, "--socket".into());
    let _ = Command::new(netd_bin())
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

#[test]
fn a_hundred_sigkills_during_churn_leave_exactly_the_state() {
    if !privileged("a_hundred_sigkills_during_churn_leave_exactly_the_state") {
        return;
    }
    let seed = std::env::var("NETD_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("chaos seed {seed} (NETD_CHAOS_SEED={seed} replays it)");
    let mut lab = Lab::new();
    let _sleepers = Sleepers;
    let runtime_ns = vec![format!("/run/netns/{}", lab.add_namespace("nr"))];
    let rulesets = lab.rulesets();
    let per_port = entries_per_port(&lab);
    let socket = lab.socket();

    let churning = AtomicBool::new(false);
    let busy = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for client in 0..CLIENTS {
            let (socket, runtime_ns) = (&socket, &runtime_ns);
            let (churning, busy, done) = (&churning, &busy, &done);
            s.spawn(move || {
                let mut rng = Rng(seed.wrapping_add(client as u64 * 0x9e37_79b9));
                while !done.load(Ordering::SeqCst) {
                    busy.fetch_add(1, Ordering::SeqCst);
                    if churning.load(Ordering::SeqCst) {
                        churn_once(socket, &mut rng, runtime_ns);
                        busy.fetch_sub(1, Ordering::SeqCst);
                    } else {
                        busy.fetch_sub(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            });
        }
        let mut rng = Rng(seed ^ 0x5eed);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for kill in 1..=KILLS {
                churning.store(true, Ordering::SeqCst);
                // The kill falls at a random moment of the churn.
                std::thread::sleep(Duration::from_millis(20 + rng.below(300) as u64));
                lab.kill_daemon();
                churning.store(false, Ordering::SeqCst);
                let idle = wait_until(Duration::from_secs(30), || busy.load(Ordering::SeqCst) == 0);
                assert!(idle, "the clients stop");
                lab.start_daemon();
                if let Err(broken) = check(&lab, per_port, &rulesets) {
                    panic!("after kill {kill} of seed {seed}: {broken}");
                }
            }
        }));
        done.store(true, Ordering::SeqCst);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
    let left = lab.json(&["ps", "--format", "json"]);
    println!(
        "{KILLS} kills; {} containers at the end",
        left.as_array().map_or(0, Vec::len)
    );
    // What the restarts had to clean, for the record: which half-made things the kills hit.
    let log = lab.daemon_log();
    for what in [
        "removing orphan link",
        "removing half-made bridge",
        "removing incomplete state",
        "removing orphan namespace",
        "killing process",
        "unpublishing",
        "recreating interface",
        "finishing the removal",
    ] {
        println!("{:>5} x {what}", log.matches(what).count());
    }
}

/// NETD_PORTS entries one published TCP port takes.
fn entries_per_port(lab: &Lab) -> u64 {
    let before = lab.published_entries();
    lab.ok(&[
        "run", "-d", "--name", "probe", "-p", "17999:80", "--", "sleep", "60",
    ]);
    let per_port = lab.published_entries() - before;
    lab.ok(&["rm", "-f", "probe"]);
    assert_eq!(lab.published_entries(), before);
    per_port
}

/// Every invariant; the first broken one, described.
fn check(lab: &Lab, per_port: u64, rulesets: &(String, String)) -> Result<(), String> {
    let containers = lab.json(&["ps", "--format", "json"]);
    let containers = containers.as_array().cloned().unwrap_or_default();
    let networks = lab.json(&["network", "ls", "--format", "json"]);
    let networks = networks.as_array().cloned().unwrap_or_default();

    // Links: the marked ones are exactly the networks' bridges and the endpoints' host ends.
    let mut expected: BTreeSet<String> = networks
        .iter()
        .filter_map(|n| n["Options"]["com.docker.network.bridge.name"].as_str())
        .map(String::from)
        .collect();
    let mut addresses: BTreeMap<String, String> = BTreeMap::new();
    let mut endpoints = 0;
    let mut ports = 0;
    for c in &containers {
        let name = c["Name"].as_str().unwrap_or("?").to_string();
        for (net, e) in c["NetworkSettings"]["Networks"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if let Some(host) = e["HostInterface"].as_str().filter(|h| !h.is_empty()) {
                expected.insert(host.to_string());
                endpoints += 1;
            }
            let ip = format!("{net} {}", e["IPAddress"].as_str().unwrap_or(""));
            if let Some(other) = addresses.insert(ip.clone(), name.clone()) {
                return Err(format!("{other} and {name} share {ip}"));
            }
        }
        // Ports are published to a container's first interface; one with none has none.
        if addresses.values().any(|owner| *owner == name) {
            ports += published_of(c);
        }
    }
    let marked = marked_links(lab);
    if marked != expected {
        return Err(format!(
            "marked links {marked:?} are not the state's {expected:?}\n{}",
            lab.daemon_log()
        ));
    }
    let unmarked: Vec<String> = lab
        .host_links()
        .into_iter()
        .filter(|l| l.starts_with("nd-") && !marked.contains(l))
        .collect();
    if !unmarked.is_empty() {
        return Err(format!("half-made bridges {unmarked:?}"));
    }

    // Namespaces and state files: one of each per container that has them.
    let owned = containers
        .iter()
        .filter(|c| {
            c["NetworkSettings"]["SandboxKey"]
                .as_str()
                .is_some_and(|k| k.starts_with(&lab.state_dir().display().to_string()))
        })
        .count();
    if lab.namespaces() != owned {
        return Err(format!(
            "{} namespace files for {owned} netd namespaces",
            lab.namespaces()
        ));
    }
    let ids: BTreeSet<String> = containers
        .iter()
        .filter_map(|c| c["Id"].as_str().map(String::from))
        .collect();
    let dirs: BTreeSet<String> = std::fs::read_dir(lab.state_dir().join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if dirs != ids {
        return Err(format!(
            "container dirs {dirs:?} are not the containers {ids:?}"
        ));
    }
    if let Some(tmp) = temporary_files(&lab.state_dir()) {
        return Err(format!("a temporary file is left: {}", tmp.display()));
    }

    // Processes: the test's sleepers are exactly the running containers' processes.
    let running: BTreeSet<i64> = containers
        .iter()
        .filter_map(|c| c["State"]["Pid"].as_i64().filter(|p| *p > 0))
        .collect();
    let sleepers = sleepers();
    if sleepers != running {
        return Err(format!(
            "processes {sleepers:?} are not the running containers' {running:?}"
        ));
    }

    // Map entries: one endpoint and member per interface, the ports of the published ones.
    for map in ["NETD_ENDPOINTS", "NETD_MEMBERS"] {
        let n = lab.map_entries(map);
        if n != endpoints {
            return Err(format!("{map} has {n} entries for {endpoints} interfaces"));
        }
    }
    let published = lab.published_entries();
    if published != ports * per_port {
        return Err(format!(
            "NETD_PORTS has {published} entries for {ports} published ports"
        ));
    }
    if lab.rulesets() != *rulesets {
        return Err("the iptables or nftables rulesets changed".into());
    }
    Ok(())
}

/// Host ports a container publishes, from its `NetworkSettings.Ports`.
fn published_of(c: &Value) -> u64 {
    c["NetworkSettings"]["Ports"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, b)| b.as_array())
        .map(|b| b.len() as u64)
        .sum()
}

/// Links of the lab's host namespace whose alias is netd's mark.
fn marked_links(lab: &Lab) -> BTreeSet<String> {
    lab.host(&["ip", "-o", "link", "show"])
        .lines()
        .filter(|l| l.contains("alias netd:"))
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

fn temporary_files(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            return Some(path);
        }
        if path.is_dir() && !path.starts_with(dir.join("netns")) {
            if let Some(found) = temporary_files(&path) {
                return Some(found);
            }
        }
    }
    None
}

/// PIDs of the processes running `sleep MARKER`.
fn sleepers() -> BTreeSet<i64> {
    let wanted = format!("sleep\0{}\0", marker());
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|p| {
            let pid: i64 = p.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(p.path().join("cmdline")).ok()?;
            (cmdline == wanted.as_bytes()).then_some(pid)
        })
        .collect()
}

/// Kills the test's sleepers however the test ends: one in a namespace that lost its mount
/// would outlive the lab.
struct Sleepers;

impl Drop for Sleepers {
    fn drop(&mut self) {
        for pid in sleepers() {
            // SAFETY: plain kill(2) on a process that runs this test's marker.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}
