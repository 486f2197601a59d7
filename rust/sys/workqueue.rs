// SPDX-License-Identifier: GPL-2.0
//! The module's workqueue (`rnvme_tcp_wq`), where io_work and err_work run.

use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use kernel::sync::LockClassKey;
use kernel::{bindings as kb, prelude::*};

/// The module's workqueue: what [`Workqueue::new`] allocated, null before
/// and after (C: `nvme_tcp_wq`).
static WQ: AtomicPtr<kb::workqueue_struct> = AtomicPtr::new(core::ptr::null_mut());

/// Owns the module's workqueue; destroys it when dropped.
///
/// # Invariants
///
/// While a `Workqueue` exists, [`WQ`] is the workqueue it allocated; there
/// is at most one.
pub(crate) struct Workqueue(());

impl Workqueue {
    /// Allocates the workqueue: WQ_MEM_RECLAIM (io_work must make progress
    /// under memory pressure, it writes pages back), WQ_HIGHPRI, per CPU
    /// (io_work runs where its queue's requests are submitted), as
    /// `nvme_tcp_wq`.
    pub(crate) fn new() -> Result<Self> {
        let flags = kb::wq_flags_WQ_MEM_RECLAIM | kb::wq_flags_WQ_HIGHPRI | kb::wq_flags_WQ_PERCPU;
        // `alloc_workqueue()` is this behind an allocation profiling hook;
        // 0: the default max_active.
        // SAFETY: the name is a NUL-terminated format without directives,
        // so the variadic part takes no arguments.
        let wq = unsafe { kb::alloc_workqueue_noprof(c"rnvme_tcp_wq".as_char_ptr(), flags, 0) };
        if wq.is_null() {
            return Err(ENOMEM);
        }
        if WQ.compare_exchange(core::ptr::null_mut(), wq, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // SAFETY: allocated just now and never shared.
            unsafe { kb::destroy_workqueue(wq) };
            return Err(EBUSY);
        }
        // INVARIANT: `WQ` is the workqueue just allocated.
        Ok(Self(()))
    }
}

impl Drop for Workqueue {
    fn drop(&mut self) {
        let wq = WQ.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !wq.is_null() {
            // SAFETY: ours by the invariant; every controller is gone by
            // now (each holds a module reference), so no work is queued.
            unsafe { kb::destroy_workqueue(wq) };
        }
    }
}

/// `queue_work_on(cpu, rnvme_tcp_wq, work)`: false if `work` was already
/// queued, or if there is no workqueue.
///
/// # Safety
///
/// `work` is an initialised work item that stays valid until it has run
/// or been cancelled; it is queued only while the module lives (the
/// [`Workqueue`] goes last, at module exit).
pub(super) unsafe fn queue_raw(work: *mut kb::work_struct, cpu: c_int) -> bool {
    let wq = WQ.load(Ordering::Acquire);
    // SAFETY: `wq` is the live workqueue (invariant of `Workqueue`, which
    // outlives every queued item); `work` by the caller.
    !wq.is_null() && unsafe { kb::queue_work_on(cpu, wq, work) }
}

/// `WORK_CPU_UNBOUND`: queue on the local CPU, or wherever the scheduler
/// likes.
pub(crate) const WORK_CPU_UNBOUND: c_int = kb::NR_CPUS as c_int;

/// The function a work item runs, given its `work_struct`.
pub(crate) type WorkFn = unsafe extern "C" fn(*mut kb::work_struct);

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
    work: kernel::types::Opaque<kb::work_struct>,
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
        // is static and pinned, as lockdep keeps it. (INIT_WORK, through
        // the kernel crate's helper, as `kernel::workqueue` does.)
        unsafe { kb::init_work_with_key(self.work.get(), Some(f), false, c"rnvme_tcp_work".as_char_ptr(), key.as_ptr()) };
        // INVARIANT: initialised where it stays.
        self.ready.store(true, Ordering::Release);
    }

    /// The `work_struct`, for the socket callbacks that queue it.
    pub(crate) fn as_raw(&self) -> *mut kb::work_struct {
        self.work.get()
    }

    /// Queues the item on `cpu` ([`WORK_CPU_UNBOUND`]: anywhere); false
    /// if it was already queued (or not initialised).
    pub(crate) fn queue_on(&self, cpu: c_int) -> bool {
        // SAFETY: initialised where it is (invariant), and the owner keeps
        // it valid until cancelled.
        self.ready.load(Ordering::Acquire) && unsafe { queue_raw(self.work.get(), cpu) }
    }

    /// Disables the item and waits for a run in progress to finish
    /// (`disable_work_sync()`): until the item is initialised again
    /// ([`Self::init`] starts it enabled), queueing it does nothing, so
    /// nobody can requeue it behind the caller's back.
    pub(crate) fn disable_sync(&self) {
        if self.ready.load(Ordering::Acquire) {
            // SAFETY: as above.
            unsafe { kb::disable_work_sync(self.work.get()) };
        }
    }

    /// Waits for a queued or running item to finish.
    pub(crate) fn flush(&self) {
        if self.ready.load(Ordering::Acquire) {
            // SAFETY: as above.
            unsafe { kb::flush_work(self.work.get()) };
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
    dwork: kernel::types::Opaque<kb::delayed_work>,
    ready: AtomicBool,
}

impl DelayedWork {
    /// Byte offset of the `work_struct` the callback is given.
    pub(crate) const WORK_OFFSET: usize = core::mem::offset_of!(kb::delayed_work, work);

    /// Initialises the item to run `f`.
    ///
    /// # Safety
    ///
    /// As for [`Work::init`].
    pub(crate) unsafe fn init(&self, f: WorkFn) {
        // One lockdep class for the work and one for the timer, as the one
        // INIT_DELAYED_WORK site in C had (the module has one kind of
        // delayed work, connect_work).
        let key = kernel::static_lock_class!();
        let timer_key = kernel::static_lock_class!();
        let dw = self.dwork.get();
        // INIT_DELAYED_WORK, spelt out as `kernel::workqueue::DelayedWork::new`
        // does: the work, and an irq-safe timer that queues it
        // (`delayed_work_timer_fn`, given only timers inside a `delayed_work`).
        // SAFETY: by the caller's guarantee nobody uses the item now; the
        // keys and names are static.
        unsafe {
            kb::init_work_with_key(&raw mut (*dw).work, Some(f), false, c"rnvme_tcp_delayed_work".as_char_ptr(), key.as_ptr());
            kb::timer_init_key(
                &raw mut (*dw).timer,
                Some(kb::delayed_work_timer_fn),
                kb::TIMER_IRQSAFE,
                c"rnvme_tcp_delayed_work.timer".as_char_ptr(),
                timer_key.as_ptr(),
            );
        }
        // INVARIANT: initialised where it stays.
        self.ready.store(true, Ordering::Release);
    }

    /// Queues the item to run in `secs` seconds.
    pub(crate) fn queue_in(&self, secs: u32) -> bool {
        let wq = WQ.load(Ordering::Acquire);
        let delay = kernel::time::msecs_to_jiffies(secs.saturating_mul(1000));
        self.ready.load(Ordering::Acquire)
            && !wq.is_null()
            // SAFETY: initialised where it is (invariant); `wq` is the live
            // workqueue, as in `queue_raw`.
            && unsafe { kb::queue_delayed_work_on(WORK_CPU_UNBOUND, wq, self.dwork.get(), delay) }
    }

    /// Cancels the item and waits for a run in progress to finish.
    pub(crate) fn cancel_sync(&self) {
        if self.ready.load(Ordering::Acquire) {
            // SAFETY: as above.
            unsafe { kb::cancel_delayed_work_sync(self.dwork.get()) };
        }
    }
}
