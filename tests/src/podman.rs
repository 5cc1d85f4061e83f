//! A real podman (4.3, CNI mode) for the end-to-end tests, in a lab's host namespace: its own
//! containers.conf, storage and run roots, CNI plugin and config dirs (netd-cni and one
//! configuration list per network) and cgroup parent. Its image (`bb`) is busybox-static.
//! On drop it removes its containers and leaves no process, mount, cgroup or CNI cache entry.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::{json, Value};

use crate::{docker::IMAGE, netd_bin, Lab};

/// Where podman's libcni keeps its results, and containers/image its blob cache, whatever
/// the roots: removed at the end if they were not there before.
const SHARED_DIRS: [&str; 2] = ["/var/lib/cni", "/var/lib/containers"];

pub struct Podman {
    pub root: PathBuf,
    netns: String,
    cgroup_parent: String,
    networks: Vec<String>,
    dirs_before: Vec<bool>,
}

impl Podman {
    /// Podman with one CNI network per name, each the netd network of that name made from
    /// its subnet by netd-cni.
    pub fn new(lab: &Lab, networks: &[(&str, &str)]) -> Self {
        let root = lab.dir.path().join("podman");
        let cni = root.join("cni");
        for dir in ["bin", "net.d"] {
            std::fs::create_dir_all(cni.join(dir)).expect("cni dirs");
        }
        std::os::unix::fs::symlink(
            netd_bin().with_file_name("netd-cni"),
            cni.join("bin/netd-cni"),
        )
        .expect("netd-cni link");
        for (name, subnet) in networks {
            let list = json!({"cniVersion": "1.0.0", "name": name, "plugins": [{
                "type": "netd-cni", "socket": lab.socket(), "subnet": subnet,
                "capabilities": {"portMappings": true, "aliases": true, "ips": true, "mac": true},
            }]});
            std::fs::write(cni.join(format!("net.d/{name}.conflist")), list.to_string())
                .expect("conflist");
        }
        let conf = format!(
            "[containers]\n\
             # The machine's hard limits are lower than podman's defaults.\n\
             default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [network]\n\
             network_backend = \"cni\"\n\
             cni_plugin_dirs = [\"{bin}\"]\n\
             network_config_dir = \"{netd}\"\n\
             [engine]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             events_logfile_path = \"{root}/events.log\"\n\
             tmp_dir = \"{root}/tmp\"\n",
            bin = cni.join("bin").display(),
            netd = cni.join("net.d").display(),
            root = root.display(),
        );
        std::fs::write(root.join("containers.conf"), conf).expect("containers.conf");
        let p = Self {
            root,
            netns: lab.netns.clone(),
            cgroup_parent: format!("/{}", crate::unique("netd-podman")),
            networks: networks.iter().map(|(n, _)| n.to_string()).collect(),
            dirs_before: SHARED_DIRS.iter().map(|d| Path::new(d).exists()).collect(),
        };
        p.import_busybox();
        p
    }

    fn command(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.netns))
            .arg("podman")
            .arg("--root")
            .arg(self.root.join("storage"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .env("CONTAINERS_CONF", self.root.join("containers.conf"))
            .stdin(Stdio::null());
        c
    }

    pub fn podman(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("running podman")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `podman run` under this podman's own cgroup parent.
    pub fn run(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "--cgroup-parent", &self.cgroup_parent];
        all.extend_from_slice(args);
        self.ok(&all)
    }

    fn import_busybox(&self) {
        let tar = labkit::busybox_rootfs(&self.root, &[]).unwrap_or_else(|e| panic!("{e}"));
        let mut import = self
            .command()
            .args(["import", "--change", "ENV PATH=/bin", "-", IMAGE])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman import");
        import
            .stdin
            .take()
            .expect("stdin")
            .write_all(&tar)
            .expect("image");
        assert!(
            import.wait().expect("podman import").success(),
            "podman import failed"
        );
    }

    /// libcni's cached results of this podman's networks, and the shared dirs it made.
    fn remove_shared(&self) {
        let results = Path::new("/var/lib/cni/results");
        for entry in std::fs::read_dir(results).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if self
                .networks
                .iter()
                .any(|n| name.starts_with(&format!("{n}-")))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        for (dir, existed) in SHARED_DIRS.iter().zip(&self.dirs_before) {
            if !existed {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        labkit::kill_processes_of(&self.root, &[]);
        labkit::unmount_under(&self.root);
        labkit::remove_cgroup_everywhere(&self.cgroup_parent);
        self.remove_shared();
    }
}

/// The address podman gave a container on `network`.
pub fn ip(p: &Podman, container: &str, network: &str) -> String {
    let inspect: Value =
        serde_json::from_str(&p.ok(&["inspect", container])).expect("podman inspect");
    inspect[0]["NetworkSettings"]["Networks"][network]["IPAddress"]
        .as_str()
        .unwrap_or_else(|| panic!("{container} has no address on {network}: {inspect}"))
        .to_string()
}
