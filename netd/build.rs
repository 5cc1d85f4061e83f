//! Builds the eBPF object (netd-ebpf, for bpfel-unknown-none with nightly and bpf-linker) into
//! OUT_DIR, where the daemon embeds it.
//!
//! Done by hand rather than with aya-build, which fixes the compiler flags: the object is
//! generated for BPF v3 (`-Ctarget-cpu=v3`, kernel 5.1+ for the instructions, 5.12+ for atomic
//! fetch-and-add, which the round robin of virtual IPs needs).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{anyhow, bail, Context as _};

const TARGET: &str = "bpfel-unknown-none";

fn main() -> anyhow::Result<()> {
    // The fuzz targets (`cargo fuzz`, which sets `--cfg fuzzing`) drive netd's parsers and
    // checks only: they load no program, and the object is left empty there.
    if env::var_os("CARGO_CFG_FUZZING").is_some() {
        let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
        std::fs::write(out_dir.join("netd"), b"")?;
        return Ok(());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("netd lives inside the workspace")?
        .join("netd-ebpf");
    // netd-common is compiled into the object too.
    println!("cargo:rerun-if-changed={}", root.display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("../netd-common/src").display()
    );
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH not set")?;
    // Separate from OUT_DIR's own files, and from the workspace's target dir, which the outer
    // cargo holds locked.
    let target_dir = out_dir.join("ebpf-target");
    let rustflags = [
        &format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2",
        "-Clink-arg=--btf",
        "-Ctarget-cpu=v3",
    ]
    .join("\x1f");
    // A benchmark-only variant (`no-counters`) is asked for by the environment.
    println!("cargo:rerun-if-env-changed=NETD_EBPF_FEATURES");
    let mut features = env::var("NETD_EBPF_FEATURES").unwrap_or_default();
    // The programs share the daemon's map layouts.
    if env::var_os("CARGO_FEATURE_TEST_GROWN_PORTS").is_some() {
        features = [features.as_str(), "test-grown-ports"]
            .into_iter()
            .filter(|f| !f.is_empty())
            .collect::<Vec<_>>()
            .join(",");
    }
    let output = Command::new("rustup")
        .args(["run", "nightly", "cargo", "build", "--package", "netd-ebpf"])
        .args(["--features", &features])
        .args(["--bins", "--release", "--target", TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&root)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        // The outer build's compiler settings are for the host, not for this target.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        .output()
        .context("running `rustup run nightly cargo build` for netd-ebpf (cargo xtask setup installs the toolchain)")?;
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        println!("cargo:warning={line}");
    }
    if !output.status.success() {
        bail!("building netd-ebpf failed: {}", output.status);
    }
    let object = target_dir.join(TARGET).join("release").join("netd");
    std::fs::copy(&object, out_dir.join("netd"))
        .map_err(|e| anyhow!("copying {} into OUT_DIR: {e}", object.display()))?;
    Ok(())
}
