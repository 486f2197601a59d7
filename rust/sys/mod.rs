// SPDX-License-Identifier: GPL-2.0
//! The thin unsafe layer: every raw pointer from nvme-core, blk-mq or the
//! socket layer is turned into a typed reference here, once, and nowhere
//! else. The rest of the module works with these safe types only.

pub(crate) mod bindings;
pub(crate) mod blk_mq;
pub(crate) mod fabrics;
pub(crate) mod fmt;
pub(crate) mod handshake;
pub(crate) mod iov;
pub(crate) mod llist;
pub(crate) mod nvme;
pub(crate) mod socket;
pub(crate) mod workqueue;
