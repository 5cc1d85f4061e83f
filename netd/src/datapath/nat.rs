//! Typed handles for address translation: published ports, connection tracking, the host's
//! addresses, masqueraded subnets and uplinks.

use std::{
    net::Ipv4Addr,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use aya::maps::{lpm_trie::Key, HashMap, IterableMap, MapData, MapError};
use bytemuck::bytes_of;
use ipnetwork::Ipv4Network;
use netd_common::{
    churn::{CtChurn, CHURN_COLLECTOR, CHURN_FLUSH},
    maps,
    nat::{timeout_ns, CtEntry, CtKey, PortKey, PortStatsKey, PortTarget, TcpState, Uplink},
};

use super::{batch, churn::ChurnCounts, tc::Direction, Datapath, DatapathError};

/// An address as the programs read it from a packet: the wire's bytes in memory order.
pub fn addr_be(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

pub fn ip_of(addr_be: u32) -> Ipv4Addr {
    Ipv4Addr::from(addr_be.to_ne_bytes())
}

/// One published port as the datapath sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publication {
    pub proto: u8,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub target_ip: Ipv4Addr,
    pub target_port: u16,
}

impl Publication {
    /// The key of this publication's traffic counters.
    pub fn stats_key(&self) -> PortStatsKey {
        PortStatsKey {
            target_addr_be: addr_be(self.target_ip),
            target_port_be: self.target_port.to_be(),
            host_port_be: self.host_port.to_be(),
            proto: self.proto,
            _pad: [0; 3],
        }
    }

    fn key(&self) -> PortKey {
        PortKey {
            addr_be: addr_be(self.host_ip),
            port_be: self.host_port.to_be(),
            proto: self.proto,
            _pad: 0,
        }
    }
}

const UPLINK_PROGRAMS: [(&str, Direction); 2] = [
    (maps::PROG_UPLINK_INGRESS, Direction::Ingress),
    (maps::PROG_UPLINK_EGRESS, Direction::Egress),
];

fn map_err(name: &'static str) -> impl Fn(MapError) -> DatapathError {
    move |source| DatapathError::Map { name, source }
}

fn batch_err(name: &'static str, call: &'static str) -> impl Fn(std::io::Error) -> DatapathError {
    move |io_error| DatapathError::Map {
        name,
        source: MapError::SyscallError(aya::sys::SyscallError { call, io_error }),
    }
}

impl Datapath {
    /// Installs published ports, all in one batched update: one map entry each, no rule to
    /// scan at packet time.
    pub fn publish(&mut self, publications: &[Publication]) -> Result<(), DatapathError> {
        let entries: Vec<(PortKey, PortTarget)> = publications
            .iter()
            .map(|p| {
                let target = PortTarget::new(addr_be(p.target_ip), p.target_port.to_be());
                (p.key(), target)
            })
            .collect();
        batch::update(self.ports.map().fd().as_fd(), &entries)
            .map_err(batch_err(maps::PORTS, "bpf_map_update_batch"))
    }

    pub fn unpublish(&mut self, publications: &[Publication]) -> Result<(), DatapathError> {
        let keys: Vec<PortKey> = publications.iter().map(Publication::key).collect();
        batch::delete(self.ports.map().fd().as_fd(), &keys)
            .map_err(batch_err(maps::PORTS, "bpf_map_delete_batch"))?;
        let stats: Vec<PortStatsKey> = publications.iter().map(Publication::stats_key).collect();
        self.forget_port_stats(&stats);
        Ok(())
    }

    pub fn published(&self) -> Vec<(PortKey, PortTarget)> {
        self.ports.iter().filter_map(Result::ok).collect()
    }

    /// What is published beyond `keep`: a crash between publishing and recording a
    /// container leaves such ports.
    pub fn published_beyond(&self, keep: &[Publication]) -> Vec<Publication> {
        let kept: std::collections::HashSet<PortKey> = keep.iter().map(Publication::key).collect();
        self.published()
            .into_iter()
            .filter(|(k, _)| !kept.contains(k))
            .map(|(k, t)| Publication {
                proto: k.proto,
                host_ip: ip_of(k.addr_be),
                host_port: u16::from_be(k.port_be),
                target_ip: ip_of(t.addr_be),
                target_port: u16::from_be(t.port_be),
            })
            .collect()
    }

    /// Forgets every tracked connection to or from `ip`, so that its translations stop at
    /// once (a replaced container gets its flows back within a packet, not a timeout).
    pub fn flush_conntrack(&mut self, ip: Ipv4Addr) -> usize {
        let a = addr_be(ip);
        self.remove_conntrack(|k, e| {
            [k.saddr_be, k.daddr_be, e.new_saddr_be, e.new_daddr_be].contains(&a)
        })
    }

    /// The conntrack tables on descriptors of their own, for a collection that runs on a
    /// blocking thread without this datapath's lock: reading a full table takes long enough
    /// to stall every API call and DNS answer that waits for the lock.
    pub fn conntrack_sweeper(&self) -> Result<ConntrackSweeper, DatapathError> {
        let dup = |table: &HashMap<MapData, CtKey, CtEntry>, name| {
            table
                .map()
                .fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|source| DatapathError::Map {
                    name,
                    source: MapError::SyscallError(aya::sys::SyscallError {
                        call: "dup",
                        io_error: source,
                    }),
                })
        };
        Ok(ConntrackSweeper {
            main: dup(&self.conntrack, maps::CONNTRACK)?,
            pending: dup(&self.conntrack_new, maps::CONNTRACK_NEW)?,
            churn: self.churn.try_clone()?,
        })
    }

    /// The collection itself, judged on `snapshot` (the table as read some time before). An
    /// entry is deleted only if it is still idle when it is taken: in between, the datapath
    /// may have given its key to a new connection (a client port reused), which must live.
    pub fn sweep_conntrack(&mut self, snapshot: &[(CtKey, CtEntry)], now_ns: u64) -> usize {
        // The snapshot may hold entries of either table: a key missing from one is skipped.
        let main = sweep(self.conntrack.map().fd().as_fd(), snapshot, now_ns);
        let pending = sweep(self.conntrack_new.map().fd().as_fd(), snapshot, now_ns);
        self.churn.record(CHURN_FLUSH, removed(main, pending));
        main + pending
    }

    fn remove_conntrack(&mut self, doomed: impl Fn(&CtKey, &CtEntry) -> bool) -> usize {
        let [main, pending] = [&self.conntrack, &self.conntrack_new].map(|table| {
            let keys: Vec<CtKey> = table_entries(table)
                .into_iter()
                .filter(|(k, e)| doomed(k, e))
                .map(|(k, _)| k)
                .collect();
            batch::delete(table.map().fd().as_fd(), &keys).unwrap_or_else(|e| {
                log::warn!("removing conntrack entries: {e}");
                0
            })
        });
        self.churn.record(CHURN_FLUSH, removed(main, pending));
        main + pending
    }

    /// Every tracked connection entry, answered and pending, read in batches.
    pub fn conntrack_entries(&self) -> Vec<(CtKey, CtEntry)> {
        let mut all = table_entries(&self.conntrack);
        all.extend(table_entries(&self.conntrack_new));
        all
    }

    /// Makes the host-address set exactly `addrs` (loopback is never in it).
    pub fn set_local_addrs(&mut self, addrs: &[Ipv4Addr]) -> Result<(), DatapathError> {
        let wanted: Vec<u32> = addrs
            .iter()
            .filter(|a| !a.is_loopback())
            .map(|a| addr_be(*a))
            .collect();
        let present: Vec<u32> = self.local_addrs.keys().filter_map(Result::ok).collect();
        for stale in present.iter().filter(|a| !wanted.contains(a)) {
            let _ = self.local_addrs.remove(stale);
        }
        for a in wanted.iter().filter(|a| !present.contains(a)) {
            self.local_addrs
                .insert(*a, 1, 0)
                .map_err(map_err(maps::LOCAL_ADDRS))?;
        }
        Ok(())
    }

    /// Makes the masqueraded subnets exactly `subnets`.
    /// New subnets go in before stale ones go out, so that no live subnet ever misses.
    pub fn set_masq_subnets(&mut self, subnets: &[Ipv4Network]) -> Result<(), DatapathError> {
        let wanted: Vec<(u32, u32)> = subnets
            .iter()
            .map(|n| (u32::from(n.prefix()), addr_be(n.network())))
            .collect();
        for (prefix, addr) in &wanted {
            self.masq_subnets
                .insert(&Key::new(*prefix, *addr), 1, 0)
                .map_err(map_err(maps::MASQ_SUBNETS))?;
        }
        let stale: Vec<Key<u32>> = self
            .masq_subnets
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !wanted.contains(&(k.prefix_len(), k.data())))
            .collect();
        for key in &stale {
            let _ = self.masq_subnets.remove(key);
        }
        Ok(())
    }

    /// The masqueraded subnets as the datapath has them.
    pub fn masq_subnets(&self) -> Vec<Ipv4Network> {
        self.masq_subnets
            .keys()
            .filter_map(Result::ok)
            .filter_map(|k| Ipv4Network::new(ip_of(k.data()), k.prefix_len() as u8).ok())
            .collect()
    }

    /// Attaches the uplink programs to `iface`; masqueraded connections leave with `addr`.
    pub fn attach_uplink(
        &mut self,
        iface: &str,
        ifindex: u32,
        addr: Ipv4Addr,
    ) -> Result<(), DatapathError> {
        self.set_uplink(ifindex, addr)?;
        self.attach_filters(iface, ifindex, &UPLINK_PROGRAMS)
    }

    /// Records the address connections masqueraded through uplink `ifindex` leave with.
    pub fn set_uplink(&mut self, ifindex: u32, addr: Ipv4Addr) -> Result<(), DatapathError> {
        self.uplinks
            .insert(
                ifindex,
                Uplink {
                    addr_be: addr_be(addr),
                },
                0,
            )
            .map_err(map_err(maps::UPLINKS))
    }
}

/// See [`Datapath::conntrack_sweeper`].
pub struct ConntrackSweeper {
    main: OwnedFd,
    pending: OwnedFd,
    churn: ChurnCounts,
}

impl ConntrackSweeper {
    /// Removes connections idle for longer than their timeout, both entries of a connection
    /// together and only when both are idle. `now_ns` is CLOCK_MONOTONIC, as in the kernel.
    pub fn gc(&mut self, now_ns: u64) -> usize {
        let (main, pending) = (self.main.as_fd(), self.pending.as_fd());
        let (main_now, pending_now) = (entries_of(main), entries_of(pending));
        let main = sweep(main, &main_now, now_ns);
        let pending = sweep(pending, &pending_now, now_ns);
        self.churn.record(CHURN_COLLECTOR, removed(main, pending));
        main + pending
    }
}

/// Churn of entries removed from the main and the pending table.
fn removed(main: usize, pending: usize) -> CtChurn {
    CtChurn {
        main_removed: main as u64,
        pending_removed: pending as u64,
        ..CtChurn::default()
    }
}

pub(super) fn table_entries(table: &HashMap<MapData, CtKey, CtEntry>) -> Vec<(CtKey, CtEntry)> {
    entries_of(table.map().fd().as_fd())
}

fn entries_of(fd: BorrowedFd<'_>) -> Vec<(CtKey, CtEntry)> {
    batch::entries(fd).unwrap_or_else(|e| {
        log::warn!("reading conntrack: {e}");
        Vec::new()
    })
}

/// [`Datapath::sweep_conntrack`] on the table behind `fd`. Returns the entries it removed.
fn sweep(fd: std::os::fd::BorrowedFd<'_>, snapshot: &[(CtKey, CtEntry)], now_ns: u64) -> usize {
    let expired = |k: &CtKey, e: &CtEntry| {
        now_ns.saturating_sub(e.last_seen_ns) > timeout_ns(k.proto, TcpState::from_u8(e.tcp_state))
    };
    let entries: std::collections::HashMap<CtKey, CtEntry> = snapshot.iter().copied().collect();
    // Each connection once: (key, its other direction's key if it has one).
    let mut doomed = Vec::new();
    for (k, e) in &entries {
        if !expired(k, e) {
            continue;
        }
        let other = e.partner(k.proto);
        match entries.get(&other) {
            None => doomed.push((*k, None)),
            Some(oe) if expired(&other, oe) && bytes_of(k) < bytes_of(&other) => {
                doomed.push((*k, Some(other)))
            }
            _ => {}
        }
    }
    let mut deleted = 0;
    for (key, other) in doomed {
        let mut taken = Vec::with_capacity(2);
        for k in std::iter::once(key).chain(other) {
            match batch::take::<CtKey, CtEntry>(fd, &k) {
                Ok(Some(e)) => taken.push((k, e)),
                Ok(None) => {}
                Err(e) => {
                    log::warn!("removing conntrack entries: {e}");
                    return deleted;
                }
            }
        }
        if taken.iter().all(|(k, e)| expired(k, e)) {
            deleted += taken.len();
            continue;
        }
        // A new connection holds one of the keys now: it stays, with its other half.
        for (k, e) in &taken {
            // Taken and not put back (the datapath made the key again meanwhile, and
            // counted it): removed, as far as the churn counts go.
            match batch::insert_new(fd, k, e) {
                Ok(true) => {}
                Ok(false) => deleted += 1,
                Err(e) => {
                    deleted += 1;
                    log::warn!("putting back a live conntrack entry: {e}");
                }
            }
        }
    }
    deleted
}
