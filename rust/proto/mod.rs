// SPDX-License-Identifier: GPL-2.0
//! NVMe/TCP protocol core: plain `no_std` Rust, no `unsafe`, no allocation.
//!
//! Built twice: into `rnvme_tcp.ko` as the `proto` module and on the host by
//! `cargo test` (see `crate.rs`). Everything a target sends is parsed and
//! checked here before the kernel side acts on it.

pub mod batch;
pub mod completion;
pub mod crc;
pub mod errno;
pub mod error;
pub mod pdu;
pub mod r2t;
pub mod recv;
pub mod tls;
