//! Desired state: the persisted model of networks and containers, and its atomic store.

pub mod model;
pub mod prepared;
pub mod store;

pub use store::{Store, StoreError};
