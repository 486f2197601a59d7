// SPDX-License-Identifier: GPL-2.0
//! blk-mq callbacks (cf. the kernel's `rust/kernel/block/mq/operations.rs`).
//!
//! The driver implements [`MqOperations`] with typed arguments; the
//! `unsafe extern "C"` functions blk-mq calls live here, in [`MqVTable`],
//! and turn its raw pointers into typed references once.

use super::bindings as nb;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::{bindings as kb, prelude::*, types::Opaque};

/// A request of one of our tag sets.
///
/// # Invariants
///
/// `0` is a request of a tag set whose ops are an [`MqVTable`], valid for
/// as long as the value is used: blk-mq hands it to a callback, or it is
/// in flight (between `start` and its completion).
#[derive(Clone, Copy)]
pub(crate) struct Request(NonNull<kb::request>);

impl Request {
    /// # Safety
    ///
    /// `rq` is a valid request of one of our tag sets while the value is used.
    unsafe fn from_raw(rq: *mut kb::request) -> Option<Self> {
        NonNull::new(rq).map(Self)
    }

    /// The request whose PDU (driver data) is `pdu`.
    ///
    /// # Safety
    ///
    /// `pdu` is the driver data of a request of one of our tag sets, valid
    /// while the value is used.
    pub(crate) unsafe fn from_pdu<D>(pdu: *mut D) -> Self {
        // SAFETY: blk-mq places the PDU right behind its request; the
        // caller guarantees `pdu` is one.
        Self(unsafe { NonNull::new_unchecked(kb::blk_mq_rq_from_pdu(pdu.cast())) })
    }

    /// `nvme_cid()`: the command id nvme-core gave this request.
    pub(crate) fn cid(self) -> u16 {
        // SAFETY: a valid request (invariant).
        unsafe { nb::rnvme_nvme_cid(self.0.as_ptr().cast()) }
    }

    /// Payload bytes (0 without data segments).
    pub(crate) fn payload_bytes(self) -> u32 {
        // SAFETY: a valid request (invariant).
        unsafe { nb::rnvme_rq_payload_bytes(self.0.as_ptr().cast()) }
    }

    /// Data flows host to controller.
    pub(crate) fn is_write(self) -> bool {
        // SAFETY: a valid request (invariant).
        unsafe { nb::rnvme_rq_is_write(self.0.as_ptr().cast()) }
    }

    /// The raw request, for [`super::iov::RqData::start`].
    pub(crate) fn as_raw(self) -> *mut kb::request {
        self.0.as_ptr()
    }

    /// `nvme_start_request()`.
    pub(crate) fn start(self) {
        // SAFETY: a valid request being queued (invariant).
        unsafe { nb::rnvme_start_request(self.0.as_ptr().cast()) };
    }

    /// Completes the request with the controller's `status` and `result`
    /// (C: `nvme_tcp_end_request`). Callers complete each request once:
    /// from then on it is not in flight, so a second response for its
    /// command id finds nothing ([`Tags::find`] fails).
    pub(crate) fn end(self, status: u16, result: u64) {
        // SAFETY: an in-flight request (invariant).
        unsafe { nb::rnvme_end_request(self.0.as_ptr().cast(), status, result) };
    }

    /// `nvme_cleanup_cmd()`: undoes [`HwCtx::setup_cmd`] for a request
    /// that is not started after all (completion does it otherwise).
    pub(crate) fn cleanup_cmd(self) {
        // SAFETY: a valid request (invariant) whose command was set up.
        unsafe { nb::nvme_cleanup_cmd(self.0.as_ptr().cast()) };
    }

    /// `nvmf_complete_timed_out_request()`.
    pub(crate) fn complete_timed_out(self) {
        // SAFETY: an in-flight request, from its timeout handler.
        unsafe { nb::rnvme_complete_timed_out_request(self.0.as_ptr().cast()) };
    }
}

/// A hardware context of ours, during `queue_rq`.
///
/// # Invariants
///
/// `0` is a started hardware context of a tag set whose ops are an
/// [`MqVTable`].
pub(crate) struct HwCtx(NonNull<kb::blk_mq_hw_ctx>);

impl HwCtx {
    /// `nvme_setup_cmd()` for `rq` with the namespace of this context's
    /// queue: fills in the SQE at `nvme_req(rq)->cmd`. `Err` is nvme-core's
    /// status, for `queue_rq` to return as it is (C: `nvme_tcp_queue_rq`).
    pub(crate) fn setup_cmd(&self, rq: Request) -> Result<(), kb::blk_status_t> {
        // SAFETY: a started context (invariant), whose request queue is
        // set; nvme-core keeps the namespace (NULL for the admin queue) in
        // its `queuedata`, and nvme_setup_cmd() takes both.
        let st = unsafe {
            let ns = (*(*self.0.as_ptr()).queue).queuedata;
            nb::nvme_setup_cmd(ns.cast(), rq.0.as_ptr().cast())
        };
        if st == kb::BLK_STS_OK as kb::blk_status_t { Ok(()) } else { Err(st) }
    }
}

/// A tag map (the tags of one hardware queue) of a tag set using `T`,
/// borrowed from the set for `'a`.
///
/// # Invariants
///
/// `0` is a live `blk_mq_tags` of a tag set whose ops are `MqVTable<T>`.
pub(crate) struct Tags<'a, T: MqOperations>(NonNull<kb::blk_mq_tags>, PhantomData<&'a TagSet<T>>);

impl<'a, T: MqOperations> Tags<'a, T> {
    /// The in-flight request and its driver data a command id names.
    ///
    /// `nvme_find_rq()` checks the tag range and the generation, but
    /// nvme-core bumps a tag's generation when its command completes
    /// (`nvme_try_complete_req()`), so the id the tag's next command will
    /// carry already names the (completing or free) request. Only a
    /// request blk-mq has in flight (`MQ_RQ_IN_FLIGHT`: started, not yet
    /// completed) is handed out.
    pub(crate) fn find(self, cid: u16) -> Result<(Request, &'a mut T::RequestData), Lookup> {
        // SAFETY: valid tags (invariant).
        let rq = unsafe { nb::rnvme_nvme_find_rq(self.0.as_ptr().cast(), cid) };
        if rq.is_null() {
            return Err(Lookup::Unknown);
        }
        let rq: *mut kb::request = rq.cast();
        // `blk_mq_rq_state()`: READ_ONCE(rq->state).
        // SAFETY: `rq` is a request of these tags (found above); blk-mq
        // allocates them with the tag set and keeps them until it goes.
        let state = unsafe { core::ptr::read_volatile(&raw const (*rq).state) };
        if state != kb::mq_rq_state_MQ_RQ_IN_FLIGHT {
            return Err(Lookup::NotInFlight);
        }
        // SAFETY: a request of these tags, in flight (checked above).
        let rq = unsafe { Request::from_raw(rq) }.ok_or(Lookup::Unknown)?;
        // The `&mut` is the in-flight request's (blk-mq memory, not the set's).
        // SAFETY: every request of a tag set using `T` carries the
        // `T::RequestData` init_request wrote into its PDU.
        let data = unsafe { &mut *kb::blk_mq_rq_to_pdu(rq.as_raw()).cast::<T::RequestData>() };
        Ok((rq, data))
    }
}

/// Why a command id names no request ([`Tags::find`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// No request of the tag set has this tag and generation.
    Unknown,
    /// The request exists but is not in flight: its command completed (or
    /// was never started), and a second completion or data for it would
    /// reach memory handed back to its owner.
    NotInFlight,
}

/// A blk-mq tag set whose requests carry `T::RequestData`.
///
/// # Invariants
///
/// All-zero (no tag set yet: the state nvme-core allocates it from, as
/// the owner is zero-filled) or allocated by nvme-core with
/// `MqVTable<T>`'s ops ([`TagSet::ops`]), until nvme-core removes it.
#[repr(transparent)]
pub(crate) struct TagSet<T: MqOperations>(Opaque<kb::blk_mq_tag_set>, PhantomData<T>);

impl<T: MqOperations> TagSet<T> {
    /// The set, for nvme-core's `nvme_alloc_*_tag_set()`, which must be
    /// given [`Self::ops`] and `size_of::<T::RequestData>()`.
    pub(crate) fn as_raw(&self) -> *mut kb::blk_mq_tag_set {
        self.0.get()
    }

    fn raw(&self) -> &kb::blk_mq_tag_set {
        // Readers here (tag lookups) run on started queues, between set-ups.
        // SAFETY: nvme-core and blk-mq change the set only while they
        // allocate, resize or remove it, on the owner's set-up paths.
        unsafe { &*self.0.get() }
    }

    /// The ops of this set.
    pub(crate) fn ops() -> &'static kb::blk_mq_ops {
        &MqVTable::<T>::OPS
    }

    /// The per-request size blk-mq must reserve.
    pub(crate) fn cmd_size() -> u32 {
        core::mem::size_of::<T::RequestData>() as u32
    }

    /// Hardware queues of the set (0 before allocation).
    pub(crate) fn nr_hw_queues(&self) -> u32 {
        self.raw().nr_hw_queues
    }

    /// The tags of hardware queue `idx`, if the set has them.
    pub(crate) fn tags(&self, idx: usize) -> Option<Tags<'_, T>> {
        let set = self.raw();
        if set.tags.is_null() || idx >= set.nr_hw_queues as usize {
            return None;
        }
        // SAFETY: an allocated set has `nr_hw_queues` entries in `tags`.
        let t = unsafe { *set.tags.add(idx) };
        // INVARIANT: tags of this set, whose ops are `MqVTable<T>`.
        NonNull::new(t).map(|t| Tags(t, PhantomData))
    }

    /// Hands every started request of hardware queue `hctx_idx` to the
    /// set's timeout handler now (`blk_abort_request()`: its deadline
    /// becomes now and blk-mq's timeout work runs), instead of after the
    /// queue's timeout. Nothing is completed here: the timeout handler
    /// does that, serialised by blk-mq against the other completions as
    /// for any timeout. Any context; does nothing before the set exists.
    pub(crate) fn expire_requests(&self, hctx_idx: u32) {
        if self.raw().tags.is_null() {
            return;
        }
        // SAFETY: an allocated set (invariant; `tags` is set); the
        // iterator holds a reference on each request while `expire_one`
        // looks at it, and `expire_one` only reads `hctx_idx` from `data`.
        unsafe {
            kb::blk_mq_tagset_busy_iter(self.0.get(), Some(expire_one), hctx_idx as usize as *mut c_void)
        };
    }

    /// The CPU-to-hw-context map of map type `ty`, one entry per CPU id;
    /// `None` before the set has it.
    pub(crate) fn cpu_map(&self, ty: c_uint) -> Option<&[c_uint]> {
        let set = self.raw();
        if ty >= set.nr_maps {
            return None;
        }
        let map = set.map.get(ty as usize)?.mq_map;
        if map.is_null() {
            return None;
        }
        // SAFETY: blk-mq allocates `mq_map` with nr_cpu_ids entries for
        // every map of a tag set and keeps it while the tag set lives.
        Some(unsafe { core::slice::from_raw_parts(map, nb::rnvme_nr_cpu_ids() as usize) })
    }
}

/// `blk_mq_tagset_busy_iter()`'s callback for [`TagSet::expire_requests`]:
/// `data` is the hardware queue index, not a pointer.
///
/// # Safety
///
/// Called by `blk_mq_tagset_busy_iter()` with a started request it holds.
unsafe extern "C" fn expire_one(rq: *mut kb::request, data: *mut c_void) -> bool {
    // SAFETY: a valid request, held by the iterator; every request of a
    // set has its hardware context.
    let idx = unsafe { (*(*rq).mq_hctx).queue_num };
    if idx as usize == data as usize {
        // SAFETY: as above; blk_abort_request() only moves the deadline
        // and kicks the queue's timeout work.
        unsafe { kb::blk_abort_request(rq) };
    }
    true
}

/// What a driver provides to blk-mq.
///
/// # Safety
///
/// The `driver_data` of every tag set allocated with `MqVTable<Self>`'s ops
/// points to a valid `Self::Owner` for as long as the tag set exists (for
/// nvme, the controller: `nvme_ctrl` first in a `repr(C)` owner).
pub(crate) unsafe trait MqOperations: Sized {
    /// The tag set's owner (`set->driver_data`).
    type Owner;
    /// A hardware queue (`hctx->driver_data`), owned by the owner.
    type HwQueue;
    /// Per-request driver data, in each request's PDU.
    type RequestData;

    /// The driver data of a new request of hardware queue `hctx_idx`.
    fn init_request(owner: &Self::Owner, hctx_idx: u32) -> Result<Self::RequestData>;
    /// Called once the data is at its final address (it never moves).
    fn request_placed(data: &mut Self::RequestData);
    /// The hardware queue `hctx_idx` is, kept as `hctx->driver_data`; it
    /// must live as long as the tag set.
    fn init_hctx(owner: &Self::Owner, hctx_idx: u32) -> Result<&Self::HwQueue>;
    /// Queues `rq` (`last`: no more in this batch). Hardware queues are
    /// shared (any CPU may queue, poll, commit at once): `&`, not `&mut`.
    fn queue_rq(q: &Self::HwQueue, hctx: &HwCtx, rq: Request, data: &mut Self::RequestData, last: bool) -> kb::blk_status_t;
    /// A batch ended without a `last` request.
    fn commit_rqs(q: &Self::HwQueue);
    /// Polls for completions: how many, or a negative errno.
    fn poll(q: &Self::HwQueue) -> c_int;
    /// The request is done (after `Request::end`, a cancel or a timeout);
    /// `data` is its driver data, no longer used by anyone else.
    fn complete(rq: Request, data: &mut Self::RequestData);
    /// The request timed out.
    fn timeout(rq: Request, data: &mut Self::RequestData) -> kb::blk_eh_timer_return;
    /// Fills in the set's CPU maps.
    fn map_queues(owner: &Self::Owner, set: SetBeingMapped);
    /// Whether the set has a poll map (`poll` is only offered then).
    const POLL: bool;
    /// Whether blk-mq should call `map_queues`.
    const MAP_QUEUES: bool;
}

/// The `blk_mq_ops` of `T` and the callbacks in it.
pub(crate) struct MqVTable<T: MqOperations>(PhantomData<T>);

impl<T: MqOperations> MqVTable<T> {
    const OPS: kb::blk_mq_ops = kb::blk_mq_ops {
        queue_rq: Some(Self::queue_rq),
        commit_rqs: Some(Self::commit_rqs),
        complete: Some(Self::complete),
        init_request: Some(Self::init_request),
        exit_request: Some(Self::exit_request),
        init_hctx: Some(Self::init_hctx),
        timeout: Some(Self::timeout),
        map_queues: if T::MAP_QUEUES { Some(Self::map_queues) } else { None },
        poll: if T::POLL { Some(Self::poll) } else { None },
        // SAFETY: the remaining members are optional callbacks; NULL is valid.
        ..unsafe { core::mem::zeroed() }
    };

    /// # Safety
    ///
    /// `set` is a tag set using these ops (its `driver_data` is a
    /// `T::Owner`, trait contract) and `'a` does not outlive it. The
    /// callbacks run inside the owner's own calls into blk-mq (tag set
    /// allocation, resizing), so the owner is only lent shared.
    unsafe fn owner<'a>(set: *mut kb::blk_mq_tag_set) -> &'a T::Owner {
        // SAFETY: by the caller's guarantee and the trait contract.
        unsafe { &*(*set).driver_data.cast::<T::Owner>() }
    }

    /// # Safety
    ///
    /// `hctx` is a hardware context of a set using these ops whose
    /// `init_hctx` succeeded.
    unsafe fn hw_queue<'a>(hctx: *mut kb::blk_mq_hw_ctx) -> &'a T::HwQueue {
        // SAFETY: `init_hctx` stored a `T::HwQueue` that outlives the set.
        unsafe { &*(*hctx).driver_data.cast::<T::HwQueue>() }
    }

    /// # Safety
    ///
    /// `rq` is a request of a set using these ops whose `init_request`
    /// succeeded.
    unsafe fn data<'a>(rq: *mut kb::request) -> &'a mut T::RequestData {
        // SAFETY: `init_request` wrote a `T::RequestData` into the PDU.
        unsafe { &mut *kb::blk_mq_rq_to_pdu(rq).cast::<T::RequestData>() }
    }

    /// # Safety
    ///
    /// Called by blk-mq for a new request of a tag set using these ops,
    /// with `cmd_size` = `size_of::<T::RequestData>()`.
    unsafe extern "C" fn init_request(
        set: *mut kb::blk_mq_tag_set,
        rq: *mut kb::request,
        hctx_idx: c_uint,
        _numa_node: c_int,
    ) -> c_int {
        // SAFETY: a set using these ops.
        let owner = unsafe { Self::owner(set) };
        match T::init_request(owner, hctx_idx) {
            Ok(value) => {
                // SAFETY: the PDU holds `cmd_size` bytes, aligned by blk-mq
                // for any driver data (cache line), holds no value yet and
                // never moves.
                let data = unsafe {
                    let pdu = kb::blk_mq_rq_to_pdu(rq).cast::<T::RequestData>();
                    core::ptr::write(pdu, value);
                    &mut *pdu
                };
                T::request_placed(data);
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by blk-mq when a request whose `init_request` succeeded goes
    /// away with its tag set.
    unsafe extern "C" fn exit_request(_set: *mut kb::blk_mq_tag_set, rq: *mut kb::request, _hctx_idx: c_uint) {
        // Ends the life of the value init_request wrote (as the kernel's
        // Rust blk-mq does for request data).
        // SAFETY: the PDU holds it; blk-mq never uses it again.
        unsafe { core::ptr::drop_in_place(kb::blk_mq_rq_to_pdu(rq).cast::<T::RequestData>()) };
    }

    /// # Safety
    ///
    /// Called by blk-mq for a hardware context of a set using these ops;
    /// `data` is the set's `driver_data`.
    unsafe extern "C" fn init_hctx(hctx: *mut kb::blk_mq_hw_ctx, data: *mut c_void, idx: c_uint) -> c_int {
        // SAFETY: `data` is the set's driver data, a `T::Owner` (trait contract).
        let owner = unsafe { &*data.cast::<T::Owner>() };
        match T::init_hctx(owner, idx) {
            Ok(q) => {
                // SAFETY: `hctx` is being initialised by blk-mq.
                unsafe { (*hctx).driver_data = core::ptr::from_ref(q).cast_mut().cast() };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by blk-mq with a started hardware context of ours and a
    /// request of it.
    unsafe extern "C" fn queue_rq(hctx: *mut kb::blk_mq_hw_ctx, bd: *const kb::blk_mq_queue_data) -> kb::blk_status_t {
        // SAFETY: `bd` is valid for the call.
        let (rq, last) = unsafe { ((*bd).rq, (*bd).last) };
        // SAFETY: a started context of ours, and a request of its set.
        let (q, data) = unsafe { (Self::hw_queue(hctx), Self::data(rq)) };
        // SAFETY: `rq` is valid (see above).
        let Some(r) = (unsafe { Request::from_raw(rq) }) else {
            return BLK_STS_IOERR;
        };
        // SAFETY: non-null, and a started context of ours.
        let h = HwCtx(unsafe { NonNull::new_unchecked(hctx) });
        T::queue_rq(q, &h, r, data, last)
    }

    /// # Safety
    ///
    /// Called by blk-mq with a started hardware context of ours.
    unsafe extern "C" fn commit_rqs(hctx: *mut kb::blk_mq_hw_ctx) {
        // SAFETY: as above.
        T::commit_rqs(unsafe { Self::hw_queue(hctx) });
    }

    /// # Safety
    ///
    /// Called by blk-mq for a hardware context of our poll map.
    unsafe extern "C" fn poll(hctx: *mut kb::blk_mq_hw_ctx, _iob: *mut kb::io_comp_batch) -> c_int {
        // SAFETY: as above.
        T::poll(unsafe { Self::hw_queue(hctx) })
    }

    /// # Safety
    ///
    /// Called by blk-mq to complete a request of ours.
    unsafe extern "C" fn complete(rq: *mut kb::request) {
        // SAFETY: a valid request of ours, with driver data; completing,
        // so no other context uses that data any more.
        let (r, data) = unsafe { (Request::from_raw(rq), Self::data(rq)) };
        if let Some(r) = r {
            T::complete(r, data);
        }
    }

    /// # Safety
    ///
    /// Called by blk-mq for a timed-out request of ours.
    unsafe extern "C" fn timeout(rq: *mut kb::request) -> kb::blk_eh_timer_return {
        // SAFETY: a valid request of ours, with driver data.
        let (r, data) = unsafe { (Request::from_raw(rq), Self::data(rq)) };
        match r {
            Some(r) => T::timeout(r, data),
            None => kb::blk_eh_timer_return_BLK_EH_RESET_TIMER,
        }
    }

    /// # Safety
    ///
    /// Called by blk-mq for a tag set using these ops.
    unsafe extern "C" fn map_queues(set: *mut kb::blk_mq_tag_set) {
        // SAFETY: a set using these ops; blk-mq maps it during this call.
        let (owner, s) = unsafe { (Self::owner(set), SetBeingMapped(NonNull::new_unchecked(set))) };
        T::map_queues(owner, s);
    }
}

/// A tag set during its `map_queues` callback.
///
/// # Invariants
///
/// `0` is the tag set blk-mq is mapping; the value lives only for the call.
pub(crate) struct SetBeingMapped(NonNull<kb::blk_mq_tag_set>);

impl SetBeingMapped {
    /// `nvmf_map_queues()`: default, read and poll maps from the per-type
    /// I/O queue counts `io_queues` (filled by `nvmf_set_io_queues()`).
    pub(crate) fn nvmf_map(self, ctrl: super::nvme::NvmeCtrl, io_queues: &[u32; kb::hctx_type_HCTX_MAX_TYPES as usize]) {
        // SAFETY: the set being mapped (invariant), an initialised
        // controller, and HCTX_MAX_TYPES counts, which the function only
        // reads (its parameter lacks the `const`).
        unsafe { nb::nvmf_map_queues(self.0.as_ptr().cast(), ctrl.as_raw(), io_queues.as_ptr().cast_mut()) };
    }
}

/// `BLK_STS_IOERR` (a `__force` cast bindgen does not see).
pub(crate) const BLK_STS_IOERR: kb::blk_status_t = 10;

/// `nvme_complete_rq()`: the usual `complete` of an nvme transport.
pub(crate) fn nvme_complete_rq(rq: Request) {
    // SAFETY: a request of ours being completed (invariant).
    unsafe { nb::nvme_complete_rq(rq.as_raw().cast()) };
}
