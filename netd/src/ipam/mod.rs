//! Address management: one pool per network (pure, rebuilt from the persisted endpoints) and
//! the choice of a free subnet from Docker's default pools.

mod pool;
mod subnets;

pub use pool::{IpamError, Pool};
pub use subnets::{default_pools, first_free, overlaps};
