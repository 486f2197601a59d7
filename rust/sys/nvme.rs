// SPDX-License-Identifier: GPL-2.0
//! nvme-core calls on one of our controllers.
//!
//! C side: `drivers/nvme/host/nvme.h` and `core.c`. Each method is one call;
//! the controller logic (what to call when) stays in `ctrl.rs`.

use super::bindings as nb;
use super::blk_mq::{HwCtx, Lookup, MqOperations, Request, SetBeingMapped, TagSet, Tags};
use super::fabrics::CtrlOptions;
use core::ptr::NonNull;
use kernel::{bindings as kb, device::Device, prelude::*};

mod ops;
pub(crate) use ops::{CtrlOperations, CtrlOpsTable};

/// nvme-core's status: 0, a negative errno, or a positive NVMe status
/// (which fails the step as `-EIO`, as the C driver treats it).
pub(crate) fn nvme_result(ret: c_int) -> Result {
    match ret {
        0 => Ok(()),
        e if e < 0 => Err(Error::from_errno(e)),
        _ => Err(EIO),
    }
}

/// A controller nvme-core knows: the handle for calls into nvme-core.
///
/// # Invariants
///
/// `0` points to an `nvme_ctrl` that `nvme_init_ctrl()` initialised and
/// whose `free_ctrl` has not run: the transport makes handles only from
/// its own controllers, which live until nvme-core's last reference goes.
#[derive(Clone, Copy)]
pub(crate) struct NvmeCtrl(NonNull<nb::nvme_ctrl>);

// SAFETY: nvme-core's controller functions may be called from any task;
// nvme-core does its own locking.
unsafe impl Send for NvmeCtrl {}

impl NvmeCtrl {
    /// # Safety
    ///
    /// `ctrl` was initialised by `nvme_init_ctrl()` and stays valid for
    /// as long as the handle is used.
    pub(crate) unsafe fn from_raw(ctrl: *mut nb::nvme_ctrl) -> Self {
        // SAFETY: non-null by the caller's guarantee.
        Self(unsafe { NonNull::new_unchecked(ctrl) })
    }

    pub(crate) fn as_raw(self) -> *mut nb::nvme_ctrl {
        self.0.as_ptr()
    }

    /// `nvme_ctrl_state()`: the state nvme-core keeps (read once, as
    /// `READ_ONCE`; it changes under nvme-core's lock).
    pub(crate) fn state(self) -> nb::nvme_ctrl_state {
        // SAFETY: a valid controller (invariant); a plain read of an int.
        unsafe { core::ptr::read_volatile(&raw const (*self.as_raw()).state) }
    }

    /// I/O queues plus the admin queue the controller has now.
    pub(crate) fn queue_count(self) -> u32 {
        // SAFETY: a valid controller; the transport's own field.
        unsafe { (*self.as_raw()).queue_count }
    }

    /// Sets the queue count (set-up paths, which nvme-core serialises).
    pub(crate) fn set_queue_count(self, n: u32) {
        // SAFETY: as above.
        unsafe { (*self.as_raw()).queue_count = n };
    }

    /// `sqsize`: I/O queue entries minus one (0's based).
    pub(crate) fn sqsize(self) -> u16 {
        // SAFETY: as above.
        unsafe { (*self.as_raw()).sqsize }
    }

    /// Sets `sqsize` (set-up paths).
    pub(crate) fn set_sqsize(self, n: u16) {
        // SAFETY: as above.
        unsafe { (*self.as_raw()).sqsize = n };
    }

    /// MAXCMD from Identify Controller.
    pub(crate) fn maxcmd(self) -> u16 {
        // SAFETY: as above; written by nvme-core during set-up.
        unsafe { (*self.as_raw()).maxcmd }
    }

    /// In-capsule data offset (ICDOFF) from Identify Controller.
    pub(crate) fn icdoff(self) -> u16 {
        // SAFETY: as above.
        unsafe { (*self.as_raw()).icdoff }
    }

    /// I/O queue command capsule size (IOCCSZ) in 16-byte units.
    pub(crate) fn ioccsz(self) -> u32 {
        // SAFETY: as above.
        unsafe { (*self.as_raw()).ioccsz }
    }

    /// Reconnect attempts since the last success.
    pub(crate) fn nr_reconnects(self) -> c_int {
        // SAFETY: as above; the transport's own counter.
        unsafe { (*self.as_raw()).nr_reconnects }
    }

    /// Sets the reconnect counter (reconnect paths, serialised).
    pub(crate) fn set_nr_reconnects(self, n: c_int) {
        // SAFETY: as above.
        unsafe { (*self.as_raw()).nr_reconnects = n };
    }

    /// The admin request queue exists.
    pub(crate) fn has_admin_queue(self) -> bool {
        // SAFETY: as above.
        unsafe { !(*self.as_raw()).admin_q.is_null() }
    }

    /// The I/O tag set exists.
    pub(crate) fn has_io_tagset(self) -> bool {
        // SAFETY: as above.
        unsafe { !(*self.as_raw()).tagset.is_null() }
    }

    /// The nvme device (`nvmeN`), for log lines.
    pub(crate) fn device<'a>(self) -> &'a Device {
        // SAFETY: `ctrl.device` is set by nvme_init_ctrl() (invariant) and
        // stays valid until free_ctrl; callers hold the controller.
        unsafe { Device::from_raw(nb::rnvme_ctrl_device(self.as_raw()).cast()) }
    }

    /// `dev_name(ctrl->device)`: "nvmeN".
    pub(crate) fn name<'a>(self) -> &'a CStr {
        // SAFETY: named by nvme_init_ctrl() (invariant); the name lives as
        // long as the controller.
        unsafe { CStr::from_char_ptr(nb::rnvme_ctrl_name(self.as_raw())) }
    }

    /// The connect options nvme-fabrics parsed for this controller.
    pub(crate) fn opts<'a>(self) -> &'a CtrlOptions {
        // SAFETY: the transport set `opts` before nvme_init_ctrl() and the
        // options are freed only in free_ctrl; nothing changes them.
        unsafe { CtrlOptions::from_raw((*self.as_raw()).opts) }
    }

    /// `nvme_check_ready()`: whether `rq` may be queued now (`live`: the
    /// queue is connected).
    pub(crate) fn check_ready<D>(self, rq: &Request<D>, live: bool) -> bool {
        // SAFETY: an initialised controller (invariant) and a valid request.
        unsafe { nb::rnvme_nvme_check_ready(self.as_raw(), rq.as_raw().cast(), live) }
    }

    /// `nvme_fail_nonready_command()`: what `queue_rq` returns for a
    /// request that may not be queued now.
    pub(crate) fn fail_nonready_command<D>(self, rq: Request<D>) -> kb::blk_status_t {
        // SAFETY: as above.
        unsafe { nb::nvme_fail_nonready_command(self.as_raw(), rq.as_raw().cast()) }
    }

    /// `nvmf_ip_options_match()`: these connect options name this
    /// controller (same subsystem, address, host address and interface).
    pub(crate) fn ip_options_match(self, opts: &CtrlOptions) -> bool {
        // SAFETY: an initialised controller (invariant); valid options.
        unsafe { nb::nvmf_ip_options_match(self.as_raw(), opts.as_raw()) }
    }

    /// `nvme_add_ctrl()`.
    pub(crate) fn add(self) -> Result {
        // SAFETY: an initialised controller (invariant).
        nvme_result(unsafe { nb::nvme_add_ctrl(self.as_raw()) })
    }

    /// `nvme_change_ctrl_state()`: false when the transition is not allowed.
    pub(crate) fn change_state(self, state: nb::nvme_ctrl_state) -> bool {
        // SAFETY: as above; nvme-core takes the controller's lock.
        unsafe { nb::nvme_change_ctrl_state(self.as_raw(), state) }
    }

    /// `nvmf_connect_admin_queue()`.
    pub(crate) fn connect_admin_queue(self) -> Result {
        // SAFETY: as above; the admin queue's transport side is set up.
        nvme_result(unsafe { nb::nvmf_connect_admin_queue(self.as_raw()) })
    }

    /// `nvmf_connect_io_queue()`.
    pub(crate) fn connect_io_queue(self, qid: u16) -> Result {
        // SAFETY: as above.
        nvme_result(unsafe { nb::nvmf_connect_io_queue(self.as_raw(), qid) })
    }

    /// `nvme_enable_ctrl()`.
    pub(crate) fn enable(self) -> Result {
        // SAFETY: as above.
        nvme_result(unsafe { nb::nvme_enable_ctrl(self.as_raw()) })
    }

    /// `nvme_disable_ctrl()`.
    pub(crate) fn disable(self, shutdown: bool) {
        // SAFETY: as above. The status only matters to PCIe; nvme-tcp
        // ignores it too.
        unsafe { nb::nvme_disable_ctrl(self.as_raw(), shutdown) };
    }

    /// `nvme_init_ctrl_finish()`.
    pub(crate) fn init_finish(self) -> Result {
        // SAFETY: as above.
        nvme_result(unsafe { nb::nvme_init_ctrl_finish(self.as_raw(), false) })
    }

    /// `nvme_start_ctrl()`.
    pub(crate) fn start(self) {
        // SAFETY: as above.
        unsafe { nb::nvme_start_ctrl(self.as_raw()) };
    }

    /// `nvme_stop_ctrl()`.
    pub(crate) fn stop(self) {
        // SAFETY: as above.
        unsafe { nb::nvme_stop_ctrl(self.as_raw()) };
    }

    /// `nvme_stop_keep_alive()`.
    pub(crate) fn stop_keep_alive(self) {
        // SAFETY: as above.
        unsafe { nb::nvme_stop_keep_alive(self.as_raw()) };
    }

    /// `nvme_auth_stop()`: cancels in-band authentication work.
    pub(crate) fn auth_stop(self) {
        // SAFETY: as above.
        unsafe { nb::nvme_auth_stop(self.as_raw()) };
    }

    /// `nvme_ctrl_sgl_supported()`: Identify Controller says the
    /// controller takes SGLs (SGLS bits 0 or 1), which NVMe/TCP needs.
    pub(crate) fn sgl_supported(self) -> bool {
        // NVME_CTRL_SGLS_BYTE_ALIGNED | NVME_CTRL_SGLS_DWORD_ALIGNED.
        // SAFETY: as above; `sgls` is set by Identify before callers ask.
        unsafe { (*self.as_raw()).sgls & 0x3 != 0 }
    }

    /// `flush_work(&ctrl->async_event_work)`.
    pub(crate) fn flush_async_event_work(self) {
        // SAFETY: as above; nvme_init_ctrl() initialised the work item.
        unsafe { kb::flush_work(&raw mut (*self.as_raw()).async_event_work) };
    }

    /// `nvme_complete_async_event()`.
    pub(crate) fn complete_async_event(self, status: u16, result: u64) {
        // SAFETY: as above; called once per AER completion.
        unsafe { nb::rnvme_complete_async_event(self.as_raw(), status, result) };
    }

    /// `nvme_set_queue_count()`: asks for `want` I/O queues, returns how
    /// many the controller grants.
    pub(crate) fn negotiate_queue_count(self, want: c_int) -> Result<c_int> {
        let mut nr = want;
        // SAFETY: as above; `nr` is a valid in/out location.
        nvme_result(unsafe { nb::nvme_set_queue_count(self.as_raw(), &mut nr) })?;
        Ok(nr)
    }

    /// `nvmf_should_reconnect()`.
    pub(crate) fn should_reconnect(self, status: c_int) -> bool {
        // SAFETY: as above.
        unsafe { nb::nvmf_should_reconnect(self.as_raw(), status) }
    }

    /// `nvme_delete_ctrl()`: queues the controller's removal.
    pub(crate) fn delete(self) {
        // SAFETY: as above.
        unsafe { nb::nvme_delete_ctrl(self.as_raw()) };
    }

    /// `nvme_uninit_ctrl()` then `nvme_put_ctrl()`: undoes a create that
    /// failed after nvme_init_ctrl(). The last put frees the controller.
    ///
    /// # Safety
    ///
    /// This is the creator's reference; no handle is used afterwards.
    pub(crate) unsafe fn uninit_and_put(self) {
        // SAFETY: as above; the caller gives up its reference.
        unsafe {
            nb::nvme_uninit_ctrl(self.as_raw());
            nb::rnvme_put_ctrl(self.as_raw());
        }
    }

    /// `nvme_put_ctrl()` of the creator's reference after `nvme_add_ctrl()`
    /// failed, which undid its own work: the controller was never added,
    /// so there is nothing for `nvme_uninit_ctrl()` to remove (C:
    /// `nvme_tcp_create_ctrl`'s `out_put_ctrl`). The last put calls
    /// `free_ctrl`.
    ///
    /// # Safety
    ///
    /// This is the creator's reference; no handle is used afterwards.
    pub(crate) unsafe fn put_unadded(self) {
        // SAFETY: as above; the caller gives up its reference.
        unsafe { nb::rnvme_put_ctrl(self.as_raw()) };
    }

    /// `nvme_quiesce_admin_queue()`.
    pub(crate) fn quiesce_admin_queue(self) {
        // SAFETY: as above; callers check the admin queue exists.
        unsafe { nb::nvme_quiesce_admin_queue(self.as_raw()) };
    }

    /// `nvme_unquiesce_admin_queue()`.
    pub(crate) fn unquiesce_admin_queue(self) {
        // SAFETY: as above.
        unsafe { nb::nvme_unquiesce_admin_queue(self.as_raw()) };
    }

    /// `blk_sync_queue(ctrl->admin_q)`, when there is an admin queue.
    pub(crate) fn sync_admin_queue(self) {
        // SAFETY: as above; `admin_q` is NULL or nvme-core's admin queue.
        let q = unsafe { (*self.as_raw()).admin_q };
        if !q.is_null() {
            // SAFETY: a live request queue.
            unsafe { kb::blk_sync_queue(q.cast()) };
        }
    }

    /// `nvme_cancel_admin_tagset()`.
    pub(crate) fn cancel_admin_tagset(self) {
        // SAFETY: as above; nvme_cancel_request() completes each once.
        unsafe { nb::nvme_cancel_admin_tagset(self.as_raw()) };
    }

    /// `nvme_remove_admin_tag_set()`.
    pub(crate) fn remove_admin_tag_set(self) {
        // SAFETY: as above; callers remove it once, after allocating it.
        unsafe { nb::nvme_remove_admin_tag_set(self.as_raw()) };
    }

    /// `nvme_quiesce_io_queues()`.
    pub(crate) fn quiesce_io_queues(self) {
        // SAFETY: as above.
        unsafe { nb::nvme_quiesce_io_queues(self.as_raw()) };
    }

    /// `nvme_unquiesce_io_queues()`.
    pub(crate) fn unquiesce_io_queues(self) {
        // SAFETY: as above.
        unsafe { nb::nvme_unquiesce_io_queues(self.as_raw()) };
    }

    /// `nvme_sync_io_queues()`.
    pub(crate) fn sync_io_queues(self) {
        // SAFETY: as above.
        unsafe { nb::nvme_sync_io_queues(self.as_raw()) };
    }

    /// `nvme_cancel_tagset()`.
    pub(crate) fn cancel_tagset(self) {
        // SAFETY: as above; a NULL tagset is checked by nvme-core.
        unsafe { nb::nvme_cancel_tagset(self.as_raw()) };
    }

    /// `nvme_remove_io_tag_set()`.
    pub(crate) fn remove_io_tag_set(self) {
        // SAFETY: as above; callers remove it once, after allocating it.
        unsafe { nb::nvme_remove_io_tag_set(self.as_raw()) };
    }

    /// After a reconnect with possibly another number of I/O queues:
    /// freeze, unquiesce, resize the tag set to `nr_hw_queues`, unfreeze
    /// (C: the `!new` part of `nvme_tcp_configure_io_queues`). Fails with
    /// `ENODEV` when the queues do not freeze in time.
    pub(crate) fn resize_io_queues(self, nr_hw_queues: c_int) -> Result {
        // SAFETY: as above; the I/O tag set exists (callers check).
        unsafe {
            let n = self.as_raw();
            nb::nvme_start_freeze(n);
            nb::nvme_unquiesce_io_queues(n);
            if nb::nvme_wait_freeze_timeout(n) == 0 {
                nb::nvme_unfreeze(n);
                return Err(ENODEV);
            }
            kb::blk_mq_update_nr_hw_queues((*n).tagset, nr_hw_queues);
            nb::nvme_unfreeze(n);
        }
        Ok(())
    }
}

/// Waits until every controller deletion nvme-core queued so far is done
/// (`flush_workqueue(nvme_delete_wq)`).
pub(crate) fn flush_deletions() {
    // SAFETY: nvme-core's delete workqueue, which lives as long as
    // nvme-core (which we depend on).
    unsafe { kb::__flush_workqueue(nb::nvme_delete_wq.cast()) };
}

/// Allocates the admin tag set `set` of the controller `owner` with
/// `T`'s ops (`nvme_alloc_admin_tag_set()`, which sets the set's
/// `driver_data` to the controller: `owner`, by [`CtrlOperations`]'
/// contract, which is what `TagSet`'s invariant asks).
pub(crate) fn alloc_admin_tag_set<T>(owner: &T::Owner, set: &TagSet<T>) -> Result
where
    T: MqOperations,
    T::Owner: CtrlOperations,
{
    let n = core::ptr::from_ref(owner).cast_mut().cast::<nb::nvme_ctrl>();
    // SAFETY: `owner` is a `repr(C)` controller with its `nvme_ctrl` first
    // (`CtrlOperations`), initialised by nvme_init_ctrl(); `set` lives in it.
    nvme_result(unsafe { nb::nvme_alloc_admin_tag_set(n, set.as_raw().cast(), TagSet::<T>::ops(), TagSet::<T>::cmd_size()) })
}

/// Allocates the I/O tag set `set` of `owner` with `nr_maps` maps; as
/// [`alloc_admin_tag_set`].
pub(crate) fn alloc_io_tag_set<T>(owner: &T::Owner, set: &TagSet<T>, nr_maps: c_uint) -> Result
where
    T: MqOperations,
    T::Owner: CtrlOperations,
{
    let n = core::ptr::from_ref(owner).cast_mut().cast::<nb::nvme_ctrl>();
    // SAFETY: as in `alloc_admin_tag_set`.
    nvme_result(unsafe {
        nb::nvme_alloc_io_tag_set(n, set.as_raw().cast(), TagSet::<T>::ops(), nr_maps, TagSet::<T>::cmd_size())
    })
}

/// `nvmf_map_queues()`: default, read and poll maps of the set being
/// mapped, from the per-type I/O queue counts `io_queues` (filled by
/// `nvmf_set_io_queues()`).
pub(crate) fn nvmf_map_queues(set: SetBeingMapped, ctrl: NvmeCtrl, io_queues: &[u32; kb::hctx_type_HCTX_MAX_TYPES as usize]) {
    // SAFETY: the set being mapped, an initialised controller, and
    // HCTX_MAX_TYPES counts, which the function only reads (its parameter
    // lacks the `const`).
    unsafe { nb::nvmf_map_queues(set.as_raw().cast(), ctrl.as_raw(), io_queues.as_ptr().cast_mut()) };
}

/// `nvme_find_rq()` and then [`Tags::in_flight`]: the request a command id
/// names, only if it is in flight and armed.
///
/// `nvme_find_rq()` checks the tag range and the generation, but
/// nvme-core bumps a tag's generation only when the tag's next command is
/// set up, so the id of a completed command still names its (completing or
/// free) request: only a request in flight, which the driver armed and
/// nobody ended, is handed out.
pub(crate) fn find_request<T: MqOperations>(tags: &Tags<'_, T>, cid: u16) -> core::result::Result<Request<T::RequestData>, Lookup> {
    // SAFETY: valid tags (`Tags`' invariant).
    let rq = unsafe { nb::rnvme_nvme_find_rq(tags.as_raw().cast(), cid) };
    let rq = NonNull::new(rq.cast::<kb::request>()).ok_or(Lookup::Unknown)?;
    // SAFETY: nvme_find_rq() returns only requests of these tags.
    unsafe { tags.in_flight(rq) }
}

/// nvme-core's side of a request: its command, start and end.
impl<D> Request<D> {
    /// `nvme_setup_cmd()` with the namespace of `hctx`'s queue: fills in the
    /// SQE at `nvme_req(rq)->cmd`. `Err` is nvme-core's status, for
    /// `queue_rq` to return as it is (C: `nvme_tcp_queue_rq`).
    pub(crate) fn setup_cmd(&self, hctx: &HwCtx) -> core::result::Result<(), kb::blk_status_t> {
        // SAFETY: a request being queued on `hctx`; nvme_setup_cmd() takes
        // the namespace (NULL for the admin queue) nvme-core keeps in the
        // queue's `queuedata`.
        let st = unsafe { nb::nvme_setup_cmd(hctx.queuedata().cast(), self.as_raw().cast()) };
        if st == kb::BLK_STS_OK as kb::blk_status_t { Ok(()) } else { Err(st) }
    }

    /// `nvme_cleanup_cmd()`: undoes [`Self::setup_cmd`] for a request that
    /// is not started after all (completion does it otherwise).
    pub(crate) fn cleanup_cmd(&self) {
        // SAFETY: a valid request whose command was set up.
        unsafe { nb::nvme_cleanup_cmd(self.as_raw().cast()) };
    }

    /// `nvme_start_request()`, then arms it: from here a lookup of its
    /// command id finds it, and one context may end it. Call once the
    /// driver data is filled in.
    pub(crate) fn start(&self) {
        // SAFETY: a valid request being queued.
        unsafe { nb::rnvme_start_request(self.as_raw().cast()) };
        self.arm();
    }

    /// Ends the request with the controller's `status` and `result` (C:
    /// `nvme_tcp_end_request`), consuming the handle. Only the first end
    /// of a start wins: false (and nothing done) when another context
    /// already ended it.
    pub(crate) fn end(self, status: u16, result: u64) -> bool {
        if !self.try_set_end() {
            return false;
        }
        // As `nvme_tcp_end_request()`: nvme-core completes it (maybe on
        // another CPU), or says we complete it here.
        // SAFETY: an in-flight request whose end this call won.
        if !unsafe { nb::rnvme_nvme_try_complete_req(self.as_raw().cast(), status, result) } {
            // SAFETY: as above; nvme-core left the completion to us.
            unsafe { nb::nvme_complete_rq(self.as_raw().cast()) };
        }
        true
    }

    /// `nvmf_complete_timed_out_request()` (timeout handler), unless another
    /// context ended the request first.
    pub(crate) fn complete_timed_out(self) {
        if self.try_set_end() {
            // SAFETY: a started request whose end this call won.
            unsafe { nb::rnvme_complete_timed_out_request(self.as_raw().cast()) };
        }
    }

    /// As [`Self::complete_timed_out`], and nvme-core does not retry it
    /// (`REQ_FAILFAST_DRIVER`, as if submitted without `NVME_SUBMIT_RETRY`).
    /// For a request of a queue that the timeout stopped before it was
    /// live: nothing can carry a retry there.
    pub(crate) fn complete_timed_out_no_retry(self) {
        if self.try_set_end() {
            // SAFETY: a started request whose end this call won: nobody
            // else changes it until it is completed below; nvme-core reads
            // `cmd_flags` when it decides on a retry (`blk_noretry_request`).
            unsafe { (*self.as_raw()).cmd_flags |= 1 << kb::req_flag_bits___REQ_FAILFAST_DRIVER };
            // SAFETY: as above.
            unsafe { nb::rnvme_complete_timed_out_request(self.as_raw().cast()) };
        }
    }

    /// `nvme_complete_rq()`: the usual `complete` of an nvme transport.
    pub(crate) fn nvme_complete(self) {
        // SAFETY: a request blk-mq is completing.
        unsafe { nb::nvme_complete_rq(self.as_raw().cast()) };
    }
}
