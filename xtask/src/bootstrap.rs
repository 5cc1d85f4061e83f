//! The idempotent machine bootstrap: install only what is missing, say what was installed.

use std::{fs, path::Path, process::Command};

use anyhow::{bail, Context, Result};

use crate::cmd;

/// Debian packages the build, the tests and the benchmarks use.
const APT_PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-ping",
    "curl",
    "bpftool",
    "iptables",
    "nftables",
    "iperf3",
    "python3",
    "gnuplot-nox",
    "tcpdump",
    "bind9-dnsutils",
    // For promtool (the metrics tests check the scrape with it); its server is never started.
    "prometheus",
    // The runtime tests start their own dockerd and podman (in a lab namespace, with their
    // own roots); the packages' services are never started. busybox-static is their image.
    "docker.io",
    "podman",
    "busybox-static",
    // The cluster tests run their own etcd members (in lab namespaces, with their own data
    // dirs); the package's service is never started. The etcd client's build needs protoc.
    "etcd-server",
    "protobuf-compiler",
    // The cluster tests make their etcd members' TLS certificates with it.
    "openssl",
];

/// Debian's way of telling package scripts not to start services: installing `prometheus`
/// `docker.io` or `podman` must not leave a server listening on the machine.
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn setup() -> Result<()> {
    apt_packages()?;
    nightly_rust_src()?;
    bpf_linker()?;
    cargo_fuzz()?;
    bpffs()
}

const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// cargo-fuzz, which builds and runs the fuzz targets (fuzz/) on the nightly toolchain.
fn cargo_fuzz() -> Result<()> {
    let bin = cmd::cargo_home_bin().join("cargo-fuzz");
    let installed = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION));
    if installed {
        return Ok(());
    }
    println!("xtask setup: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    let mut install = cmd::new("cargo");
    install
        .args(["+stable", "install", "cargo-fuzz", "--locked", "--version"])
        .arg(CARGO_FUZZ_VERSION)
        .env_remove("RUSTUP_TOOLCHAIN");
    cmd::run(install)
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|pkg| !apt_installed(pkg))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!(
        "xtask setup: installing apt packages: {}",
        missing.join(" ")
    );
    let mut update = Command::new("apt-get");
    update.args(["update", "-q"]);
    cmd::run(update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    let own_policy = !std::path::Path::new(POLICY_RC_D).exists();
    if own_policy {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(POLICY_RC_D, "#!/bin/sh\nexit 101\n")?;
        std::fs::set_permissions(POLICY_RC_D, std::fs::Permissions::from_mode(0o755))?;
    }
    let installed = cmd::run(install);
    if own_policy {
        let _ = std::fs::remove_file(POLICY_RC_D);
    }
    installed
}

fn apt_installed(pkg: &str) -> bool {
    let mut query = Command::new("dpkg-query");
    query.args(["-W", "-f=${Status}", pkg]);
    cmd::output(query).is_some_and(|status| status.ends_with("install ok installed"))
}

fn nightly_sysroot() -> Option<String> {
    let mut rustc = Command::new("rustc");
    rustc.args(["+nightly", "--print", "sysroot"]);
    cmd::output(rustc).filter(|s| !s.is_empty())
}

/// Installs nightly only when absent, and never updates it: an update would replace the
/// libLLVM that bpf-linker is linked against.
fn nightly_rust_src() -> Result<()> {
    let sysroot = match nightly_sysroot() {
        Some(sysroot) => sysroot,
        None => {
            println!("xtask setup: installing the nightly toolchain (minimal profile)");
            let mut install = Command::new("rustup");
            install.args(["toolchain", "install", "nightly", "--profile", "minimal"]);
            cmd::run(install)?;
            nightly_sysroot().context("nightly toolchain has no sysroot after install")?
        }
    };
    let rust_src = Path::new(&sysroot).join("lib/rustlib/src/rust/library/core");
    if !rust_src.exists() {
        nightly_component("rust-src")?;
    }
    // The eBPF crate is linted with the nightly's clippy.
    let mut clippy = Command::new("cargo");
    clippy.args(["+nightly", "clippy", "--version"]);
    if cmd::output(clippy).is_none() {
        nightly_component("clippy")?;
    }
    Ok(())
}

/// Adds a component to the installed nightly; this never changes its rustc or libLLVM.
fn nightly_component(name: &str) -> Result<()> {
    println!("xtask setup: adding {name} to the nightly toolchain");
    let mut add = Command::new("rustup");
    add.args(["component", "add", name, "--toolchain", "nightly"]);
    cmd::run(add)
}

/// bpf-linker 0.13.0 built against the nightly toolchain's own libLLVM (there is no system
/// LLVM of the right major here), with an rpath so that it finds it at run time.
fn bpf_linker() -> Result<()> {
    let sysroot = nightly_sysroot().context("nightly toolchain missing")?;
    let lib_dir = Path::new(&sysroot).join("lib");
    let linker = cmd::cargo_home_bin().join("bpf-linker");
    if bpf_linker_ok(&linker, &lib_dir) {
        return Ok(());
    }
    let libllvm = fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") || n.starts_with("libLLVM-"))
        })
        .with_context(|| format!("no libLLVM in {}", lib_dir.display()))?;
    let llvm_major = llvm_major()?;
    println!(
        "xtask setup: building bpf-linker {BPF_LINKER_VERSION} against {} (LLVM {llvm_major})",
        libllvm.display()
    );
    let prefix = std::env::temp_dir().join("netd-bpf-linker-llvm");
    fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link)?;
    let mut install = cmd::new("cargo");
    install
        .args([
            "+stable",
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
        ])
        .args(["--locked", "--force", "--no-default-features", "--features"])
        .arg(format!("llvm-{llvm_major}"))
        .env("LLVM_PREFIX", &prefix)
        .env(
            "RUSTFLAGS",
            format!("-C link-arg=-Wl,-rpath,{}", lib_dir.display()),
        );
    cmd::run(install)?;
    if !bpf_linker_ok(&linker, &lib_dir) {
        bail!(
            "bpf-linker at {} does not run after install",
            linker.display()
        );
    }
    Ok(())
}

fn llvm_major() -> Result<String> {
    let mut rustc = Command::new("rustc");
    rustc.args(["+nightly", "-vV"]);
    let info = cmd::output(rustc).context("rustc +nightly -vV failed")?;
    info.lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .map(str::to_string)
        .context("rustc +nightly -vV prints no LLVM version")
}

fn bpf_linker_ok(linker: &Path, llvm_lib_dir: &Path) -> bool {
    let mut version = Command::new(linker);
    version.arg("--version");
    let version = cmd::output(version);
    if !version.is_some_and(|v| v.contains(BPF_LINKER_VERSION)) {
        return false;
    }
    let mut ldd = Command::new("ldd");
    ldd.arg(linker);
    cmd::output(ldd).is_some_and(|libs| {
        libs.lines()
            .any(|l| l.contains("libLLVM") && l.contains(&*llvm_lib_dir.to_string_lossy()))
    })
}

/// netd pins maps and links under /sys/fs/bpf; mount bpffs there when it is not.
fn bpffs() -> Result<()> {
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    {
        return Ok(());
    }
    println!("xtask setup: mounting bpffs at /sys/fs/bpf");
    let mut mount = Command::new("mount");
    mount.args(["-t", "bpf", "bpf", "/sys/fs/bpf"]);
    cmd::run(mount)
}
