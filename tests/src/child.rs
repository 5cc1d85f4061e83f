//! Background commands of a test: started in a container or a namespace, waited for until
//! they say `ready`, and read when they end.

use std::{
    io::Read,
    process::{Child, Command, Stdio},
};

use crate::{netd_bin, Lab};

/// Starts `cmd` in `container` in the background; the caller waits for it.
pub fn spawn_exec(lab: &Lab, container: &str, cmd: &[&str]) -> Child {
    let mut args = vec!["exec", container, "--"];
    args.extend_from_slice(cmd);
    Command::new(netd_bin())
        .env("NETD_SOCKET", lab.socket())
        .args(&args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("netd exec")
}

/// Starts `cmd` in the network namespace `netns` in the background.
pub fn spawn_in_namespace(netns: &str, cmd: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", netns])
        .args(cmd)
        .stdout(Stdio::piped())
        .spawn()
        .expect("ip netns exec")
}

/// Reads the first line that `child` prints, byte by byte (so that nothing after it is taken
/// from its output), and checks that it is `ready`.
pub fn wait_ready(child: &mut Child) {
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut line = Vec::new();
    let mut byte = [0u8];
    while stdout.read(&mut byte).expect("child output") == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    assert_eq!(line, b"ready", "the listener did not start");
}

/// What `child` printed until it ended.
pub fn output_of(child: Child) -> String {
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
