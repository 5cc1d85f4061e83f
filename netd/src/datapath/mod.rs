//! The eBPF datapath: loads the embedded object with its maps pinned under the daemon's bpffs
//! dir, and offers one typed handle per concern. Nothing else in the control plane touches a
//! map or a program.

mod batch;
mod churn;
pub mod isolation;
mod lan;
mod loader;
pub mod monitor;
pub mod nat;
mod pins;
mod ports;
mod programs;
mod raw;
pub mod sockets;
pub mod stats;
mod tc;
pub mod vips;

pub use loader::{Datapath, DatapathError};

/// A removal whose key was already gone is done. aya reports that as the delete syscall's
/// ENOENT, not as `KeyNotFound`.
fn removed(result: Result<(), aya::maps::MapError>) -> Result<(), aya::maps::MapError> {
    match result {
        Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(())
        }
        other => other,
    }
}
