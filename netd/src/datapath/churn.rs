//! Typed handle for the conntrack churn counts (`NETD_CT_CHURN`): entries in and out of the
//! two tables, by writer. The programs count theirs per CPU; the daemon counts what its
//! collection and its flushes remove, each in a slot of its own (a per-CPU slot is written
//! whole from userspace, so two writers of one slot would lose counts).

use std::{
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    sync::atomic::{AtomicU64, Ordering},
};

use aya::{
    maps::{Map, MapData, MapError, PerCpuArray, PerCpuValues},
    util::nr_cpus,
};
use netd_common::{
    churn::{CtChurn, CHURN_SLOTS},
    maps,
};

use super::DatapathError;

pub struct ChurnCounts {
    map: PerCpuArray<MapData, CtChurn>,
    /// The map's descriptor again, for handles of other writers.
    fd: OwnedFd,
}

fn map_err(source: MapError) -> DatapathError {
    DatapathError::Map {
        name: maps::CT_CHURN,
        source,
    }
}

fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd, DatapathError> {
    fd.try_clone_to_owned().map_err(|io_error| {
        map_err(MapError::SyscallError(aya::sys::SyscallError {
            call: "dup",
            io_error,
        }))
    })
}

impl ChurnCounts {
    pub(super) fn open(map: Map) -> Result<Self, DatapathError> {
        let fd = match &map {
            Map::PerCpuArray(data) => Some(dup(data.fd().as_fd())?),
            _ => None,
        };
        // The conversion refuses a map of another type, so `fd` is there past it.
        let map = PerCpuArray::try_from(map).map_err(map_err)?;
        let fd = fd.ok_or_else(|| {
            map_err(MapError::InvalidName {
                name: maps::CT_CHURN.into(),
            })
        })?;
        Ok(Self { map, fd })
    }

    /// A handle of its own on the same map, for a writer on another thread.
    pub(super) fn try_clone(&self) -> Result<Self, DatapathError> {
        let fd = dup(self.fd.as_fd())?;
        let data = MapData::from_fd(dup(fd.as_fd())?).map_err(map_err)?;
        let map = PerCpuArray::try_from(Map::PerCpuArray(data)).map_err(map_err)?;
        Ok(Self { map, fd })
    }

    /// Every writer's counts, summed.
    pub fn total(&self) -> CtChurn {
        let mut sum = CtChurn::default();
        for slot in 0..CHURN_SLOTS {
            if let Ok(per_cpu) = self.map.get(&slot, 0) {
                per_cpu.iter().for_each(|c| sum.merge(c));
            }
        }
        sum
    }

    /// Adds `delta` to `slot`, one the daemon writes: its count is kept in CPU 0's value.
    pub fn record(&mut self, slot: u32, delta: CtChurn) {
        if delta == CtChurn::default() {
            return;
        }
        if let Err(e) = self.try_record(slot, delta) {
            log::warn!("counting conntrack entries removed: {e}");
        }
    }

    fn try_record(&mut self, slot: u32, delta: CtChurn) -> Result<(), DatapathError> {
        let mut now = self.slot(slot)?;
        now.merge(&delta);
        self.set(slot, now)
    }

    fn slot(&self, slot: u32) -> Result<CtChurn, DatapathError> {
        let per_cpu = self.map.get(&slot, 0).map_err(map_err)?;
        let mut sum = CtChurn::default();
        per_cpu.iter().for_each(|c| sum.merge(c));
        Ok(sum)
    }

    fn set(&mut self, slot: u32, value: CtChurn) -> Result<(), DatapathError> {
        let cpus = nr_cpus().map_err(|(_, io_error)| {
            map_err(MapError::SyscallError(aya::sys::SyscallError {
                call: "nr_cpus",
                io_error,
            }))
        })?;
        let mut values = vec![CtChurn::default(); cpus];
        values[0] = value;
        let values = PerCpuValues::try_from(values).map_err(|io_error| {
            map_err(MapError::SyscallError(aya::sys::SyscallError {
                call: "per-cpu values",
                io_error,
            }))
        })?;
        self.map.set(slot, values, 0).map_err(map_err)
    }

    /// Makes the counts describe the tables as they are at load: zero if the tables were
    /// made anew (old counts describe entries that are gone), or the entries already there
    /// if the counts are new and the tables are not (a daemon of a build before the counts).
    pub(super) fn baseline(
        &mut self,
        tables_reset: bool,
        counts_new: bool,
        live: impl FnOnce() -> (u64, u64),
    ) -> Result<(), DatapathError> {
        if tables_reset && !counts_new {
            for slot in 0..CHURN_SLOTS {
                self.set(slot, CtChurn::default())?;
            }
        } else if counts_new && !tables_reset {
            let (main, pending) = live();
            self.set(
                netd_common::churn::CHURN_FLUSH,
                CtChurn {
                    main_added: main,
                    pending_added: pending,
                    ..CtChurn::default()
                },
            )?;
        }
        Ok(())
    }
}

/// The eviction figures reported so far: a counter must not go back when a busy table's
/// estimate dips (see [`CtChurn::evicted`]).
#[derive(Default)]
pub struct EvictionsSeen {
    main: AtomicU64,
    pending: AtomicU64,
}

impl EvictionsSeen {
    pub fn report(&self, (main, pending): (u64, u64)) -> (u64, u64) {
        let keep = |seen: &AtomicU64, now: u64| seen.fetch_max(now, Ordering::Relaxed).max(now);
        (keep(&self.main, main), keep(&self.pending, pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_evictions_never_go_back() {
        let seen = EvictionsSeen::default();
        assert_eq!(seen.report((5, 100)), (5, 100));
        assert_eq!(seen.report((3, 120)), (5, 120));
        assert_eq!(seen.report((9, 0)), (9, 120));
    }
}
