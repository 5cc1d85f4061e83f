//! Validated domain types built from wire input: names, network and container specs.
//! Every error names the offending value and what is expected instead.

pub mod alias;
pub mod container;
mod error;
pub mod mac;
pub mod macvlan;
pub mod names;
pub mod network;
pub mod origin;
pub mod port;
pub mod subnet;

pub use error::ConfigError;
