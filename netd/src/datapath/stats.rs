//! Typed handle for what the metrics read at scrape time: traffic per published port, and how
//! full each map is.

use std::os::fd::AsFd;

use aya::maps::{IterableMap, MapData, PerCpuValues};
use netd_common::{
    maps,
    nat::{
        CtEntry, CtKey, PortKey, PortStats, PortStatsKey, PortTarget, CT_FLAG_DNAT, CT_FLAG_SNAT,
        CT_FLAG_VIP,
    },
};

use super::{batch, Datapath};

/// How full one map is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapUsage {
    pub name: &'static str,
    pub entries: usize,
    pub capacity: u32,
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

    /// Conntrack entries (both directions of each connection) by what their connection is:
    /// `published` (a published port), `vip` (a virtual IP's backend), `masquerade`.
    pub fn conntrack_kinds(&self) -> Vec<(&'static str, usize)> {
        let mut kinds = [("published", 0), ("vip", 0), ("masquerade", 0)];
        for (_, e) in self.conntrack_entries() {
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
        kinds.to_vec()
    }

    /// Entries and capacity of every map netd sizes (the Maglev tables are allocated per VIP
    /// and counted with the VIPs).
    pub fn map_usage(&self) -> Vec<MapUsage> {
        let batched = |fd: std::os::fd::BorrowedFd<'_>, big: bool| -> usize {
            // Conntrack and ports can hold 100,000s of entries: read them in batches.
            if big {
                batch::entries::<CtKey, CtEntry>(fd).map_or(0, |e| e.len())
            } else {
                batch::entries::<PortKey, PortTarget>(fd).map_or(0, |e| e.len())
            }
        };
        let mut usage = vec![
            MapUsage {
                name: maps::CONNTRACK,
                entries: batched(self.conntrack.map().fd().as_fd(), true),
                capacity: capacity(self.conntrack.map()),
            },
            MapUsage {
                name: maps::PORTS,
                entries: batched(self.ports.map().fd().as_fd(), false),
                capacity: capacity(self.ports.map()),
            },
        ];
        let mut small = |name, entries, map: &MapData| {
            usage.push(MapUsage {
                name,
                entries,
                capacity: capacity(map),
            })
        };
        small(
            maps::PORT_STATS,
            self.port_stats.keys().count(),
            self.port_stats.map(),
        );
        small(
            maps::IFACE_COUNTERS,
            self.iface_counters.keys().count(),
            self.iface_counters.map(),
        );
        small(
            maps::ENDPOINTS,
            self.endpoints.keys().count(),
            self.endpoints.map(),
        );
        small(
            maps::NETWORKS,
            self.networks.keys().count(),
            self.networks.map(),
        );
        small(maps::DROPS, self.drops.keys().count(), self.drops.map());
        small(maps::VIPS, self.vips.keys().count(), self.vips.map());
        small(
            maps::VIP_BACKENDS,
            self.vip_backends.keys().count(),
            self.vip_backends.map(),
        );
        small(
            maps::VIP_CONNECTIONS,
            self.vip_connections.keys().count(),
            self.vip_connections.map(),
        );
        small(
            maps::LOCAL_ADDRS,
            self.local_addrs.keys().count(),
            self.local_addrs.map(),
        );
        small(
            maps::UPLINKS,
            self.uplinks.keys().count(),
            self.uplinks.map(),
        );
        usage
    }
}
