//! A real containerd in a lab's network namespace, driven with `ctr run --cni` as a new user
//! would: its own root, state, socket and config (no CRI plugin), containers on a busybox
//! rootfs directory (`--rootfs`, no image), cgroups under a parent of the lab's own. ctr reads
//! only `/etc/cni/net.d` and `/opt/cni/bin`: each ctr call runs in a private mount namespace
//! where the lab's own folders are mounted at those paths, never the machine's. On drop it
//! kills its tasks, stops, and leaves no process, mount or cgroup behind.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use crate::{wait_until, LabError, Result};

pub struct Containerd {
    pub root: PathBuf,
    /// The lab's CNI configuration and plugin folders, mounted for ctr at the standard paths.
    cni_conf: PathBuf,
    cni_bin: PathBuf,
    cgroup_parent: String,
    child: Option<Child>,
}

impl Containerd {
    /// Starts containerd in `/run/netns/NETNS` with its state under `root`, and waits until
    /// it answers. `cni_conf` and `cni_bin` are what ctr sees as /etc/cni/net.d and
    /// /opt/cni/bin.
    pub fn start(
        netns: &str,
        root: &Path,
        (cni_conf, cni_bin): (&Path, &Path),
        cgroup_parent: &str,
    ) -> Result<Self> {
        let io = |e: std::io::Error| LabError(format!("{}: {e}", root.display()));
        std::fs::create_dir_all(root).map_err(io)?;
        let config = format!(
            "version = 2\nroot = \"{r}/root\"\nstate = \"{r}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{r}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{r}/containerd.sock.ttrpc\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{r}/opt\"\n",
            r = root.display()
        );
        std::fs::write(root.join("config.toml"), config).map_err(io)?;
        let log = std::fs::File::create(root.join("containerd.log")).map_err(io)?;
        let err = log.try_clone().map_err(io)?;
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .arg("containerd")
            .arg("--config")
            .arg(root.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| LabError(format!("starting containerd: {e}")))?;
        let d = Self {
            root: root.to_path_buf(),
            cni_conf: cni_conf.to_path_buf(),
            cni_bin: cni_bin.to_path_buf(),
            cgroup_parent: cgroup_parent.to_string(),
            child: Some(child),
        };
        let up = wait_until(Duration::from_secs(30), || {
            d.ctr(&["version"]).status.success()
        });
        if !up {
            return Err(LabError(format!(
                "containerd did not answer within 30 s:\n{}",
                d.log()
            )));
        }
        Ok(d)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("containerd.log")).unwrap_or_default()
    }

    /// Runs ctr (namespace `ct`) on this containerd, in a private mount namespace where the
    /// lab's CNI folders are /etc/cni/net.d and /opt/cni/bin.
    pub fn ctr(&self, args: &[&str]) -> Output {
        let script = "mount --make-rprivate / && mount --bind \"$1\" /etc/cni/net.d && \
                      mount -t tmpfs netd-ctr-opt /opt && mkdir -p /opt/cni/bin && \
                      mount --bind \"$2\" /opt/cni/bin && shift 2 && exec ctr \"$@\"";
        Command::new("unshare")
            .args(["--mount", "sh", "-c", script, "sh"])
            .arg(&self.cni_conf)
            .arg(&self.cni_bin)
            .arg("--address")
            .arg(self.root.join("containerd.sock"))
            .args(["--namespace", "ct"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running ctr")
    }

    /// Runs ctr and returns its stdout; an error with its stderr if it fails.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.ctr(args);
        if !out.status.success() {
            return Err(LabError(format!(
                "ctr {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `ctr run --cni -d` of `id` on the rootfs directory, in the lab's cgroup parent.
    pub fn run(&self, rootfs: &Path, id: &str, cmd: &[&str]) -> Result<()> {
        let cgroup = format!("/{}/{id}", self.cgroup_parent);
        let rootfs = rootfs.display().to_string();
        let mut args = vec![
            "run", "--cni", "-d", "--cgroup", &cgroup, "--rootfs", &rootfs, id,
        ];
        args.extend_from_slice(cmd);
        self.ok(&args).map(drop)
    }

    /// The pid of task `id`'s process.
    pub fn pid(&self, id: &str) -> Option<i32> {
        let tasks = self.ok(&["task", "ls"]).ok()?;
        tasks
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            if !wait_until(Duration::from_secs(20), || {
                child.try_wait().ok().flatten().is_some()
            }) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let tasks = self.ok(&["task", "ls", "-q"]).unwrap_or_default();
            for id in tasks.lines() {
                let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
                wait_until(Duration::from_secs(10), || {
                    self.ctr(&["task", "rm", id]).status.success()
                });
            }
            let containers = self.ok(&["container", "ls", "-q"]).unwrap_or_default();
            for id in containers.lines() {
                let _ = self.ctr(&["container", "rm", id]);
            }
        }
        self.stop();
        // The shims name this containerd's socket on their command line.
        crate::kill_processes_of(&self.root, &[]);
        crate::unmount_under(&self.root);
        crate::remove_cgroup_everywhere(&self.cgroup_parent);
    }
}
