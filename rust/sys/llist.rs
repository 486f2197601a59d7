// SPDX-License-Identifier: GPL-2.0
//! A lock-free list (`llist`): how `queue_rq` hands requests to io_work, as
//! the C driver's `queue->req_list`.

use super::bindings as nb;
use kernel::{bindings as kb, types::Opaque};

/// An `llist_head` any context may add to and one consumer takes from.
///
/// # Invariants
///
/// `0` is a valid `llist_head` (all-zero is the empty list) whose nodes
/// are each owned by whoever added them until taken off by
/// [`LList::take_all`].
pub(crate) struct LList(Opaque<kb::llist_head>);

// SAFETY: llist_add() and llist_del_all() are safe against each other and
// against concurrent adds on any CPU.
unsafe impl Sync for LList {}
// SAFETY: as above.
unsafe impl Send for LList {}

impl LList {
    /// An empty list.
    pub(crate) fn new() -> Self {
        Self(Opaque::zeroed())
    }

    /// Adds `node`; true if the list was empty.
    ///
    /// # Safety
    ///
    /// `node` is valid and on no list, and stays valid until a consumer
    /// takes it off with [`Self::take_all`].
    pub(crate) unsafe fn add(&self, node: *mut kb::llist_node) -> bool {
        // SAFETY: a valid list (invariant); `node` by the caller.
        unsafe { nb::rnvme_llist_add(node.cast(), self.0.get().cast()) }
    }

    /// `llist_empty()`: whether the list held no node when looked at.
    pub(crate) fn is_empty(&self) -> bool {
        // SAFETY: a valid list (invariant); `first` is read once, as
        // READ_ONCE() does, racing adds being fine for the caller.
        unsafe { core::ptr::read_volatile(&raw const (*self.0.get()).first) }.is_null()
    }

    /// Takes every node off the list, oldest first.
    pub(crate) fn take_all(&self) -> Drain {
        // SAFETY: a valid list; taking all is safe against concurrent adds.
        let first = unsafe { nb::rnvme_llist_del_all(self.0.get().cast()) };
        if first.is_null() {
            return Drain(core::ptr::null_mut());
        }
        // SAFETY: the nodes came off the list and are ours to relink.
        Drain(unsafe { kb::llist_reverse_order(first.cast()) })
    }
}

/// Nodes taken off an [`LList`], oldest first.
///
/// # Invariants
///
/// `0` is NULL or the first of a NULL-terminated chain of valid nodes that
/// no list holds any more.
pub(crate) struct Drain(*mut kb::llist_node);

impl Iterator for Drain {
    type Item = *mut kb::llist_node;

    fn next(&mut self) -> Option<*mut kb::llist_node> {
        let node = self.0;
        if node.is_null() {
            return None;
        }
        // SAFETY: a valid node of the chain (invariant); `next` is read
        // before the caller may relink it.
        self.0 = unsafe { (*node).next };
        Some(node)
    }
}
