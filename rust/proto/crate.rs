// SPDX-License-Identifier: GPL-2.0
//! Host build of the rnvme-tcp protocol core, for `cargo test`.
//!
//! The kernel module compiles the very same files as its `proto` module
//! (`rust/proto/mod.rs`); nothing here may depend on `std` outside tests.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

#[path = "mod.rs"]
mod proto;
pub use proto::*;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod prop_recv_tests;
