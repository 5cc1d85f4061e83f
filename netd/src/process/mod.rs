//! Processes inside containers: entering a container's namespace (with its own /etc/hosts,
//! /etc/resolv.conf and hostname), spawning with output to a log, and telling whether a
//! process from an earlier daemon run is still alive.

pub mod files;
pub mod orphans;

use std::{
    ffi::CString,
    fs::{File, OpenOptions},
    io,
    os::{fd::AsRawFd, unix::ffi::OsStrExt, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde::{Deserialize, Serialize};

use crate::state::model::Process;

/// Where and how a container's processes run. Served to the CLI for `netd exec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxEnv {
    /// Network namespace to enter; `None` keeps the caller's.
    pub netns: Option<PathBuf>,
    /// Hostname for a private UTS namespace.
    pub hostname: Option<String>,
    /// Files bind-mounted over their targets in a private mount namespace.
    pub binds: Vec<(PathBuf, PathBuf)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {command:?}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("path contains a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes `cmd` start inside the sandbox. Everything that allocates happens here, before the
/// fork; the child only makes system calls.
pub fn enter_on_exec(
    cmd: &mut Command,
    env: &SandboxEnv,
    new_session: bool,
) -> Result<(), ProcessError> {
    let netns = match &env.netns {
        Some(path) => Some(File::open(path).map_err(|source| ProcessError::Open {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let to_c = |p: &PathBuf| {
        cstring(p).map_err(|source| ProcessError::Open {
            path: p.clone(),
            source,
        })
    };
    let binds = env
        .binds
        .iter()
        .map(|(src, dst)| Ok((to_c(src)?, to_c(dst)?)))
        .collect::<Result<Vec<_>, ProcessError>>()?;
    let hostname = env.hostname.clone().map(String::into_bytes);
    let root = CString::new("/").expect("no NUL");
    let (sysfs, sys) = (
        CString::new("sysfs").expect("no NUL"),
        CString::new("/sys").expect("no NUL"),
    );
    // SAFETY: the closure only makes async-signal-safe system calls on data prepared above.
    unsafe {
        cmd.pre_exec(move || {
            // The daemon's umask keeps its own files private (0600); a container's process
            // gets the usual one.
            libc::umask(0o022);
            if new_session {
                check(libc::setsid())?;
            }
            if let Some(ns) = &netns {
                check(libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET))?;
            }
            let mut flags = 0;
            if !binds.is_empty() || netns.is_some() {
                flags |= libc::CLONE_NEWNS;
            }
            if hostname.is_some() {
                flags |= libc::CLONE_NEWUTS;
            }
            if flags != 0 {
                check(libc::unshare(flags))?;
            }
            if flags & libc::CLONE_NEWNS != 0 {
                // Keep the mounts below private to this process tree.
                check(libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_SLAVE,
                    std::ptr::null(),
                ))?;
            }
            for (src, dst) in &binds {
                check(libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            if netns.is_some() {
                // sysfs shows the interfaces of the namespace that mounts it: the container's
                // own /sys/class/net, as `ip netns exec` does. Best effort: a process without
                // it still runs.
                libc::mount(
                    sysfs.as_ptr(),
                    sys.as_ptr(),
                    sysfs.as_ptr(),
                    0,
                    std::ptr::null(),
                );
            }
            if let Some(name) = &hostname {
                check(libc::sethostname(name.as_ptr().cast(), name.len()))?;
            }
            Ok(())
        });
    }
    Ok(())
}

/// Starts `command` in the sandbox, in a session of its own (it outlives a daemon restart),
/// with stdout and stderr appended to `log`.
pub fn spawn(
    command: &[String],
    env: &SandboxEnv,
    log: &Path,
) -> Result<(tokio::process::Child, Process), ProcessError> {
    let open = |source| ProcessError::Open {
        path: log.to_path_buf(),
        source,
    };
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(open)?;
    let err = out.try_clone().map_err(open)?;
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    enter_on_exec(&mut cmd, env, true)?;
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(false);
    let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        command: command.join(" "),
        source,
    })?;
    let pid = child.id().expect("a child that was just spawned has a pid") as i32;
    let process = Process {
        pid,
        start_ticks: start_ticks(pid).unwrap_or(0),
        started: chrono::Utc::now(),
        exit_code: None,
        finished: None,
    };
    Ok((child, process))
}

/// Start time of `pid` in clock ticks since boot, or `None` if it is gone or a zombie.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether the process recorded as `p` still runs (and is not another one with its pid).
pub fn alive(p: &Process) -> bool {
    start_ticks(p.pid).is_some_and(|t| p.start_ticks == 0 || t == p.start_ticks)
}

/// Asks the whole session of a container process to end (SIGTERM), as `docker stop` does
/// before it kills.
pub fn terminate(p: &Process) {
    if alive(p) {
        // SAFETY: plain kill(2); -pid addresses the process group the container leads.
        unsafe {
            libc::kill(-p.pid, libc::SIGTERM);
            libc::kill(p.pid, libc::SIGTERM);
        }
    }
}

/// Kills the whole session of a container process.
pub fn kill(p: &Process) {
    if alive(p) {
        // SAFETY: plain kill(2); -pid addresses the process group the container leads.
        unsafe {
            libc::kill(-p.pid, libc::SIGKILL);
            libc::kill(p.pid, libc::SIGKILL);
        }
    }
}

/// Kills every process living in the network namespace at `netns` (SIGKILL), the daemon
/// excepted; returns how many. For a namespace netd made for one container, these are its
/// process and whatever `netd exec` started there, as `docker rm -f` stops them all.
pub fn kill_all_in(netns: &std::path::Path) -> usize {
    use crate::netns::NsId;
    let Ok(target) = NsId::of(netns) else {
        return 0;
    };
    let me = std::process::id().to_string();
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Ok(pid) = name.to_string_lossy().parse::<i32>() else {
            continue;
        };
        if name.to_string_lossy() == me {
            continue;
        }
        if NsId::of(&entry.path().join("ns/net")).is_ok_and(|id| id == target) {
            // SAFETY: plain kill(2) on a process in the container's own namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed += 1;
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_ticks_are_read() {
        let me = std::process::id() as i32;
        assert!(start_ticks(me).is_some_and(|t| t > 0));
        assert_eq!(start_ticks(i32::MAX), None);
    }
}
