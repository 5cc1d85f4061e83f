#![no_std]
// Exists so that netd's build script can depend on this crate and be rebuilt when it changes.
