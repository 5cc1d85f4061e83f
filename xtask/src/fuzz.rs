//! `cargo xtask fuzz`: the fuzz targets of netd's front doors (fuzz/, `cargo fuzz` on the
//! nightly toolchain), each from its seeds for a bounded time. `cargo xtask test` runs each
//! briefly; a finding fails the run and leaves its input under fuzz/artifacts/TARGET/.

use anyhow::{Context, Result};

use crate::cmd;

/// Every target, as fuzz/Cargo.toml names them.
pub const TARGETS: &[&str] = &["api_requests", "docker_plugin", "cni_plugin", "parsers"];

/// Seconds each target runs in `cargo xtask test`.
pub const TEST_SECS: u64 = 20;

/// Builds every target once, then runs each for `secs` seconds from its seeds; new inputs go
/// to a throwaway corpus, so that the work tree stays as it is.
pub fn run(targets: &[String], secs: u64) -> Result<()> {
    let root = crate::workspace_root();
    let mut build = fuzz_command();
    build.arg("build");
    cmd::run(build)?;
    let corpus = tempfile_dir()?;
    for target in targets {
        let seeds = root.join("fuzz/seeds").join(target);
        let scratch = corpus.join(target);
        std::fs::create_dir_all(&scratch)?;
        println!("xtask fuzz: {target} for {secs} s");
        let mut run = fuzz_command();
        run.args(["run", target])
            .arg(&scratch)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={secs}"))
            .arg("-print_final_stats=1");
        cmd::run(run).with_context(|| {
            format!("fuzz target {target} found a failing input: see fuzz/artifacts/{target}/")
        })?;
    }
    let _ = std::fs::remove_dir_all(&corpus);
    Ok(())
}

fn fuzz_command() -> std::process::Command {
    // Through the rustup proxy: `+nightly` does not work on the `cargo` that runs xtask.
    let mut fuzz = cmd::new("cargo");
    fuzz.current_dir(crate::workspace_root())
        .args(["+nightly", "fuzz"])
        .env_remove("RUSTUP_TOOLCHAIN");
    fuzz
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("netd-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
