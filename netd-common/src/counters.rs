//! Per-interface counters kept by the bridge-port programs.

/// Key of the interface counter map: the host-side interface index of a bridge port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct IfaceKey {
    pub ifindex: u32,
}
const _: () = assert!(core::mem::size_of::<IfaceKey>() == 4);
#[cfg(feature = "user")]
unsafe impl aya::Pod for IfaceKey {} // repr(C), no padding, any bit pattern valid

/// Counters of one bridge port, seen from the host side of the veth: `ingress` is what the
/// container sent, `egress` what was delivered to it. Per-CPU, summed by the reader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct IfaceCounters {
    pub ingress_packets: u64,
    pub ingress_bytes: u64,
    pub egress_packets: u64,
    pub egress_bytes: u64,
}
const _: () = assert!(core::mem::size_of::<IfaceCounters>() == 32);
#[cfg(feature = "user")]
unsafe impl aya::Pod for IfaceCounters {} // repr(C), no padding, any bit pattern valid

/// Direction of a bridge-port program, as seen from the host side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl IfaceCounters {
    /// Counts one packet of `len` bytes.
    #[inline(always)]
    pub fn count(&mut self, direction: Direction, len: u64) {
        match direction {
            Direction::Ingress => {
                self.ingress_packets += 1;
                self.ingress_bytes += len;
            }
            Direction::Egress => {
                self.egress_packets += 1;
                self.egress_bytes += len;
            }
        }
    }

    /// Adds another CPU's share.
    pub fn merge(&mut self, other: &Self) {
        self.ingress_packets += other.ingress_packets;
        self.ingress_bytes += other.ingress_bytes;
        self.egress_packets += other.egress_packets;
        self.egress_bytes += other.egress_bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_direction_and_merges() {
        let mut cpu0 = IfaceCounters::default();
        cpu0.count(Direction::Ingress, 100);
        cpu0.count(Direction::Egress, 60);
        let mut cpu1 = IfaceCounters::default();
        cpu1.count(Direction::Ingress, 40);
        cpu0.merge(&cpu1);
        assert_eq!(
            cpu0,
            IfaceCounters {
                ingress_packets: 2,
                ingress_bytes: 140,
                egress_packets: 1,
                egress_bytes: 60
            }
        );
    }
}
