//! Virtual IPs of aliases: map types shared by the programs that pick a backend per new
//! connection and the control plane that keeps the backends in step with the containers.

use crate::lb::MAGLEV_SIZE;

/// How a virtual IP picks the backend of a new connection.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Each backend in turn, across all CPUs.
    RoundRobin = 0,
    Random = 1,
    /// Consistent hashing of the connection's 5-tuple over a Maglev table.
    Maglev = 2,
}

impl Algorithm {
    pub const ALL: [Self; 3] = [Self::RoundRobin, Self::Random, Self::Maglev];

    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| *a as u8 == v)
    }

    /// The name users give on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::RoundRobin => "roundrobin",
            Self::Random => "random",
            Self::Maglev => "maglev",
        }
    }
}

/// A virtual IP, keyed by its address (network byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Vip {
    /// Key of the backend, Maglev and connection maps of this VIP.
    pub id: u32,
    /// Datapath id of the network: only its members (and the host) reach the VIP.
    pub network: u32,
    /// Round-robin position, advanced atomically by the programs (64 bits: the eBPF target
    /// has no 32-bit atomics).
    pub next: u64,
    /// Backends in the backend map, slots `0..backends`.
    pub backends: u16,
    /// An [`Algorithm`] as u8.
    pub algorithm: u8,
    pub _pad: [u8; 5],
}
const _: () = assert!(core::mem::size_of::<Vip>() == 24);
#[cfg(feature = "user")]
unsafe impl aya::Pod for Vip {} // repr(C), no padding, any bit pattern valid

/// Key of the backend map (slot `0..backends` of VIP `id`) and of the connection counters
/// (`slot` is then the backend's address, network byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct VipSlot {
    pub id: u32,
    pub slot: u32,
}
const _: () = assert!(core::mem::size_of::<VipSlot>() == 8);
#[cfg(feature = "user")]
unsafe impl aya::Pod for VipSlot {} // repr(C), no padding, any bit pattern valid

/// The Maglev table of one VIP: backend addresses (network byte order) by slot,
/// [`crate::lb::NO_BACKEND`] where none.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MaglevTable {
    pub slots: [u32; MAGLEV_SIZE],
}
#[cfg(feature = "user")]
unsafe impl aya::Pod for MaglevTable {} // repr(C), no padding, any bit pattern valid

impl MaglevTable {
    pub const EMPTY: Self = Self {
        slots: [crate::lb::NO_BACKEND; MAGLEV_SIZE],
    };
}
