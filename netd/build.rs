//! Builds the eBPF object (netd-ebpf, for bpfel-unknown-none with nightly and bpf-linker) into
//! OUT_DIR, where the daemon embeds it.

use anyhow::{anyhow, Context as _};

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("netd lives inside the workspace")?
        .join("netd-ebpf");
    let root = root
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {root:?}"))?;
    // netd-common is compiled into the object too.
    println!("cargo:rerun-if-changed={root}/../netd-common/src");
    let ebpf = aya_build::Package {
        name: "netd-ebpf",
        root_dir: root,
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::default())
}
