//! Every map of the datapath. Pinned by name under the daemon's bpffs dir, so that a restarted
//! daemon finds the same state and the programs keep running without it.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{lpm_trie::LpmTrie, Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use netd_common::{
    churn::{CtChurn, CHURN_SLOTS},
    counters::{IfaceCounters, IfaceKey},
    isolation::{DropCounters, DropKey, Endpoint, Member, NetworkPolicy},
    maps as names,
    monitor::RateWindow,
    nat::{
        CtEntry, CtKey, CtStats, DatapathConfig, FragKey, FragPorts, PortKey, PortStats,
        PortStatsKey, PortTarget, SockKey, SockOrig, Uplink,
    },
    vip::{MaglevTable, Vip, VipSlot},
};

/// Entries are created and removed by the control plane when it attaches to or detaches from a
/// port; the programs only update existing ones.
#[map(name = "NETD_IFACE_CTRS")]
pub static IFACE_COUNTERS: PerCpuHashMap<IfaceKey, IfaceCounters> =
    PerCpuHashMap::pinned(names::IFACE_COUNTERS_MAX, 0);

#[map(name = "NETD_PORTS")]
pub static PORTS: HashMap<PortKey, PortTarget> = HashMap::pinned(names::PORTS_MAX, 0);

#[map(name = "NETD_PORT_STATS")]
pub static PORT_STATS: PerCpuHashMap<PortStatsKey, PortStats> =
    PerCpuHashMap::pinned(names::PORTS_MAX, 0);

/// LRU: under pressure the least recently used connections go first, never new ones.
#[map(name = "NETD_CT")]
pub static CONNTRACK: LruHashMap<CtKey, CtEntry> = LruHashMap::pinned(names::CONNTRACK_MAX, 0);

/// Connections without a reply yet: LRU, so that a flood of new flows evicts its own kind.
#[map(name = "NETD_CT_NEW")]
pub static CT_NEW: LruHashMap<CtKey, CtEntry> =
    LruHashMap::pinned(names::conntrack_new_max(names::CONNTRACK_MAX), 0);

#[map(name = "NETD_CT_STATS")]
pub static CT_STATS: PerCpuArray<CtStats> = PerCpuArray::pinned(1, 0);

#[map(name = "NETD_CT_CHURN")]
pub static CT_CHURN: PerCpuArray<CtChurn> = PerCpuArray::pinned(CHURN_SLOTS, 0);

#[map(name = "NETD_FRAGS")]
pub static FRAGMENTS: LruHashMap<FragKey, FragPorts> = LruHashMap::pinned(names::FRAGMENTS_MAX, 0);

#[map(name = "NETD_LOCAL_ADDRS")]
pub static LOCAL_ADDRS: HashMap<u32, u32> = HashMap::pinned(names::LOCAL_ADDRS_MAX, 0);

#[map(name = "NETD_MASQ_NETS")]
pub static MASQ_SUBNETS: LpmTrie<u32, u32> = LpmTrie::pinned(names::MASQ_SUBNETS_MAX, 0);

#[map(name = "NETD_UPLINKS")]
pub static UPLINKS: HashMap<u32, Uplink> = HashMap::pinned(names::UPLINKS_MAX, 0);

#[map(name = "NETD_CONFIG")]
pub static CONFIG: Array<DatapathConfig> = Array::pinned(1, 0);

#[map(name = "NETD_SOCK_REVNAT")]
pub static SOCK_REVNAT: LruHashMap<SockKey, SockOrig> =
    LruHashMap::pinned(names::SOCK_REVNAT_MAX, 0);

/// Written by the control plane before a port's programs are attached; a port without an
/// entry drops what its container sends.
#[map(name = "NETD_ENDPOINTS")]
pub static ENDPOINTS: HashMap<u32, Endpoint> = HashMap::pinned(names::ENDPOINTS_MAX, 0);

/// Container addresses to their bridge ports, for the direct path between members.
#[map(name = "NETD_MEMBERS")]
pub static MEMBERS: HashMap<u32, Member> = HashMap::pinned(names::ENDPOINTS_MAX, 0);

#[map(name = "NETD_NETWORKS")]
pub static NETWORKS: HashMap<u32, NetworkPolicy> = HashMap::pinned(names::NETWORKS_MAX, 0);

#[map(name = "NETD_NET_SUBNETS")]
pub static NETWORK_SUBNETS: LpmTrie<u32, u32> = LpmTrie::pinned(names::NETWORKS_MAX, 0);

#[map(name = "NETD_BRIDGES")]
pub static BRIDGES: HashMap<u32, u32> = HashMap::pinned(names::NETWORKS_MAX, 0);

/// The programs insert keys as drops happen; reasons and directions are few.
#[map(name = "NETD_DROPS")]
pub static DROPS: PerCpuHashMap<DropKey, DropCounters> = PerCpuHashMap::pinned(names::DROPS_MAX, 0);

#[map(name = "NETD_VIPS")]
pub static VIPS: HashMap<u32, Vip> = HashMap::pinned(names::VIPS_MAX, 0);

#[map(name = "NETD_VIP_BACKENDS")]
pub static VIP_BACKENDS: HashMap<VipSlot, u32> = HashMap::pinned(names::VIP_BACKENDS_MAX, 0);

/// 16 KiB a table: allocated when a Maglev VIP is created rather than for every possible one.
#[map(name = "NETD_VIP_MAGLEV")]
pub static VIP_MAGLEV: HashMap<u32, MaglevTable> =
    HashMap::pinned(names::VIPS_MAX, BPF_F_NO_PREALLOC);

#[map(name = "NETD_VIP_CONNS")]
pub static VIP_CONNECTIONS: PerCpuHashMap<VipSlot, u64> =
    PerCpuHashMap::pinned(names::VIP_BACKENDS_MAX, 0);

#[map(name = "NETD_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::pinned(names::EVENTS_BYTES, 0);

#[map(name = "NETD_MONITOR")]
pub static MONITOR: Array<u32> = Array::pinned(1, 0);

#[map(name = "NETD_MON_RATE")]
pub static MONITOR_RATE: PerCpuArray<RateWindow> = PerCpuArray::pinned(1, 0);
