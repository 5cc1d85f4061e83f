//! Small helpers for running child commands with the bootstrap's environment.

use std::{
    ffi::OsStr,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{bail, Context, Result};

/// A command whose PATH includes ~/.cargo/bin, where bpf-linker lives.
pub fn new(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PATH", path_with_cargo_bin());
    cmd
}

pub fn cargo() -> Command {
    let mut cmd = new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(crate::workspace_root());
    cmd
}

pub fn cargo_home_bin() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    home.join("bin")
}

fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut paths = vec![cargo_home_bin()];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).expect("PATH entries contain no separator")
}

/// Runs `cmd` with inherited stdio; fails with the command line if it exits non-zero.
pub fn run(mut cmd: Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Runs `cmd` and returns its trimmed stdout, or `None` when it cannot start or fails.
pub fn output(mut cmd: Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Replaces the current process with `cmd`.
pub fn exec(mut cmd: Command) -> Result<()> {
    let err = cmd.exec();
    Err(err).with_context(|| format!("exec {cmd:?}"))
}
