//! Names of the BPF maps and programs, shared so that the loader and the object agree.

/// Per-interface packet and byte counters (`PerCpuHashMap<IfaceKey, IfaceCounters>`).
pub const IFACE_COUNTERS: &str = "NETD_IFACE_CTRS";
/// Capacity of [`IFACE_COUNTERS`]: one entry per container interface on the host.
pub const IFACE_COUNTERS_MAX: u32 = 16_384;

/// TC program attached to the ingress of each bridge port (traffic leaving a container).
pub const PROG_PORT_INGRESS: &str = "netd_port_ingress";
/// TC program attached to the egress of each bridge port (traffic entering a container).
pub const PROG_PORT_EGRESS: &str = "netd_port_egress";

/// TC programs on a macvlan endpoint's own interface, in the container's namespace: egress
/// (what the container sends) and ingress (what it receives).
pub const PROG_LAN_EGRESS: &str = "netd_lan_egress";
pub const PROG_LAN_INGRESS: &str = "netd_lan_ingress";

/// Published ports (`HashMap<PortKey, PortTarget>`).
pub const PORTS: &str = "NETD_PORTS";
pub const PORTS_MAX: u32 = 131_072;
/// Traffic per published port (`PerCpuHashMap<PortStatsKey, PortStats>`): the programs add
/// an entry with a publication's first connection; unpublishing removes it.
pub const PORT_STATS: &str = "NETD_PORT_STATS";
/// Connection tracking (`LruHashMap<CtKey, CtEntry>`), two entries per connection.
pub const CONNTRACK: &str = "NETD_CT";
/// The table's default size (`netd daemon --conntrack-max`), and the bounds a size must keep.
pub const CONNTRACK_MAX: u32 = 262_144;
pub const CONNTRACK_MIN_SIZE: u32 = 1024;
pub const CONNTRACK_MAX_SIZE: u32 = 16 * 1024 * 1024;
/// Connections that have not seen a reply yet (`LruHashMap<CtKey, CtEntry>`, both entries of
/// each): a flood of new flows churns this table, never the main one, which a connection
/// joins with its first reply.
pub const CONNTRACK_NEW: &str = "NETD_CT_NEW";
/// The pending table's size for a main table of `conntrack_max` entries.
pub const fn conntrack_new_max(conntrack_max: u32) -> u32 {
    let quarter = conntrack_max / 4;
    if quarter < CONNTRACK_MIN_SIZE {
        CONNTRACK_MIN_SIZE
    } else {
        quarter
    }
}
/// Connection-tracking activity (`PerCpuArray<CtStats>`, one slot).
pub const CT_STATS: &str = "NETD_CT_STATS";
/// Entries in and out of the conntrack tables by writer (`PerCpuArray<CtChurn>`, one slot
/// per writer: see `churn`).
pub const CT_CHURN: &str = "NETD_CT_CHURN";
/// First fragments' ports by datagram (`LruHashMap<FragKey, FragPorts>`), for the fragments
/// after them. LRU: a datagram's entry is needed for the few milliseconds its fragments take.
pub const FRAGMENTS: &str = "NETD_FRAGS";
pub const FRAGMENTS_MAX: u32 = 16_384;
/// The host's own IPv4 addresses, loopback excluded (`HashMap<u32, u32>`, value unused).
pub const LOCAL_ADDRS: &str = "NETD_LOCAL_ADDRS";
pub const LOCAL_ADDRS_MAX: u32 = 1024;
/// Container subnets whose outbound traffic is masqueraded (`LpmTrie<u32, u32>`).
pub const MASQ_SUBNETS: &str = "NETD_MASQ_NETS";
pub const MASQ_SUBNETS_MAX: u32 = 1024;
/// Uplinks by ifindex (`HashMap<u32, Uplink>`).
pub const UPLINKS: &str = "NETD_UPLINKS";
pub const UPLINKS_MAX: u32 = 64;

/// TC program on the ingress of each uplink: published ports and replies of masqueraded flows.
pub const PROG_UPLINK_INGRESS: &str = "netd_uplink_ingress";
/// TC program on the egress of each uplink: masquerade.
pub const PROG_UPLINK_EGRESS: &str = "netd_uplink_egress";
/// Socket-level reverse translation (`LruHashMap<SockKey, SockOrig>`).
pub const SOCK_REVNAT: &str = "NETD_SOCK_REVNAT";
pub const SOCK_REVNAT_MAX: u32 = 65_536;
/// Host facts for the programs (`Array<DatapathConfig>`, one slot).
pub const CONFIG: &str = "NETD_CONFIG";

/// Container interfaces by host-side ifindex (`HashMap<u32, isolation::Endpoint>`).
pub const ENDPOINTS: &str = "NETD_ENDPOINTS";
pub const ENDPOINTS_MAX: u32 = IFACE_COUNTERS_MAX;
/// Container addresses to their bridge port (`HashMap<u32, isolation::Member>`), for the
/// direct path between members of a network.
pub const MEMBERS: &str = "NETD_MEMBERS";
/// Bridge networks by datapath id (`HashMap<u32, isolation::NetworkPolicy>`).
pub const NETWORKS: &str = "NETD_NETWORKS";
pub const NETWORKS_MAX: u32 = 4096;
/// Subnets of bridge networks to their datapath id (`LpmTrie<u32, u32>`).
pub const NETWORK_SUBNETS: &str = "NETD_NET_SUBNETS";
/// Bridges by ifindex to their network's datapath id (`HashMap<u32, u32>`).
pub const BRIDGES: &str = "NETD_BRIDGES";
/// Drops by network, reason and direction (`PerCpuHashMap<DropKey, DropCounters>`).
pub const DROPS: &str = "NETD_DROPS";
pub const DROPS_MAX: u32 = 16_384;

/// Virtual IPs of aliases by address (`HashMap<u32, vip::Vip>`).
pub const VIPS: &str = "NETD_VIPS";
pub const VIPS_MAX: u32 = 4096;
/// Backends of each VIP by slot (`HashMap<vip::VipSlot, u32>`, the backend's address).
pub const VIP_BACKENDS: &str = "NETD_VIP_BACKENDS";
pub const VIP_BACKENDS_MAX: u32 = VIPS_MAX * crate::lb::MAX_BACKENDS as u32;
/// Maglev tables by VIP id (`HashMap<u32, vip::MaglevTable>`, allocated on use: 16 KiB each).
pub const VIP_MAGLEV: &str = "NETD_VIP_MAGLEV";
/// Connections each backend was chosen for (`PerCpuHashMap<vip::VipSlot, u64>`, by address).
pub const VIP_CONNECTIONS: &str = "NETD_VIP_CONNS";

/// `netd monitor` events (`RingBuf` of `monitor::Event`).
pub const EVENTS: &str = "NETD_EVENTS";
/// Bytes of the event ring (a power of two, a multiple of the page size).
pub const EVENTS_BYTES: u32 = 256 * 1024;
/// Whether anyone watches (`Array<u32>`, one slot): the programs write no event otherwise.
pub const MONITOR: &str = "NETD_MONITOR";
/// Per-CPU rate limit of events (`PerCpuArray<monitor::RateWindow>`, one slot).
pub const MONITOR_RATE: &str = "NETD_MON_RATE";

/// cgroup socket hooks: host processes reaching published ports (127.0.0.1 and host addresses).
pub const PROG_CONNECT4: &str = "netd_connect4";
pub const PROG_SENDMSG4: &str = "netd_sendmsg4";
pub const PROG_RECVMSG4: &str = "netd_recvmsg4";
pub const PROG_GETPEERNAME4: &str = "netd_getpeername4";

/// The meaning version of a pinned map's entries. The kernel records a pin's type, key size,
/// value size and entries; this is what it cannot see. Bump a map's version when its entries
/// change meaning at the same sizes, or when a field appended to its value must not start at
/// zero: a daemon then makes the map anew instead of moving the older entries into it.
pub fn layout_version(map: &str) -> u32 {
    LAYOUT_VERSIONS
        .iter()
        .find(|(name, _)| *name == map)
        .map_or(1, |(_, version)| *version)
}

/// The maps whose meaning version is past 1, e.g. `(CONNTRACK, 2)`.
const LAYOUT_VERSIONS: &[(&str, u32)] = &[];
