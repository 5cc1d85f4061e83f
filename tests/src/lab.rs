//! A throwaway host: its own network namespace with a netd daemon living in it.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The netd binary under test (`cargo build -p netd` makes it; `cargo xtask test` does that).
pub fn netd_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NETD_BIN") {
        return bin.into();
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/netd");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p netd` (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// The daemon built with a later build's map layout (`--features test-grown-ports`), for
/// the upgrade test; `cargo xtask test` builds it as `target/debug/netd-grown`.
pub fn grown_netd_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/netd-grown");
    assert!(
        bin.exists(),
        "{} is missing: cargo xtask test builds it (cargo build -p netd --features test-grown-ports, copied)",
        bin.display()
    );
    bin
}

/// The host's address on its uplink, and the external client's.
pub const UPLINK_IP: &str = "10.99.0.1";
pub const UPLINK_CIDR: &str = "10.99.0.1/24";
pub const EXTERNAL_IP: &str = "10.99.0.2";

/// The test peer script (servers and clients in Python).
pub fn peer_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/peer.py")
        .display()
        .to_string()
}

/// The resolver every lab daemon forwards names that are not containers' to: nothing listens
/// there unless a test runs `dns.py upstream` in the host namespace.
pub const DNS_UPSTREAM_PORT: u16 = 5354;

/// The DNS tools of the embedded-DNS tests (Python).
pub fn dns_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/dns.py")
        .display()
        .to_string()
}

/// The backends and clients of the virtual-IP tests (Python).
pub fn vip_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/vip.py")
        .display()
        .to_string()
}

/// The reachability tools of the isolation tests (Python).
pub fn reach_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/reach.py")
        .display()
        .to_string()
}

pub struct Lab {
    /// Name of the host namespace under /run/netns.
    pub netns: String,
    /// The external client's namespace, routed to the host through its uplink `up0`.
    pub external: Option<String>,
    pub dir: tempfile::TempDir,
    pub bpffs: PathBuf,
    /// More `netd daemon` flags, for every start.
    pub daemon_args: Vec<String>,
    /// Namespaces a test added (see [`Lab::add_namespace`]), removed with the lab.
    added: Vec<String>,
    daemon: Option<Child>,
}

impl Lab {
    pub fn new() -> Self {
        let mut lab = Self::bare();
        lab.start_daemon();
        lab
    }

    /// A lab whose host has an uplink `up0` (10.99.0.1/24, default route) to an external
    /// client namespace (10.99.0.2/24).
    pub fn with_external() -> Self {
        Self::with_external_args(&[])
    }

    /// [`Lab::with_external`], its daemon started with more flags.
    pub fn with_external_args(daemon_args: &[&str]) -> Self {
        let mut lab = Self::bare();
        lab.daemon_args = daemon_args.iter().map(|a| a.to_string()).collect();
        let ext = crate::unique("nx");
        run("ip", &["netns", "add", &ext]);
        lab.external = Some(ext.clone());
        let host = lab.netns.clone();
        let veth = [
            "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", &ext,
        ];
        run("ip", &[&["-n", host.as_str()][..], &veth[..]].concat());
        run(
            "ip",
            &["-n", &host, "addr", "add", UPLINK_CIDR, "dev", "up0"],
        );
        run("ip", &["-n", &host, "link", "set", "up0", "up"]);
        run(
            "ip",
            &["-n", &ext, "addr", "add", "10.99.0.2/24", "dev", "eth0"],
        );
        run("ip", &["-n", &ext, "link", "set", "eth0", "up"]);
        run("ip", &["-n", &ext, "link", "set", "lo", "up"]);
        run(
            "ip",
            &["-n", &ext, "route", "add", "default", "via", UPLINK_IP],
        );
        run(
            "ip",
            &["-n", &host, "route", "add", "default", "via", EXTERNAL_IP],
        );
        lab.start_daemon();
        lab
    }

    /// A lab whose daemon is not started yet (a test prepares its state dir first).
    pub fn unstarted() -> Self {
        Self::bare()
    }

    fn bare() -> Self {
        let netns = crate::unique("nh");
        run("ip", &["netns", "add", &netns]);
        let lab = Self {
            dir: tempfile::Builder::new()
                .prefix("netd-lab")
                .tempdir()
                .expect("tempdir"),
            bpffs: PathBuf::from("/sys/fs/bpf").join(format!("netd-{netns}")),
            netns,
            external: None,
            daemon_args: Vec::new(),
            added: Vec::new(),
            daemon: None,
        };
        run("ip", &["-n", &lab.netns, "link", "set", "lo", "up"]);
        lab
    }

    /// Packets dropped on `network` for `reason`, from `netd network inspect`.
    pub fn drops(&self, network: &str, reason: &str) -> u64 {
        self.json(&["network", "inspect", network])[0]["Drops"]
            .as_array()
            .expect("Drops")
            .iter()
            .filter(|d| d["Reason"] == reason)
            .map(|d| d["Packets"].as_u64().unwrap_or(0))
            .sum()
    }

    /// A namespace of the test's own beside the lab's (a router, a far client), named from
    /// `prefix`; its processes are killed and it is removed with the lab.
    pub fn add_namespace(&mut self, prefix: &str) -> String {
        let name = crate::unique(prefix);
        run("ip", &["netns", "add", &name]);
        self.added.push(name.clone());
        name
    }

    /// Runs a command in the external client's namespace.
    pub fn external(&self, cmd: &[&str]) -> Output {
        let ext = self.external.as_deref().expect("a lab made with_external");
        let mut args = vec!["netns", "exec", ext];
        args.extend_from_slice(cmd);
        Command::new("ip")
            .args(&args)
            .output()
            .expect("ip netns exec")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("netd.sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts the daemon and waits until its API answers.
    pub fn start_daemon(&mut self) {
        self.start_daemon_of(&netd_bin());
    }

    /// [`Lab::start_daemon`] with another build of the daemon (an upgrade).
    pub fn start_daemon_of(&mut self, bin: &Path) {
        assert!(self.daemon.is_none(), "daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("daemon log");
        let child = Command::new(bin)
            .arg("--socket")
            .arg(self.socket())
            .arg("daemon")
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--bpffs")
            .arg(&self.bpffs)
            .arg("--netns")
            .arg(&self.netns)
            .arg("--dns-upstream")
            .arg(format!("127.0.0.1:{DNS_UPSTREAM_PORT}"))
            .args(&self.daemon_args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting netd daemon");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.netd(&["network", "ls"]).status.success() {
                return;
            }
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|d| d.try_wait().ok().flatten())
            {
                panic!("netd daemon exited with {status}:\n{}", self.daemon_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "netd daemon did not answer within 20 s:\n{}",
            self.daemon_log()
        );
    }

    /// SIGTERMs the daemon and waits for it to exit, as a clean stop would.
    pub fn stop_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
            let exited = wait_until(Duration::from_secs(20), || {
                d.try_wait().ok().flatten().is_some()
            });
            if !exited {
                let _ = d.kill();
            }
            let _ = d.wait();
        }
    }

    /// SIGKILLs the daemon, as a crash would.
    pub fn kill_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon running").id()
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Runs the CLI against this lab's daemon.
    pub fn netd(&self, args: &[&str]) -> Output {
        Command::new(netd_bin())
            .env("NETD_SOCKET", self.socket())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running netd")
    }

    /// Runs the CLI and returns its stdout; panics with stderr if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.netd(args);
        assert!(
            out.status.success(),
            "netd {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the CLI, expects it to fail, and returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.netd(args);
        assert!(
            !out.status.success(),
            "netd {} should have failed but printed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("netd printed JSON")
    }

    /// `netd inspect NAME`, first element.
    pub fn inspect(&self, container: &str) -> Value {
        self.json(&["inspect", container])[0].clone()
    }

    /// Runs a command inside a container; returns its output.
    pub fn exec(&self, container: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", container, "--"];
        args.extend_from_slice(cmd);
        self.netd(&args)
    }

    /// Runs a command inside a container and returns stdout; panics if it fails.
    pub fn exec_ok(&self, container: &str, cmd: &[&str]) -> String {
        let out = self.exec(container, cmd);
        assert!(
            out.status.success(),
            "{} in {container} failed ({}):\n{}{}",
            cmd.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until a socket in `container` listens on TCP `port` (`proto` "tcp") or is bound to
    /// UDP `port` ("udp"), so that a probe never meets a server that is still starting.
    pub fn wait_listening(&self, container: &str, proto: &str, port: u16) {
        let flags = match proto {
            "tcp" => "-Hltn",
            "udp" => "-Hlun",
            other => panic!("wait_listening: protocol {other:?} is not tcp or udp"),
        };
        self.wait_sockets(container, &[flags, &format!("sport = :{port}")]);
    }

    /// Waits until `container` has an established TCP connection from or to `port`.
    pub fn wait_established(&self, container: &str, port: u16) {
        let filter = format!("( sport = :{port} or dport = :{port} )");
        self.wait_sockets(container, &["-Htn", "state", "established", &filter]);
    }

    /// Waits (at most 20 s) until `ss ARGS` in `container` lists a socket.
    fn wait_sockets(&self, container: &str, ss: &[&str]) {
        let mut cmd = vec!["ss"];
        cmd.extend_from_slice(ss);
        let found = || {
            let out = self.exec(container, &cmd);
            out.status.success() && !out.stdout.is_empty()
        };
        assert!(
            wait_until(Duration::from_secs(20), found),
            "no socket in {container} matches `{}` after 20 s",
            cmd.join(" ")
        );
    }

    /// Waits (at most 20 s) until a socket of the lab's host namespace listens on TCP `port`
    /// (`proto` "tcp") or is bound to UDP `port` ("udp").
    pub fn wait_host_listening(&self, proto: &str, port: u16) {
        let flags = if proto == "tcp" { "-Hltn" } else { "-Hlun" };
        let filter = format!("sport = :{port}");
        let bound = || !self.host(&["ss", flags, &filter]).is_empty();
        assert!(
            wait_until(Duration::from_secs(20), bound),
            "nothing in the host namespace holds {proto} port {port} after 20 s"
        );
    }

    /// `netd run -d --name NAME ARGS -- sleep 600`, which must succeed.
    pub fn run_d(&self, name: &str, args: &[&str]) {
        let mut all = vec!["run", "-d", "--name", name];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", "sleep", "600"]);
        self.ok(&all);
    }

    /// The address of `container` on `network`, from `netd inspect`; empty if it has none.
    pub fn ip(&self, container: &str, network: &str) -> String {
        let c = self.inspect(container);
        c["NetworkSettings"]["Networks"][network]["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Whether one ping from `from` to `to` is answered within 2 s.
    pub fn ping(&self, from: &str, to: &str) -> bool {
        self.exec(from, &["ping", "-c", "1", "-W", "2", to])
            .status
            .success()
    }

    /// Runs a command in the lab's host namespace.
    pub fn host(&self, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", &self.netns];
        args.extend_from_slice(cmd);
        let out = Command::new("ip")
            .args(&args)
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "{} failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// iptables and nftables rules of the lab's host namespace (iptables-save's timestamp
    /// comments left out).
    pub fn rulesets(&self) -> (String, String) {
        let ipt = Command::new("ip")
            .args(["netns", "exec", &self.netns, "iptables-save"])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        let nft = self.host(&["nft", "list", "ruleset"]);
        (ipt, nft)
    }

    /// Entries of the datapath's published-port map.
    pub fn published_entries(&self) -> u64 {
        self.map_entries("NETD_PORTS")
    }

    /// Entries of one of the datapath's maps, from `netd stats --view maps`.
    pub fn map_entries(&self, map: &str) -> u64 {
        let maps = self.json(&["stats", "--view", "maps", "--format", "json"]);
        let found = maps.as_array().unwrap().iter().find(|m| m["Map"] == map);
        found
            .and_then(|m| m["Entries"].as_u64())
            .unwrap_or_else(|| panic!("no {map} entries in {maps}"))
    }

    /// The host's `ip_local_port_range`, where random host ports come from.
    pub fn ephemeral_range(&self) -> (u16, u16) {
        let range = self.host(&["cat", "/proc/sys/net/ipv4/ip_local_port_range"]);
        let mut it = range.split_whitespace().map(|p| p.parse().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    }

    /// Names of the links in the lab's host namespace.
    pub fn host_links(&self) -> Vec<String> {
        self.host(&["ip", "-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    /// Files in the daemon's namespace folder: one per container namespace.
    pub fn namespaces(&self) -> usize {
        std::fs::read_dir(self.state_dir().join("netns"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Kills every process living in one of this lab's namespaces.
    fn kill_lab_processes(&self) {
        let mut inodes = Vec::new();
        let host_ns = Path::new("/run/netns").join(&self.netns);
        let entries = std::fs::read_dir(self.state_dir().join("netns"))
            .into_iter()
            .flatten()
            .flatten();
        let ext_ns = self
            .external
            .as_ref()
            .map(|e| Path::new("/run/netns").join(e));
        let added = self.added.iter().map(|n| Path::new("/run/netns").join(n));
        for path in entries
            .map(|e| e.path())
            .chain([host_ns])
            .chain(ext_ns)
            .chain(added)
        {
            if let Ok(meta) = std::fs::metadata(&path) {
                inodes.push((meta.dev(), meta.ino()));
            }
        }
        for proc in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = proc.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(proc.path().join("ns/net")) else {
                continue;
            };
            if pid != std::process::id() as i32 && inodes.contains(&(meta.dev(), meta.ino())) {
                // SAFETY: plain kill(2) on a process of this lab.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- netd daemon log ({}) ---\n{}",
                self.netns,
                self.daemon_log()
            );
        }
        self.kill_daemon();
        // A killed daemon leaves its Docker plugin socket behind.
        if let Some(i) = self.daemon_args.iter().position(|a| a == "--docker-plugin") {
            if let Some(name) = self.daemon_args.get(i + 1) {
                let _ = std::fs::remove_file(format!("/run/docker/plugins/{name}.sock"));
            }
        }
        self.kill_lab_processes();
        let entries = std::fs::read_dir(self.state_dir().join("netns"))
            .into_iter()
            .flatten()
            .flatten();
        for path in entries.map(|e| e.path()) {
            let _ = netd::netns::remove(&path);
        }
        // Deleting the host namespace deletes its bridges and the veths with their peers.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        for ns in self.external.iter().chain(&self.added) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.bpffs);
    }
}

pub use labkit::wait_until;

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
