//! `cargo xtask test`: formatting, lints (host crates and the eBPF crate) and every test tier.

use anyhow::Result;

use crate::cmd;

/// Host crates; the eBPF crate is linted separately for its own target.
const HOST_PACKAGES: &[&str] = &[
    "netd",
    "netd-common",
    "xtask",
    "integration-tests",
    "labkit",
];

pub fn all(filter: Option<&str>) -> Result<()> {
    let mut fmt = cmd::cargo();
    fmt.args(["fmt", "--all", "--check"]);
    cmd::run(fmt)?;

    let mut clippy = cmd::cargo();
    clippy
        .arg("clippy")
        .args(package_args())
        .args(["--all-targets", "--", "-D", "warnings"]);
    cmd::run(clippy)?;
    ebpf_clippy()?;

    // Unit tests (no privileges), then program test-runs and end-to-end tests, which need root.
    let mut unit = cmd::cargo();
    unit.args(["test", "-p", "netd-common", "-p", "netd"]);
    unit.args(filter);
    cmd::run(unit)?;

    // The end-to-end tests drive the netd binary itself. The upgrade test also runs a later
    // build's layout: built first and set aside (the same target dir, so only netd itself
    // is built twice; the plain build after it puts target/debug/netd back).
    let mut grown = cmd::cargo();
    grown.args(["build", "-p", "netd", "--features", "test-grown-ports"]);
    cmd::run(grown)?;
    let debug = crate::workspace_root().join("target/debug");
    std::fs::copy(debug.join("netd"), debug.join("netd-grown"))?;
    let mut build = cmd::cargo();
    build.args(["build", "-p", "netd"]);
    cmd::run(build)?;
    let mut integration = cmd::cargo();
    integration.args(["test", "-p", "integration-tests"]);
    integration.args(filter);
    cmd::run(integration)?;
    // The front doors' fuzz targets, briefly (`cargo xtask fuzz` runs them longer).
    if filter.is_none() {
        let targets: Vec<String> = crate::fuzz::TARGETS.iter().map(|t| t.to_string()).collect();
        crate::fuzz::run(&targets, crate::fuzz::TEST_SECS)?;
    }
    Ok(())
}

fn package_args() -> Vec<&'static str> {
    HOST_PACKAGES.iter().flat_map(|p| ["-p", *p]).collect()
}

fn ebpf_clippy() -> Result<()> {
    // Through the rustup proxy: `+nightly` does not work on the `cargo` that runs xtask.
    let mut clippy = cmd::new("cargo");
    clippy
        .current_dir(crate::workspace_root())
        .args([
            "+nightly",
            "clippy",
            "-p",
            "netd-ebpf",
            "--target",
            "bpfel-unknown-none",
        ])
        .args(["-Z", "build-std=core", "--", "-D", "warnings"])
        .env_remove("RUSTUP_TOOLCHAIN");
    cmd::run(clippy)
}
