//! `netd-cni`: the CNI plugin of netd, for runtimes (podman, containerd) to exec.

fn main() {
    std::process::exit(netd::cni::main());
}
