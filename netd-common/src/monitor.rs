//! `netd monitor`: events the programs write to a ring buffer while someone watches: drops
//! with their reason and 5-tuple, and new connections through published ports and VIPs.

/// A packet dropped (`reason` and `direction` as in the drop counters).
pub const EVENT_DROP: u8 = 1;
/// A new connection through a published port.
pub const EVENT_PUBLISHED: u8 = 2;
/// A new connection to a virtual IP.
pub const EVENT_VIP: u8 = 3;

/// Events a CPU may write per second: the sample when traffic is heavy (a flood of drops must
/// not turn into a flood of events).
pub const EVENTS_PER_CPU_SECOND: u64 = 2000;

/// One event, addresses and ports in network byte order (0 where the packet had none).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Event {
    pub kind: u8,
    pub reason: u8,
    pub direction: u8,
    pub proto: u8,
    /// Datapath id of the network concerned, 0 when none is.
    pub network: u32,
    pub ifindex: u32,
    pub saddr_be: u32,
    pub daddr_be: u32,
    pub sport_be: u16,
    pub dport_be: u16,
    /// Where a new connection was sent (a container's address and port).
    pub to_addr_be: u32,
    pub to_port_be: u16,
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<Event>() == 32);
#[cfg(feature = "user")]
unsafe impl aya::Pod for Event {} // repr(C), no padding, any bit pattern valid

/// The per-CPU window of the event rate limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RateWindow {
    pub start_ns: u64,
    pub events: u64,
}
#[cfg(feature = "user")]
unsafe impl aya::Pod for RateWindow {} // repr(C), no padding, any bit pattern valid

impl RateWindow {
    /// Whether one more event fits in the second that started at `start_ns`; starts a new
    /// second when that one is over.
    #[inline(always)]
    pub fn admit(&mut self, now_ns: u64) -> bool {
        if now_ns.wrapping_sub(self.start_ns) >= 1_000_000_000 {
            self.start_ns = now_ns;
            self.events = 0;
        }
        if self.events >= EVENTS_PER_CPU_SECOND {
            return false;
        }
        self.events += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_admits_a_second_s_worth_then_waits() {
        let mut w = RateWindow::default();
        let t0 = 5_000_000_000;
        let admitted = (0..EVENTS_PER_CPU_SECOND + 50)
            .filter(|i| w.admit(t0 + i))
            .count();
        assert_eq!(admitted as u64, EVENTS_PER_CPU_SECOND);
        assert!(!w.admit(t0 + 999_999_999));
        assert!(w.admit(t0 + 1_000_000_000), "a new second");
    }
}
