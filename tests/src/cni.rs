//! A CNI runtime's side for the tests: namespaces of the test's own, and netd-cni exec'd
//! as a runtime does (environment, configuration on stdin, result or error on stdout).

use std::{
    io::Write,
    process::{Command, Stdio},
};

use serde_json::{json, Value};

use crate::{netd_bin, unique, Lab};

/// A namespace of the test's own, as a runtime would make for a container.
pub struct Netns(pub String);

impl Netns {
    pub fn new() -> Self {
        let name = unique("nc");
        assert!(Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success());
        Self(name)
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Default for Netns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

pub struct Call<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
}

impl Call<'_> {
    pub fn new(command: &str) -> Call<'_> {
        Call {
            command,
            container_id: "",
            netns: "",
            ifname: "eth0",
            args: "",
        }
    }
}

/// Execs netd-cni: its exit code and what it printed, as JSON (Null for nothing).
pub fn cni(call: &Call, stdin: &str) -> (i32, Value) {
    let bin = netd_bin().with_file_name("netd-cni");
    let mut child = Command::new(&bin)
        .env_clear()
        .env("CNI_COMMAND", call.command)
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_NETNS", call.netns)
        .env("CNI_IFNAME", call.ifname)
        .env("CNI_ARGS", call.args)
        .env("CNI_PATH", "/opt/cni/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (out.status.code().unwrap_or(-1), value)
}

/// A configuration of network `podnet` (10.72.0.0/24) with `extra` keys.
pub fn conf(lab: &Lab, version: &str, extra: Value) -> String {
    let mut c = json!({"cniVersion": version, "name": "podnet", "type": "netd-cni", "socket": lab.socket(), "subnet": "10.72.0.0/24"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.to_string()
}
