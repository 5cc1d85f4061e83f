//! Typed handle for what the metrics read at scrape time: traffic per published port, and how
//! full each map is.

use std::os::fd::AsFd;

use aya::maps::{IterableMap, MapData, PerCpuValues};
use netd_common::{
    maps,
    nat::{PortKey, PortStats, PortStatsKey, PortTarget, CT_FLAG_DNAT, CT_FLAG_SNAT, CT_FLAG_VIP},
};

use super::{batch, Datapath};

/// How full one map is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapUsage {
    pub name: &'static str,
    pub entries: usize,
    pub capacity: u32,
    /// Entries LRU pushed out since the map was made, for the conntrack tables (other maps
    /// do not evict).
    pub evicted: Option<u64>,
}

impl MapUsage {
    /// Entries over capacity, 0 to 1.
    pub fn pressure(&self) -> f64 {
        if self.capacity == 0 {
            return 0.0;
        }
        self.entries as f64 / f64::from(self.capacity)
    }
}

/// Every map's fill, and the conntrack entries by kind of translation (published, vip,
/// masquerade; two entries per connection).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub maps: Vec<MapUsage>,
    pub conntrack: Vec<(&'static str, usize)>,
    /// Connections opened and inserts the table refused since the table was made.
    pub conntrack_stats: netd_common::nat::CtStats,
}

fn capacity(map: &MapData) -> u32 {
    map.info().map(|i| i.max_entries()).unwrap_or(0)
}

impl Datapath {
    /// Traffic of every published port that saw a connection, summed over CPUs.
    pub fn port_stats(&self) -> Vec<(PortStatsKey, PortStats)> {
        self.port_stats
            .iter()
            .filter_map(Result::ok)
            .map(|(k, per_cpu): (PortStatsKey, PerCpuValues<PortStats>)| {
                let mut sum = PortStats::default();
                per_cpu.iter().for_each(|c| sum.merge(c));
                (k, sum)
            })
            .collect()
    }

    /// Forgets the traffic of publications that are gone (missing keys are fine).
    pub fn forget_port_stats(&mut self, keys: &[PortStatsKey]) {
        if let Err(e) = batch::delete(self.port_stats.map().fd().as_fd(), keys) {
            log::warn!("forgetting published-port counters: {e}");
        }
    }

    /// Entries and capacity of every map netd sizes (the Maglev tables are allocated per VIP
    /// and counted with the VIPs), and the conntrack entries by kind, from one read of it.
    pub fn usage(&self) -> Usage {
        // The counts before the tables: see `CtChurn::evicted`.
        let churn = self.churn.total();
        let main = super::nat::table_entries(&self.conntrack);
        let pending = super::nat::table_entries(&self.conntrack_new);
        let (main_evicted, pending_evicted) = self
            .evictions_seen
            .report(churn.evicted(main.len() as u64, pending.len() as u64));
        let mut kinds = [("published", 0), ("vip", 0), ("masquerade", 0)];
        for (_, e) in main.iter().chain(&pending) {
            let i = if e.flags & CT_FLAG_VIP != 0 {
                1
            } else if e.flags & CT_FLAG_DNAT != 0 {
                0
            } else if e.flags & CT_FLAG_SNAT != 0 {
                2
            } else {
                continue;
            };
            kinds[i].1 += 1;
        }
        // Ports can hold 100,000s of entries: read in batches, like conntrack.
        let ports = batch::entries::<PortKey, PortTarget>(self.ports.map().fd().as_fd())
            .map_or(0, |e| e.len());
        let mut maps = Vec::new();
        let mut add_lru = |name, entries, map: &MapData, evicted| {
            maps.push(MapUsage {
                name,
                entries,
                capacity: capacity(map),
                evicted,
            })
        };
        add_lru(
            maps::CONNTRACK,
            main.len(),
            self.conntrack.map(),
            Some(main_evicted),
        );
        add_lru(
            maps::CONNTRACK_NEW,
            pending.len(),
            self.conntrack_new.map(),
            Some(pending_evicted),
        );
        let mut add = |name, entries, map: &MapData| add_lru(name, entries, map, None);
        add(maps::PORTS, ports, self.ports.map());
        add(
            maps::PORT_STATS,
            self.port_stats.keys().count(),
            self.port_stats.map(),
        );
        add(
            maps::IFACE_COUNTERS,
            self.iface_counters.keys().count(),
            self.iface_counters.map(),
        );
        add(
            maps::ENDPOINTS,
            self.endpoints.keys().count(),
            self.endpoints.map(),
        );
        add(
            maps::MEMBERS,
            self.members.keys().count(),
            self.members.map(),
        );
        add(
            maps::NETWORKS,
            self.networks.keys().count(),
            self.networks.map(),
        );
        add(maps::DROPS, self.drops.keys().count(), self.drops.map());
        add(maps::VIPS, self.vips.keys().count(), self.vips.map());
        add(
            maps::VIP_BACKENDS,
            self.vip_backends.keys().count(),
            self.vip_backends.map(),
        );
        add(
            maps::VIP_CONNECTIONS,
            self.vip_connections.keys().count(),
            self.vip_connections.map(),
        );
        add(
            maps::LOCAL_ADDRS,
            self.local_addrs.keys().count(),
            self.local_addrs.map(),
        );
        add(
            maps::UPLINKS,
            self.uplinks.keys().count(),
            self.uplinks.map(),
        );
        Usage {
            maps,
            conntrack: kinds.to_vec(),
            conntrack_stats: self.conntrack_stats(),
        }
    }
}
