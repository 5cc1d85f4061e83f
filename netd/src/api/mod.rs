//! The API: JSON over HTTP/1.1 on a unix socket, under versioned paths (`/v1/...`). The CLI
//! is a client of it, and so is `curl --unix-socket`.

pub mod check;
pub mod client;
mod error;
pub mod listen;
mod monitor;
mod nodes;
mod ports;
pub mod server;
pub mod wire;

pub use error::{reject, ApiError};
