// SPDX-License-Identifier: GPL-2.0
//! The module's workqueue (`rnvme_tcp_wq`), where io_work and err_work run.

use super::bindings as nb;
use kernel::{error::to_result, prelude::*};

/// Owns the module's workqueue; destroys it when dropped.
///
/// # Invariants
///
/// The workqueue in `helpers.c` exists from `new()` until `drop()`.
pub(crate) struct Workqueue(());

impl Workqueue {
    /// Allocates the workqueue (WQ_MEM_RECLAIM | WQ_HIGHPRI | WQ_PERCPU).
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: called once, from module init.
        to_result(unsafe { nb::rnvme_wq_init() })?;
        Ok(Self(()))
    }
}

impl Drop for Workqueue {
    fn drop(&mut self) {
        // SAFETY: by the invariant it exists; every controller is gone by
        // now (each holds a module reference), so no work is queued.
        unsafe { nb::rnvme_wq_destroy() };
    }
}
