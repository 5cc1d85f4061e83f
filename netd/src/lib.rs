//! netd: Docker-style container networking with an eBPF datapath.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod cni;
pub mod config;
pub mod daemon;
pub mod datapath;
pub mod dns;
pub mod docker;
pub mod engine;
pub mod ipam;
pub mod link;
pub mod metrics;
pub mod monitor;
pub mod netns;
pub mod process;
pub mod reserved;
pub mod shared;
pub mod sockdiag;
pub mod state;
