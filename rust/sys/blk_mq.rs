// SPDX-License-Identifier: GPL-2.0
//! blk-mq callbacks (cf. the kernel's `rust/kernel/block/mq/operations.rs`
//! and `request.rs`). Pure blk-mq: what nvme-core adds to a request
//! (command ids, `nvme_setup_cmd()`, ending with an NVMe status) is in
//! [`super::nvme`].
//!
//! The driver implements the safe trait [`MqOperations`] with typed
//! arguments; the `unsafe extern "C"` functions blk-mq calls live here, in
//! [`MqVTable`], and turn its raw pointers into typed, shared references
//! once. Driver data is only ever lent as `&T::RequestData`: the contexts
//! that touch a request at once (queue_rq, io_work, a poller, the timeout
//! handler) each keep their own fields in their own cells.

use super::bindings as nb;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, Ordering};
use kernel::{bindings as kb, prelude::*, types::Opaque};

/// The PDU blk-mq reserves behind each request (`cmd_size` bytes): the
/// driver's data first, so that nvme-core's `nvme_req(rq)` (the PDU's
/// start) is the driver data's first field, then the word that makes
/// ending a request one-shot.
#[repr(C)]
pub(crate) struct Pdu<D> {
    data: D,
    /// [`Life`] as `u8`.
    life: AtomicU8,
}

/// Where a request is in its life, as the driver sees it.
///
/// `Idle → Armed` when the driver starts it ([`Request::arm`], in
/// queue_rq), `Armed → Ended` for the one context that ends it
/// ([`Request::try_set_end`]), `→ Idle` when blk-mq completes it
/// (`complete`, whoever completed it: the driver, a cancel, a timeout).
/// Only an `Armed` request is handed out by a command-id lookup.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Life {
    Idle = 0,
    Armed = 1,
    Ended = 2,
}

/// A request of a tag set whose requests carry `D`, lent to the driver by blk-mq (a
/// callback's argument) or found in flight ([`Tags::in_flight`]).
///
/// Not `Copy` or `Clone`: ending the request consumes the handle
/// ([`super::nvme`]'s `end`), and of all handles to one start of a request
/// only the first end wins ([`Self::try_set_end`]), as the kernel's
/// `Request::try_set_end`.
///
/// # Invariants
///
/// `rq` is a request of a tag set whose ops are an `MqVTable<T>` with
/// `T::RequestData = D`, whose PDU holds the `Pdu<D>` init_request wrote; the tag set (and
/// with it the request) outlives the handle: tag sets are removed only
/// after their queues are stopped and every request was cancelled.
pub(crate) struct Request<D> {
    rq: NonNull<kb::request>,
    _data: PhantomData<D>,
}

impl<D> Request<D> {
    /// # Safety
    ///
    /// `rq` is a request of a tag set whose requests carry `D` whose
    /// init_request succeeded, valid while the value lives.
    unsafe fn from_raw(rq: NonNull<kb::request>) -> Self {
        // INVARIANT: by the caller's guarantee.
        Self { rq, _data: PhantomData }
    }

    fn pdu(&self) -> &Pdu<D> {
        // SAFETY: the PDU holds a `Pdu<D>` (invariant), only
        // ever lent shared.
        unsafe { &*kb::blk_mq_rq_to_pdu(self.rq.as_ptr()).cast::<Pdu<D>>() }
    }

    /// The driver data, shared: every context that uses a request at once
    /// keeps what it changes in a cell of its own.
    pub(crate) fn data(&self) -> &D {
        &self.pdu().data
    }

    /// The raw request, for the nvme-core calls in [`super::nvme`] and for
    /// [`super::iov::RqData::start`].
    pub(crate) fn as_raw(&self) -> *mut kb::request {
        self.rq.as_ptr()
    }

    /// Payload bytes (0 without data segments).
    pub(crate) fn payload_bytes(&self) -> u32 {
        // SAFETY: a valid request (invariant).
        unsafe { nb::rnvme_rq_payload_bytes(self.rq.as_ptr().cast()) }
    }

    /// Data flows host to controller.
    pub(crate) fn is_write(&self) -> bool {
        // SAFETY: a valid request (invariant).
        unsafe { nb::rnvme_rq_is_write(self.rq.as_ptr().cast()) }
    }

    /// Marks the request started by the driver: lookups may find it and
    /// one context may end it. Everything written to the driver data
    /// before this is seen by whoever finds it (release).
    pub(super) fn arm(&self) {
        self.pdu().life.store(Life::Armed as u8, Ordering::Release);
    }

    /// Claims the end of this start of the request: true for exactly one
    /// caller between [`Self::arm`] and blk-mq's completion.
    pub(super) fn try_set_end(&self) -> bool {
        self.pdu()
            .life
            .compare_exchange(Life::Armed as u8, Life::Ended as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The request whose driver data is `data`.
    ///
    /// # Safety
    ///
    /// `data` is the driver data of a request of a tag set whose requests
    /// carry `D` (the `data()` of a handle to it), and the request is armed
    /// (not yet ended) while the value is used.
    pub(crate) unsafe fn from_data(data: NonNull<D>) -> Self {
        // `Pdu` is `repr(C)` with the data first: the data's address is
        // the PDU's, which blk-mq places right behind its request.
        // SAFETY: by the caller's guarantee the PDU belongs to such a request.
        let rq = unsafe { kb::blk_mq_rq_from_pdu(data.as_ptr().cast()) };
        // SAFETY: `rq` is that request; never null (the PDU follows it).
        unsafe { Self::from_raw(NonNull::new_unchecked(rq)) }
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
    /// The request queue's `queuedata` (nvme-core keeps the namespace
    /// there, NULL for the admin queue).
    pub(super) fn queuedata(&self) -> *mut c_void {
        // SAFETY: a started context (invariant), whose request queue is set.
        unsafe { (*(*self.0.as_ptr()).queue).queuedata }
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
    /// The raw tags, for nvme-core's `nvme_find_rq()`.
    pub(super) fn as_raw(&self) -> *mut kb::blk_mq_tags {
        self.0.as_ptr()
    }

    /// A handle to `rq`, one of these tags' requests, if blk-mq has it in
    /// flight (`MQ_RQ_IN_FLIGHT`: started, not completed) and the driver
    /// armed it and has not ended it.
    ///
    /// # Safety
    ///
    /// `rq` is a request of these tags (blk-mq allocates them with the tag
    /// set and keeps them until it goes).
    pub(super) unsafe fn in_flight(&self, rq: NonNull<kb::request>) -> Result<Request<T::RequestData>, Lookup> {
        // `blk_mq_rq_state()`: READ_ONCE(rq->state).
        // SAFETY: a request of these tags (caller).
        let state = unsafe { core::ptr::read_volatile(&raw const (*rq.as_ptr()).state) };
        if state != kb::mq_rq_state_MQ_RQ_IN_FLIGHT {
            return Err(Lookup::NotInFlight);
        }
        // SAFETY: a request of a set using `MqVTable<T>` (caller, and the
        // invariant), whose init_request succeeded (blk-mq allocates no
        // request whose init failed).
        let r = unsafe { Request::from_raw(rq) };
        // Acquire: what the driver wrote before arming it is visible.
        if r.pdu().life.load(Ordering::Acquire) != Life::Armed as u8 {
            return Err(Lookup::NotInFlight);
        }
        Ok(r)
    }
}

/// Why a command id names no request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// No request of the tag set has this tag and generation.
    Unknown,
    /// The request exists but is not in flight: its command completed (or
    /// was never started, or is being ended), and a second completion or
    /// data for it would reach memory handed back to its owner.
    NotInFlight,
}

/// A blk-mq tag set whose requests carry `T::RequestData`.
///
/// # Invariants
///
/// All-zero (no tag set yet: the state nvme-core allocates it from, as
/// the owner is zero-filled) or allocated with `MqVTable<T>`'s ops
/// ([`TagSet::ops`], only reachable in `sys/`, whose allocation wrappers
/// set `driver_data` to a `T::Owner`), until it is removed.
#[repr(transparent)]
pub(crate) struct TagSet<T: MqOperations>(Opaque<kb::blk_mq_tag_set>, PhantomData<T>);

impl<T: MqOperations> TagSet<T> {
    /// The set, for the allocation wrappers in `sys/`.
    pub(super) fn as_raw(&self) -> *mut kb::blk_mq_tag_set {
        self.0.get()
    }

    fn raw(&self) -> &kb::blk_mq_tag_set {
        // Readers here (tag lookups) run on started queues, between set-ups.
        // SAFETY: nvme-core and blk-mq change the set only while they
        // allocate, resize or remove it, on the owner's set-up paths.
        unsafe { &*self.0.get() }
    }

    /// The ops of this set. Only `sys/` allocates tag sets, and it sets
    /// their `driver_data` to a `T::Owner` (what [`MqVTable`] relies on).
    pub(super) fn ops() -> &'static kb::blk_mq_ops {
        &MqVTable::<T>::OPS
    }

    /// The per-request size blk-mq must reserve.
    pub(super) fn cmd_size() -> u32 {
        core::mem::size_of::<Pdu<T::RequestData>>() as u32
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
        // SAFETY: `nr_cpu_ids` is set once at boot, before modules load.
        let n = unsafe { kb::nr_cpu_ids } as usize;
        // SAFETY: blk-mq allocates `mq_map` with nr_cpu_ids entries for
        // every map of a tag set and keeps it while the tag set lives.
        Some(unsafe { core::slice::from_raw_parts(map, n) })
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


/// What a driver provides to blk-mq. A safe trait: the tag set's owner
/// and hardware queues are lent shared, requests as [`Request`] handles.
pub(crate) trait MqOperations: Sized {
    /// The tag set's owner (`set->driver_data`).
    type Owner;
    /// A hardware queue (`hctx->driver_data`), owned by the owner.
    type HwQueue;
    /// Per-request driver data, in each request's PDU.
    type RequestData;

    /// The driver data of a new request of hardware queue `hctx_idx`.
    fn init_request(owner: &Self::Owner, hctx_idx: u32) -> Result<Self::RequestData>;
    /// Called once the data is at its final address (it never moves), in
    /// init_request: nobody else knows the request yet.
    fn request_placed(data: &mut Self::RequestData);
    /// The hardware queue `hctx_idx` is, kept as `hctx->driver_data`; it
    /// lives as long as its owner, which outlives the tag set.
    fn init_hctx(owner: &Self::Owner, hctx_idx: u32) -> Result<&Self::HwQueue>;
    /// Queues `rq` (`last`: no more in this batch). Hardware queues are
    /// shared (any CPU may queue, poll, commit at once): `&`, not `&mut`.
    fn queue_rq(q: &Self::HwQueue, hctx: &HwCtx, rq: Request<Self::RequestData>, last: bool) -> kb::blk_status_t;
    /// A batch ended without a `last` request.
    fn commit_rqs(q: &Self::HwQueue);
    /// Polls for completions: how many, or a negative errno.
    fn poll(q: &Self::HwQueue) -> c_int;
    /// blk-mq completes the request (after the driver ended it, or a
    /// cancel, or a timeout).
    fn complete(rq: Request<Self::RequestData>);
    /// The request timed out.
    fn timeout(rq: Request<Self::RequestData>) -> kb::blk_eh_timer_return;
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
    /// `set` is a tag set using these ops, whose `driver_data` is a
    /// `T::Owner` (`TagSet`'s invariant), and `'a` does not outlive it.
    /// The callbacks run inside the owner's own calls into blk-mq (tag set
    /// allocation, resizing), so the owner is only lent shared.
    unsafe fn owner<'a>(set: *mut kb::blk_mq_tag_set) -> &'a T::Owner {
        // SAFETY: by the caller's guarantee.
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
    /// succeeded, valid for the callback.
    unsafe fn request(rq: *mut kb::request) -> Option<Request<T::RequestData>> {
        // SAFETY: by the caller's guarantee.
        NonNull::new(rq).map(|rq| unsafe { Request::from_raw(rq) })
    }

    /// # Safety
    ///
    /// Called by blk-mq for a new request of a tag set using these ops,
    /// with `cmd_size` = `size_of::<Pdu<T::RequestData>>()`.
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
                // The PDU holds `cmd_size` bytes, aligned by blk-mq for any
                // driver data (cache line), holds no value yet, never moves.
                // SAFETY: so this write is valid; nobody else knows the
                // request yet, so the `&mut` is unique.
                let data = unsafe {
                    let pdu = kb::blk_mq_rq_to_pdu(rq).cast::<Pdu<T::RequestData>>();
                    core::ptr::write(pdu, Pdu { data: value, life: AtomicU8::new(Life::Idle as u8) });
                    &mut (*pdu).data
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
        unsafe { core::ptr::drop_in_place(kb::blk_mq_rq_to_pdu(rq).cast::<Pdu<T::RequestData>>()) };
    }

    /// # Safety
    ///
    /// Called by blk-mq for a hardware context of a set using these ops;
    /// `data` is the set's `driver_data`.
    unsafe extern "C" fn init_hctx(hctx: *mut kb::blk_mq_hw_ctx, data: *mut c_void, idx: c_uint) -> c_int {
        // SAFETY: `data` is the set's driver data, a `T::Owner` (`TagSet`'s
        // invariant).
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
        // SAFETY: a started context of ours.
        let q = unsafe { Self::hw_queue(hctx) };
        // SAFETY: a request of its set, valid for the call.
        let Some(r) = (unsafe { Self::request(rq) }) else {
            return BLK_STS_IOERR;
        };
        // SAFETY: non-null, and a started context of ours.
        let h = HwCtx(unsafe { NonNull::new_unchecked(hctx) });
        T::queue_rq(q, &h, r, last)
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
        // SAFETY: a valid request of ours, with driver data.
        if let Some(r) = unsafe { Self::request(rq) } {
            // Whoever ended it (the driver, a cancel, a timeout), this
            // start of the request is over: no lookup finds it any more.
            r.pdu().life.store(Life::Idle as u8, Ordering::Release);
            T::complete(r);
        }
    }

    /// # Safety
    ///
    /// Called by blk-mq for a timed-out request of ours.
    unsafe extern "C" fn timeout(rq: *mut kb::request) -> kb::blk_eh_timer_return {
        // SAFETY: a valid request of ours, with driver data.
        match unsafe { Self::request(rq) } {
            Some(r) => T::timeout(r),
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
    /// The set being mapped, for `nvmf_map_queues()` in [`super::nvme`].
    pub(super) fn as_raw(&self) -> *mut kb::blk_mq_tag_set {
        self.0.as_ptr()
    }
}

/// `BLK_STS_IOERR` (a `__force` cast bindgen does not see).
pub(crate) const BLK_STS_IOERR: kb::blk_status_t = 10;
