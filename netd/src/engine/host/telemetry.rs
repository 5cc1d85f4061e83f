//! What the datapath and the DNS counted, read for metrics, stats and `netd monitor`.

use std::net::Ipv4Addr;

use netd_common::{
    counters::IfaceCounters,
    isolation::{DropCounters, DropKey},
    nat::{PortStats, PortStatsKey},
};

use super::CountedAt;
use crate::datapath::stats::Usage;

#[async_trait::async_trait]
pub trait Telemetry: Send + Sync {
    /// The counters of each of these interfaces (zero for one that is gone), read with one
    /// look at the links whatever their number.
    async fn port_counters(&self, at: &[CountedAt]) -> Vec<IfaceCounters>;
    /// Traffic of published ports that saw connections, summed over CPUs.
    fn port_stats(&self) -> Vec<(PortStatsKey, PortStats)>;
    /// Entries and capacity of the datapath's maps, and conntrack entries by kind.
    fn usage(&self) -> Usage;
    /// What the datapath dropped, summed over CPUs.
    fn drops(&self) -> Vec<(DropKey, DropCounters)>;
    /// Connections each backend (by address) of VIP `id` was chosen for.
    fn vip_connections(&self, id: u32) -> Vec<(Ipv4Addr, u64)>;
    /// What the embedded DNS servers counted.
    fn dns_counters(&self) -> Vec<crate::dns::DnsCounts>;
    /// Makes the programs write `netd monitor` events (someone watches) or not.
    fn set_monitor(&self, on: bool);
}
