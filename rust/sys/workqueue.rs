// SPDX-License-Identifier: GPL-2.0
//! The module's workqueue (`rnvme_tcp_wq`), where io_work and err_work run.

use core::pin::Pin;
use kernel::sync::LockClassKey;
use super::bindings as nb;
use core::sync::atomic::{AtomicBool, Ordering};
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

/// `WORK_CPU_UNBOUND`: queue on the local CPU, or wherever the scheduler
/// likes.
pub(crate) const WORK_CPU_UNBOUND: c_int = kernel::bindings::NR_CPUS as c_int;

/// The function a work item runs, given its `work_struct`.
pub(crate) type WorkFn = unsafe extern "C" fn(*mut kernel::bindings::work_struct);

/// A work item of the module's workqueue, embedded in its owner (the
/// callback finds the owner from the `work_struct`'s address).
///
/// # Invariants
///
/// `ready` is true only when `work` was initialised (`INIT_WORK`) at its
/// present address; the owner does not move while it is. All-zero bytes
/// are a valid, not initialised item (owners may be zero-filled).
#[repr(C)]
pub(crate) struct Work {
    work: kernel::types::Opaque<kernel::bindings::work_struct>,
    ready: AtomicBool,
}

impl Work {
    /// Not initialised: queueing and cancelling do nothing.
    pub(crate) fn new() -> Self {
        Self { work: kernel::types::Opaque::zeroed(), ready: AtomicBool::new(false) }
    }

    /// Initialises the item to run `f`.
    ///
    /// # Safety
    ///
    /// The item is not queued or running, and its owner does not move from
    /// here on; `f` may be called (from the workqueue) any time until the
    /// item is cancelled.
    ///
    /// `key` is the item's lockdep class: one per kind of work (as each
    /// `INIT_WORK` site in C has its own), so that one work item flushing
    /// another (err_work flushing io_work) is not taken for recursion.
    pub(crate) unsafe fn init(&self, f: WorkFn, key: Pin<&'static LockClassKey>) {
        // SAFETY: by the caller's guarantee nobody uses the item now; `key`
        // is static.
        unsafe { nb::rnvme_init_work(self.work.get().cast(), Some(f), key.as_ptr().cast()) };
        // INVARIANT: initialised where it stays.
        self.ready.store(true, Ordering::Release);
    }

    /// The `work_struct`, for the socket callbacks that queue it.
    pub(crate) fn as_raw(&self) -> *mut kernel::bindings::work_struct {
        self.work.get()
    }

    /// Queues the item on `cpu` ([`WORK_CPU_UNBOUND`]: anywhere); false
    /// if it was already queued (or not initialised).
    pub(crate) fn queue_on(&self, cpu: c_int) -> bool {
        // SAFETY: initialised where it is (invariant).
        self.ready.load(Ordering::Acquire) && unsafe { nb::rnvme_queue_work(self.work.get().cast(), cpu) }
    }

    /// Disables the item and waits for a run in progress to finish
    /// (`disable_work_sync()`): until the item is initialised again
    /// ([`Self::init`] starts it enabled), queueing it does nothing, so
    /// nobody can requeue it behind the caller's back.
    pub(crate) fn disable_sync(&self) {
        if self.ready.load(Ordering::Acquire) {
            // SAFETY: as above.
            unsafe { kernel::bindings::disable_work_sync(self.work.get()) };
        }
    }

    /// Waits for a queued or running item to finish.
    pub(crate) fn flush(&self) {
        if self.ready.load(Ordering::Acquire) {
            // SAFETY: as above.
            unsafe { kernel::bindings::flush_work(self.work.get()) };
        }
    }
}

/// A delayed work item of the module's workqueue, as [`Work`].
///
/// # Invariants
///
/// As for [`Work`].
#[repr(C)]
pub(crate) struct DelayedWork {
    dwork: kernel::types::Opaque<kernel::bindings::delayed_work>,
    ready: AtomicBool,
}

impl DelayedWork {
    /// Byte offset of the `work_struct` the callback is given.
    pub(crate) const WORK_OFFSET: usize = core::mem::offset_of!(kernel::bindings::delayed_work, work);

    /// Initialises the item to run `f`.
    ///
    /// # Safety
    ///
    /// As for [`Work::init`].
    pub(crate) unsafe fn init(&self, f: WorkFn) {
        // SAFETY: by the caller's guarantee nobody uses the item now.
        unsafe { nb::rnvme_init_delayed_work(self.dwork.get().cast(), Some(f)) };
        // INVARIANT: initialised where it stays.
        self.ready.store(true, Ordering::Release);
    }

    /// Queues the item to run in `secs` seconds.
    pub(crate) fn queue_in(&self, secs: u32) -> bool {
        // SAFETY: initialised where it is (invariant).
        self.ready.load(Ordering::Acquire) && unsafe { nb::rnvme_queue_delayed_work(self.dwork.get().cast(), secs) }
    }

    /// Cancels the item and waits for a run in progress to finish.
    pub(crate) fn cancel_sync(&self) {
        if self.ready.load(Ordering::Acquire) {
            // SAFETY: as above.
            unsafe { kernel::bindings::cancel_delayed_work_sync(self.dwork.get()) };
        }
    }
}
