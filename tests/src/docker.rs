//! Docker for the end-to-end tests: [`labkit`]'s dockerd in a lab's host namespace (no
//! iptables rules, no default bridge), its one image `bb` made offline from busybox-static,
//! and helpers that panic with docker's own message.

use std::ops::{Deref, DerefMut};

use crate::Lab;

pub use labkit::docker::DOCKER;

/// The image every test container runs: busybox-static with its applets, PATH=/bin.
pub const IMAGE: &str = "bb";
/// A web server on port 80 whose `/cgi-bin/who` answers the client's address and the
/// container's hostname (httpd listens on IPv6 too and writes `[::ffff:A.B.C.D]`).
pub const WEB: &str = "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-type: text/plain\\necho\\na=${REMOTE_ADDR#\"[::ffff:\"}\\necho ${a%%\"]\"} $(hostname)\\n' > /www/cgi-bin/who && chmod +x /www/cgi-bin/who && exec httpd -f -p 80 -h /www";

pub struct Dockerd(labkit::docker::Dockerd);

impl Deref for Dockerd {
    type Target = labkit::docker::Dockerd;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Dockerd {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Dockerd {
    /// Starts dockerd in the lab's host namespace and imports the test image.
    pub fn start(lab: &Lab) -> Self {
        let root = lab.dir.path().join("docker");
        let cgroup = crate::unique("netd-docker");
        let d = labkit::docker::Dockerd::start(
            &lab.netns,
            &root,
            &cgroup,
            &["--iptables=false", "--bridge=none"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let tar = labkit::busybox_rootfs(&root, &[]).unwrap_or_else(|e| panic!("{e}"));
        d.import(IMAGE, &tar).unwrap_or_else(|e| panic!("{e}"));
        Self(d)
    }

    /// Runs docker and returns its stdout, trimmed; panics with its stderr if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        self.0.ok(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs docker, expects it to fail, and returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(!out.status.success(), "docker {} succeeded", args.join(" "));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Restarts dockerd; its containers keep running (live restore).
    pub fn restart(&mut self) {
        self.0.restart().unwrap_or_else(|e| panic!("{e}"));
    }
}

/// POSTs a plugin call on the plugin socket: the HTTP status and the JSON answer.
pub fn plugin_call(plugin: &str, method: &str, body: &str) -> (u16, serde_json::Value) {
    let socket = format!("/run/docker/plugins/{plugin}.sock");
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--unix-socket",
            &socket,
            "-X",
            "POST",
            "-w",
            "\n%{http_code}",
            "-d",
            body,
        ])
        .arg(format!("http://plugin/{method}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (answer, status) = text.rsplit_once('\n').expect("a status line");
    (
        status.parse().expect("a status"),
        serde_json::from_str(answer).unwrap_or(serde_json::Value::Null),
    )
}

/// Makes Docker network `net` (an id) on `pool` through the plugin, as Docker does; panics
/// if the plugin refuses.
pub fn plugin_network(plugin: &str, net: &str, pool: &str) {
    let create = serde_json::json!({"NetworkID": net, "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": pool}]});
    let answer = plugin_call(plugin, "NetworkDriver.CreateNetwork", &create.to_string());
    assert_eq!(answer, (200, serde_json::json!({})), "CreateNetwork {net}");
}

/// Makes endpoint `ep` of network `net` with `address` through the plugin; panics if the
/// plugin refuses.
pub fn plugin_endpoint(plugin: &str, net: &str, ep: &str, address: &str) {
    let endpoint =
        serde_json::json!({"NetworkID": net, "EndpointID": ep, "Interface": {"Address": address}});
    let (status, made) = plugin_call(
        plugin,
        "NetworkDriver.CreateEndpoint",
        &endpoint.to_string(),
    );
    assert!(
        status == 200 && made.get("Err").is_none(),
        "CreateEndpoint {ep}: {made}"
    );
}

/// Removes endpoint `ep` and network `net` through the plugin, as Docker does.
pub fn plugin_teardown(plugin: &str, net: &str, ep: &str) {
    let ids = serde_json::json!({"NetworkID": net, "EndpointID": ep}).to_string();
    assert_eq!(
        plugin_call(plugin, "NetworkDriver.DeleteEndpoint", &ids).0,
        200
    );
    let del = serde_json::json!({"NetworkID": net}).to_string();
    assert_eq!(
        plugin_call(plugin, "NetworkDriver.DeleteNetwork", &del).0,
        200
    );
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- dockerd log ---\n{}", self.log());
        }
    }
}
