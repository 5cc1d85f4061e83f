//! What the real datapath and DNS counted.

use std::net::Ipv4Addr;

use netd_common::{
    counters::IfaceCounters,
    isolation::{DropCounters, DropKey},
    nat::{PortStats, PortStatsKey},
};

use super::LinuxHost;
use crate::{
    datapath::stats::Usage,
    engine::host::{CountedAt, Telemetry},
};

#[async_trait::async_trait]
impl Telemetry for LinuxHost {
    async fn port_counters(&self, at: &[CountedAt]) -> Vec<IfaceCounters> {
        // if_nametoindex is one ioctl in the calling thread's namespace (the daemon's): no
        // netlink round trip or link dump per scrape.
        let dp = self.datapath();
        at.iter()
            .map(|at| {
                match at {
                    CountedAt::Port(name) => nix::net::if_::if_nametoindex(name.as_str()).ok(),
                    CountedAt::Lan(index) => Some(*index),
                }
                .and_then(|i| dp.port_counters(i))
                .unwrap_or_default()
            })
            .collect()
    }

    fn port_stats(&self) -> Vec<(PortStatsKey, PortStats)> {
        self.datapath().port_stats()
    }

    fn usage(&self) -> Usage {
        self.datapath().usage()
    }

    fn drops(&self) -> Vec<(DropKey, DropCounters)> {
        self.datapath().drops()
    }

    fn vip_connections(&self, id: u32) -> Vec<(Ipv4Addr, u64)> {
        self.datapath().vip_connections(id)
    }

    fn dns_counters(&self) -> Vec<crate::dns::DnsCounts> {
        self.dns.counters()
    }

    fn set_monitor(&self, on: bool) {
        if let Err(e) = self.datapath().set_monitor(on) {
            log::warn!(
                "switching monitor events {}: {e}",
                if on { "on" } else { "off" }
            );
        }
    }
}
