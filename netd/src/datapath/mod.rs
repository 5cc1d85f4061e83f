//! The eBPF datapath: loads the embedded object with its maps pinned under the daemon's bpffs
//! dir, and offers one typed handle per concern. Nothing else in the control plane touches a
//! map or a program.

mod loader;
pub mod nat;
mod ports;
pub mod sockets;

pub use loader::{Datapath, DatapathError};
