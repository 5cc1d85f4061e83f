//! A real dockerd for the end-to-end tests, in a lab's host namespace: its own data and exec
//! roots, socket and cgroup parent, no iptables rules and no default bridge, live restore on.
//! Its one image (`bb`) is made offline from busybox-static. On drop it removes its
//! containers, stops, and leaves no process, mount or cgroup behind.

use std::{
    io::Write,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use crate::{wait_until, Lab};

/// Debian's client, which matches its dockerd (another `docker` may come first in PATH).
pub const DOCKER: &str = "/usr/bin/docker";
/// The image every test container runs: busybox-static with its applets, PATH=/bin.
pub const IMAGE: &str = "bb";
/// A web server on port 80 whose `/cgi-bin/who` answers the client's address and the
/// container's hostname (httpd listens on IPv6 too and writes `[::ffff:A.B.C.D]`).
pub const WEB: &str = "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-type: text/plain\\necho\\na=${REMOTE_ADDR#\"[::ffff:\"}\\necho ${a%%\"]\"} $(hostname)\\n' > /www/cgi-bin/who && chmod +x /www/cgi-bin/who && exec httpd -f -p 80 -h /www";

pub struct Dockerd {
    pub root: PathBuf,
    netns: String,
    cgroup_parent: String,
    child: Option<Child>,
}

impl Dockerd {
    /// Starts dockerd in the lab's host namespace and imports the test image.
    pub fn start(lab: &Lab) -> Self {
        let root = lab.dir.path().join("docker");
        std::fs::create_dir_all(root.join("data")).expect("docker data root");
        let mut d = Self {
            root,
            netns: lab.netns.clone(),
            cgroup_parent: crate::unique("netd-docker"),
            child: None,
        };
        d.spawn();
        d.import_busybox();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("dockerd.log"))
            .expect("dockerd log");
        // nsenter, not `ip netns exec`: that remounts /sys, and dockerd needs the cgroups.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg("dockerd")
            .arg("--data-root")
            .arg(self.root.join("data"))
            .arg("--exec-root")
            .arg(self.root.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--pidfile")
            .arg(self.root.join("dockerd.pid"))
            .args(["--iptables=false", "--bridge=none", "--live-restore"])
            .args(["--cgroup-parent", &self.cgroup_parent])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(60), || {
            self.docker(&["version", "--format", "{{.Server.Version}}"])
                .status
                .success()
        });
        assert!(up, "dockerd did not answer within 60 s:\n{}", self.log());
    }

    pub fn socket(&self) -> PathBuf {
        self.root.join("docker.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running docker")
    }

    /// Runs docker and returns its stdout, trimmed; panics with its stderr if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs docker, expects it to fail, and returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(!out.status.success(), "docker {} succeeded", args.join(" "));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `docker exec` in a container, stdout trimmed, whatever the exit status.
    pub fn exec(&self, container: &str, script: &str) -> String {
        let out = self.docker(&["exec", container, "sh", "-c", script]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Restarts dockerd; its containers keep running (live restore).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            if !wait_until(Duration::from_secs(30), || {
                child.try_wait().ok().flatten().is_some()
            }) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// A rootfs of busybox-static and its applet links, imported as [`IMAGE`].
    fn import_busybox(&self) {
        let rootfs = self.root.join("rootfs");
        for dir in ["bin", "etc", "proc", "sys", "dev", "tmp", "www"] {
            std::fs::create_dir_all(rootfs.join(dir)).expect("rootfs");
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static");
        let list = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            // Not busybox itself: a link to itself would replace the binary.
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
            }
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["-c", "."])
            .output()
            .expect("tar");
        let mut import = Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(["import", "-c", "ENV PATH=/bin", "-", IMAGE])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("docker import");
        import
            .stdin
            .take()
            .expect("stdin")
            .write_all(&tar.stdout)
            .expect("image");
        assert!(
            import.wait().expect("docker import").success(),
            "docker import failed"
        );
    }

    /// Kills what dockerd left running: containerd and shims (named by our roots) and the
    /// processes in Docker's sandboxes.
    fn kill_leftovers(&self) {
        let root = self.root.to_string_lossy().into_owned();
        let sandboxes: Vec<(u64, u64)> = std::fs::read_dir(self.root.join("exec/netns"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::metadata(e.path()).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        for proc in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = proc.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(proc.path().join("cmdline")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(&root);
            let in_sandbox = std::fs::metadata(proc.path().join("ns/net"))
                .is_ok_and(|m| sandboxes.contains(&(m.dev(), m.ino())));
            if (ours || in_sandbox) && pid != std::process::id() as i32 {
                // SAFETY: plain kill(2) on a process of this lab's dockerd.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    /// Unmounts everything under the roots, deepest first.
    fn unmount(&self) {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<PathBuf> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(&self.root))
            .collect();
        points.sort();
        for point in points.iter().rev() {
            let c = std::ffi::CString::new(point.as_os_str().as_encoded_bytes()).expect("path");
            // SAFETY: umount2 on a path of this lab's; MNT_DETACH for one still busy.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }

    fn remove_cgroups(&self) {
        for controller in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            remove_cgroup(&controller.path().join(&self.cgroup_parent));
        }
    }
}

/// Removes a cgroup and its children, waiting (bounded) for killed tasks to leave them.
pub fn remove_cgroup(dir: &Path) {
    wait_until(Duration::from_secs(10), || remove_cgroup_once(dir));
}

fn remove_cgroup_once(dir: &Path) -> bool {
    if !dir.exists() {
        return true;
    }
    for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if child.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_once(&child.path());
        }
    }
    std::fs::remove_dir(dir).is_ok()
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- dockerd log ---\n{}", self.log());
        }
        if self.child.is_some() {
            let ids = self.ok_or_empty(&["ps", "-aq"]);
            if !ids.is_empty() {
                let mut rm = vec!["rm", "-f"];
                rm.extend(ids.lines());
                let _ = self.docker(&rm);
            }
            let _ = self.docker(&["network", "prune", "-f"]);
        }
        self.stop();
        self.kill_leftovers();
        self.unmount();
        self.remove_cgroups();
    }
}

impl Dockerd {
    fn ok_or_empty(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.docker(args).stdout)
            .trim()
            .to_string()
    }
}
