//! Container processes that no state records: a daemon killed between starting a process and
//! recording it leaves one running. A container process writes to its container's log (its
//! stdout and stderr), and leads a session of its own: a process whose output goes to one of
//! this state dir's container logs belongs to the container recorded with its session's
//! leader, or to nothing.

use std::path::Path;

/// A process writing to a container log under `containers_dir`.
#[derive(Debug, PartialEq, Eq)]
pub struct LogWriter {
    pub pid: i32,
    /// Its session: the container process that started it, or itself.
    pub session: i32,
    pub container_id: String,
}

/// The container id of a log path under `containers_dir` (`ID/log`), also once the file is
/// deleted (the kernel adds " (deleted)" to the link).
pub fn container_of_log(containers_dir: &Path, link: &str) -> Option<String> {
    let link = link.strip_suffix(" (deleted)").unwrap_or(link);
    let rest = Path::new(link).strip_prefix(containers_dir).ok()?;
    let mut parts = rest.components();
    let id = parts.next()?.as_os_str().to_str()?.to_string();
    (parts.next()?.as_os_str() == "log" && parts.next().is_none()).then_some(id)
}

/// The session id in the text of `/proc/PID/stat`.
pub fn session_of_stat(stat: &str) -> Option<i32> {
    // Fields after the command name, which is in parentheses and may contain spaces:
    // state, ppid, pgrp, session.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(3)?.parse().ok()
}

/// Every process whose stdout or stderr is a container log under `containers_dir`.
pub fn log_writers(containers_dir: &Path) -> Vec<LogWriter> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let proc = entry.path();
        let container_id = [1, 2].iter().find_map(|fd| {
            let link = std::fs::read_link(proc.join(format!("fd/{fd}"))).ok()?;
            container_of_log(containers_dir, link.to_str()?)
        });
        let Some(container_id) = container_id else {
            continue;
        };
        let Some(session) = std::fs::read_to_string(proc.join("stat"))
            .ok()
            .and_then(|s| session_of_stat(&s))
        else {
            continue;
        };
        found.push(LogWriter {
            pid,
            session,
            container_id,
        });
    }
    found
}

/// Whether `a` and `b` share a mount namespace: a container process's children do, even
/// one that left its session (a daemon that forks and calls setsid).
pub fn same_mount_namespace(a: i32, b: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ns = |pid: i32| std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok();
    let own = ns(std::process::id() as i32);
    match (ns(a), ns(b)) {
        // The daemon's own mount namespace is no container's.
        (Some(a), Some(b)) => {
            a.ino() == b.ino()
                && a.dev() == b.dev()
                && own.is_none_or(|o| o.ino() != a.ino() || o.dev() != a.dev())
        }
        _ => false,
    }
}

/// Kills `pid` (SIGKILL).
pub fn kill_pid(pid: i32) {
    // SAFETY: plain kill(2) on a process found writing to one of this daemon's logs.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_log_names_its_container_even_deleted() {
        let dir = Path::new("/var/lib/netd/containers");
        assert_eq!(
            container_of_log(dir, "/var/lib/netd/containers/abc/log").as_deref(),
            Some("abc")
        );
        assert_eq!(
            container_of_log(dir, "/var/lib/netd/containers/abc/log (deleted)").as_deref(),
            Some("abc")
        );
        assert_eq!(
            container_of_log(dir, "/var/lib/netd/containers/abc/hosts"),
            None
        );
        assert_eq!(
            container_of_log(dir, "/var/lib/other/containers/abc/log"),
            None
        );
        assert_eq!(container_of_log(dir, "/dev/null"), None);
    }

    #[test]
    fn the_session_is_read_past_a_command_with_spaces() {
        let stat = "4242 (sleep (a) b) S 1 4242 4240 0 -1 4194560";
        assert_eq!(session_of_stat(stat), Some(4240));
    }
}
