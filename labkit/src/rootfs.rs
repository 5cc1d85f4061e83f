//! The image's root filesystem: busybox-static and its applets, and optionally host binaries
//! with the shared libraries they load (a benchmark's own peer program).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{LabError, Result};

/// Builds the rootfs under `dir/rootfs` and returns it as a tar archive.
pub fn busybox_rootfs(dir: &Path, binaries: &[&Path]) -> Result<Vec<u8>> {
    let rootfs = dir.join("rootfs");
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| LabError(format!("{what}: {e}"))
    };
    for sub in ["bin", "etc", "proc", "sys", "dev", "tmp", "www"] {
        std::fs::create_dir_all(rootfs.join(sub)).map_err(io("rootfs"))?;
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .map_err(io("/bin/busybox (busybox-static)"))?;
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .map_err(io("busybox --list"))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        // Not busybox itself: a link to itself would replace the binary.
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    for binary in binaries {
        for file in std::iter::once(binary.to_path_buf()).chain(libraries(binary)?) {
            let to = rootfs.join(file.strip_prefix("/").unwrap_or(&file));
            std::fs::create_dir_all(to.parent().expect("a file has a parent"))
                .map_err(io("rootfs"))?;
            std::fs::copy(&file, &to).map_err(io(&file.display().to_string()))?;
        }
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .output()
        .map_err(io("tar"))?;
    if !tar.status.success() {
        return Err(LabError(format!(
            "tar of {}: {}",
            rootfs.display(),
            String::from_utf8_lossy(&tar.stderr)
        )));
    }
    Ok(tar.stdout)
}

/// The shared libraries `binary` loads, as `ldd` resolves them (the loader included).
fn libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| LabError(format!("ldd {}: {e}", binary.display())))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect())
}
