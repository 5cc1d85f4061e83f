//! What came into and went out of the conntrack tables, from which the daemon tells how many
//! entries the LRU tables evicted (the kernel does not count them).

/// Entries that came into and left the two conntrack tables, by one writer (a slot of
/// `NETD_CT_CHURN` each: the programs per CPU, the daemon's collection, its flushes). An
/// LRU table reports no eviction: what it evicted is what came in, less what was taken out,
/// less what is in it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CtChurn {
    pub main_added: u64,
    pub main_removed: u64,
    pub pending_added: u64,
    pub pending_removed: u64,
}
const _: () = assert!(core::mem::size_of::<CtChurn>() == 32);
#[cfg(feature = "user")]
unsafe impl aya::Pod for CtChurn {} // repr(C), no padding, any bit pattern valid

/// Slots of `NETD_CT_CHURN`, one per writer: a per-CPU slot written by the programs, and
/// two the daemon writes (on CPU 0's value) from its collection and from its flushes, which
/// run on different threads.
pub const CHURN_DATAPATH: u32 = 0;
pub const CHURN_COLLECTOR: u32 = 1;
pub const CHURN_FLUSH: u32 = 2;
pub const CHURN_SLOTS: u32 = 3;

impl CtChurn {
    pub fn merge(&mut self, o: &Self) {
        self.main_added = self.main_added.wrapping_add(o.main_added);
        self.main_removed = self.main_removed.wrapping_add(o.main_removed);
        self.pending_added = self.pending_added.wrapping_add(o.pending_added);
        self.pending_removed = self.pending_removed.wrapping_add(o.pending_removed);
    }

    /// Entries the tables evicted (main, pending), given the entries they hold now. The
    /// counts are read while packets go on, so a busy table's figure is off by the entries
    /// that came and went during the read; it never goes below 0.
    pub fn evicted(&self, main_live: u64, pending_live: u64) -> (u64, u64) {
        let gone = |added: u64, removed: u64, live: u64| {
            added.saturating_sub(removed).saturating_sub(live)
        };
        (
            gone(self.main_added, self.main_removed, main_live),
            gone(self.pending_added, self.pending_removed, pending_live),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicted_is_what_came_in_less_what_left_and_what_is_there() {
        let mut sum = CtChurn::default();
        sum.merge(&CtChurn {
            main_added: 10,
            main_removed: 2,
            pending_added: 100,
            pending_removed: 10,
        });
        sum.merge(&CtChurn {
            main_added: 4,
            main_removed: 2,
            pending_added: 20,
            pending_removed: 0,
        });
        assert_eq!(sum.evicted(10, 60), (0, 50));
        assert_eq!(sum.evicted(7, 110), (3, 0));
        // Entries read that came in after the counters were: no negative evictions.
        assert_eq!(sum.evicted(12, 200), (0, 0));
    }
}
