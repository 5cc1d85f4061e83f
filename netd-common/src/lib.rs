//! Types and pure logic shared by the eBPF programs and the control plane.
//!
//! Everything here is `no_std`. Map keys and values are `repr(C)` with explicit padding so that
//! both sides agree on the layout byte for byte.
#![no_std]

pub mod churn;
pub mod counters;
pub mod icmp;
pub mod isolation;
pub mod lb;
pub mod maps;
pub mod monitor;
pub mod nat;
pub mod vip;
