//! Every map of the datapath. Pinned by name under the daemon's bpffs dir, so that a restarted
//! daemon finds the same counters and the programs keep running without it.

use aya_ebpf::{macros::map, maps::PerCpuHashMap};
use netd_common::counters::{IfaceCounters, IfaceKey};

/// Entries are created and removed by the control plane when it attaches to or detaches from a
/// port; the programs only update existing ones.
#[map(name = "NETD_IFACE_CTRS")]
pub static IFACE_COUNTERS: PerCpuHashMap<IfaceKey, IfaceCounters> =
    PerCpuHashMap::pinned(netd_common::maps::IFACE_COUNTERS_MAX, 0);
