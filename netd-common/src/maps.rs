//! Names of the BPF maps and programs, shared so that the loader and the object agree.

/// Per-interface packet and byte counters (`PerCpuHashMap<IfaceKey, IfaceCounters>`).
pub const IFACE_COUNTERS: &str = "NETD_IFACE_CTRS";
/// Capacity of [`IFACE_COUNTERS`]: one entry per container interface on the host.
pub const IFACE_COUNTERS_MAX: u32 = 16_384;

/// TC program attached to the ingress of each bridge port (traffic leaving a container).
pub const PROG_PORT_INGRESS: &str = "netd_port_ingress";
/// TC program attached to the egress of each bridge port (traffic entering a container).
pub const PROG_PORT_EGRESS: &str = "netd_port_egress";
