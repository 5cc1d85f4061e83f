//! A real dockerd in a lab's network namespace: its own data and exec roots, socket, pid file
//! and cgroup parent, live restore on. On drop it removes its containers and networks,
//! stops, and leaves no process, mount or cgroup behind.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use crate::{wait_until, LabError, Result};

/// Debian's client, which matches its dockerd (another `docker` may come first in PATH).
pub const DOCKER: &str = "/usr/bin/docker";

pub struct Dockerd {
    pub root: PathBuf,
    netns: String,
    cgroup_parent: String,
    args: Vec<String>,
    child: Option<Child>,
}

impl Dockerd {
    /// Starts dockerd in `/run/netns/NETNS` with its state under `root` and these flags
    /// (`--iptables=false --bridge=none` for netd's labs), and waits until it answers.
    pub fn start(netns: &str, root: &Path, cgroup_parent: &str, args: &[&str]) -> Result<Self> {
        std::fs::create_dir_all(root.join("data"))
            .map_err(|e| LabError(format!("{}: {e}", root.display())))?;
        let mut d = Self {
            root: root.to_path_buf(),
            netns: netns.to_string(),
            cgroup_parent: cgroup_parent.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        d.spawn()?;
        Ok(d)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("dockerd.log"))
            .map_err(|e| LabError(format!("dockerd log: {e}")))?;
        let err = log
            .try_clone()
            .map_err(|e| LabError(format!("dockerd log: {e}")))?;
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
            .args(["--live-restore", "--cgroup-parent", &self.cgroup_parent])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| LabError(format!("starting dockerd: {e}")))?;
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(60), || {
            self.docker(&["version", "--format", "{{.Server.Version}}"])
                .status
                .success()
        });
        if !up {
            return Err(LabError(format!(
                "dockerd did not answer within 60 s:\n{}",
                self.log()
            )));
        }
        Ok(())
    }

    pub fn socket(&self) -> PathBuf {
        self.root.join("docker.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running docker")
    }

    /// The docker client, on this dockerd.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(DOCKER);
        c.arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs docker and returns its stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.docker(args);
        if !out.status.success() {
            return Err(LabError(format!(
                "docker {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Imports a rootfs tar (see [`crate::busybox_rootfs`]) as image `name`, PATH=/bin.
    pub fn import(&self, name: &str, tar: &[u8]) -> Result<()> {
        let mut import = self
            .command(&["import", "-c", "ENV PATH=/bin", "-", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| LabError(format!("docker import: {e}")))?;
        let sent = import.stdin.take().expect("piped").write_all(tar);
        let done = import
            .wait()
            .map_err(|e| LabError(format!("docker import: {e}")))?;
        if sent.is_err() || !done.success() {
            return Err(LabError(format!("docker import of {name} failed")));
        }
        Ok(())
    }

    /// Restarts dockerd; its containers keep running (live restore).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
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
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.ok(&["ps", "-aq"]).unwrap_or_default();
            if !ids.is_empty() {
                let mut rm = vec!["rm", "-f"];
                rm.extend(ids.lines());
                let _ = self.docker(&rm);
            }
            let _ = self.docker(&["network", "prune", "-f"]);
        }
        self.stop();
        let sandboxes: Vec<PathBuf> = std::fs::read_dir(self.root.join("exec/netns"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        crate::kill_processes_of(&self.root, &sandboxes);
        crate::unmount_under(&self.root);
        crate::remove_cgroup_everywhere(&self.cgroup_parent);
    }
}
