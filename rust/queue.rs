// SPDX-License-Identifier: GPL-2.0
//! One NVMe/TCP queue: its socket, `io_work`, the send path and the
//! recvmsg receive path.
//!
//! Who touches what (the C driver's discipline, spelled out in types):
//! - `queue_rq`, `commit_rqs`, the AER and the receive side hand requests to
//!   io_work through a lock-free list ([`LList`]) and kick it;
//! - io_work alone owns the send side ([`SendSide`]: the FIFO and the request
//!   being sent); a work item never runs concurrently with itself;
//! - the receive side ([`RecvSide`]: the machine and the data phase) belongs
//!   to whoever holds `recv_busy`, io_work or a blk-mq poller
//!   ([`RecvGuard`]), as `lock_sock()` makes them take turns in C;
//! - an R2T passes a write from the receive side to the send side through
//!   the request's slot ([`crate::proto::r2t`]), never by touching the
//!   send side's FIFO;
//! - the socket callbacks (softirq) read [`SockCallbacks`] only;
//! - the set-up fields ([`QueueConf`]: socket, digests, sizes) change only
//!   in `alloc` and `free`, on a controller set-up path, while the queue is
//!   stopped and quiesced.

use crate::ctrl::TcpCtrl;
use crate::proto::completion::{self, Completion};
use crate::proto::crc;
use crate::proto::errno;
use crate::proto::pdu::{self, Digests, ProtoError, R2T};
use crate::proto::r2t::{self, Slot, SlotAction, SlotEvent};
use crate::proto::recv::{self, Event, QueueIo, RecvError, RecvMachine};
use crate::proto::tls::{self as tlsproto, ControlRecord, Got, TlsQueueIo, TlsRx};
use crate::stats::QueueStats;
use crate::sys::bindings as nb;
use crate::sys::blk_mq::{Lookup, Request};
use crate::sys::fmt::Shown;
use crate::sys::iov::{DataPhase, KernelCrc32c, PhaseMark, RqData, SkbRange};
use crate::sys::llist::LList;
use crate::sys::socket::{SockCallbacks, TcpSocket};
use crate::sys::workqueue::{Work, WORK_CPU_UNBOUND};
use core::cell::UnsafeCell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU8, Ordering};
use kernel::{bindings as kb, prelude::*};

/// How many queues (of every controller) have their io_work on each CPU,
/// so new queues go to the least used one (C: `nvme_tcp_cpu_queues`).
static CPU_QUEUES: [AtomicU32; kb::NR_CPUS as usize] = [const { AtomicU32::new(0) }; kb::NR_CPUS as usize];

/// Time budget of one `io_work` run, as the C driver's 1 ms.
const IO_WORK_BUDGET_NS: i64 = 1_000_000;

/// Where a request is on the send path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendState {
    /// Sending the command capsule header; `off` bytes are out.
    Cmd { off: usize },
    /// Sending in-capsule data from the request's pages.
    InlineData,
    /// Sending an H2CData header; `off` bytes are out.
    H2CHeader { off: usize },
    /// Sending H2CData payload.
    H2CData,
    /// Sending the data digest of the PDU just sent; `off` bytes are out.
    DataDigest { off: usize },
}

/// Where a receive pass takes its bytes from. The receive machine is the
/// same for both: only the byte source differs.
#[derive(Clone, Copy, Debug)]
enum RecvSource {
    /// Pull: `sock_recvmsg()` with `MSG_DONTWAIT` (io_work).
    Socket,
    /// Push: bytes of an skb handed over by `read_sock()` (the poll
    /// path, which must not sleep, and the `read_sock` mode).
    Skb(SkbRange),
}

/// The command capsule of a request, 8-byte aligned so the SQE at offset 8
/// is a valid `struct nvme_command`.
#[repr(C, align(8))]
pub(crate) struct CmdPdu(pub(crate) [u8; pdu::CMD_PDU_LEN + pdu::DIGEST_LEN]);

/// An R2T the receive side recorded for the send side; published by the
/// request's R2T slot moving to `Received` (release/acquire).
#[derive(Default)]
pub(crate) struct RecordedR2T {
    ttag: AtomicU16,
    offset: AtomicU32,
    length: AtomicU32,
}

/// Per-request driver data (the blk-mq PDU, `cmd_size` bytes).
///
/// `nreq` comes first: nvme-core finds it with `nvme_req(rq)`, which is
/// `blk_mq_rq_to_pdu(rq)`. `queue_rq` fills it in; then the send side owns
/// the send fields (capsule, H2C header, `send`, `data_sent`, …) and the
/// receive side the receive fields (`data_recvd`, `status`) until the
/// request completes; `r2t_slot` and `r2t` pass R2Ts between them.
#[repr(C)]
pub(crate) struct TcpRequest {
    pub(crate) nreq: nb::nvme_request,
    pub(crate) cmd: CmdPdu,
    pub(crate) h2c: [u8; pdu::DATA_PDU_LEN + pdu::DIGEST_LEN],
    pub(crate) queue: *const Queue,
    pub(crate) lentry: kb::llist_node,
    pub(crate) next: *mut TcpRequest,
    pub(crate) data_len: u32,
    pub(crate) inline_len: u32,
    pub(crate) data_sent: u32,
    pub(crate) data_recvd: u32,
    pub(crate) send: SendState,
    pub(crate) h2c_offset: u32,
    pub(crate) h2c_left: u32,
    pub(crate) r2t_left: u32,
    pub(crate) ttag: u16,
    pub(crate) status: u16,
    /// Data flows host to controller: C2HData for it is refused.
    pub(crate) write: bool,
    /// The R2T hand-off ([`r2t::Slot`] as `u8`).
    pub(crate) r2t_slot: AtomicU8,
    /// The R2T being handed off.
    r2t: RecordedR2T,
    pub(crate) snd_crc: u32,
    pub(crate) ddgst: [u8; pdu::DIGEST_LEN],
    /// The request's data pages: what is sent or received next.
    pub(crate) data: RqData,
}

impl TcpRequest {
    /// A request of `queue` on controller `ctrl`, with nothing in flight.
    /// `nreq.cmd` must still be pointed at the capsule once the value is at
    /// its final address ([`Self::bind_sqe`]).
    pub(crate) fn new(queue: *const Queue, ctrl: *mut nb::nvme_ctrl) -> Self {
        Self {
            nreq: nb::nvme_request { ctrl, ..Default::default() },
            cmd: CmdPdu([0; pdu::CMD_PDU_LEN + pdu::DIGEST_LEN]),
            h2c: [0; pdu::DATA_PDU_LEN + pdu::DIGEST_LEN],
            queue,
            lentry: Default::default(),
            next: null_mut(),
            data_len: 0,
            inline_len: 0,
            data_sent: 0,
            data_recvd: 0,
            send: SendState::Cmd { off: 0 },
            h2c_offset: 0,
            h2c_left: 0,
            r2t_left: 0,
            ttag: 0,
            status: 0,
            write: false,
            r2t_slot: AtomicU8::new(Slot::Sending as u8),
            r2t: RecordedR2T::default(),
            snd_crc: 0,
            ddgst: [0; pdu::DIGEST_LEN],
            data: RqData::none(),
        }
    }

    /// Points nvme-core's `nvme_req(rq)->cmd` at the SQE inside the
    /// capsule. The request must not move afterwards (blk-mq PDUs and the
    /// controller's AER request never do).
    pub(crate) fn bind_sqe(&mut self) {
        self.nreq.cmd = self.cmd.0[pdu::HDR_LEN..].as_mut_ptr().cast();
    }

    /// The blk-mq request of this driver data. Not for the AER request,
    /// which lives in the controller: it is never found by command id, so
    /// only blk-mq's own requests reach the paths that call this.
    pub(crate) fn rq(&mut self) -> Request {
        // SAFETY: apart from the AER (see above), a `TcpRequest` only
        // exists as the blk-mq PDU of one of our requests.
        unsafe { Request::from_pdu(self) }
    }

    /// The 64-byte SQE inside the command capsule (always present: the
    /// capsule buffer is longer than header plus SQE).
    pub(crate) fn sqe(&mut self) -> Option<&mut [u8; pdu::SQE_LEN]> {
        self.cmd.0[pdu::HDR_LEN..].first_chunk_mut::<{ pdu::SQE_LEN }>()
    }

    /// Completes the request (C: `nvme_tcp_end_request`). Its data phase
    /// ends here: the pages go back to their owner, and a later PDU for
    /// this command id finds the request not in flight.
    fn end(&mut self, status: u16, result: u64) {
        self.data.clear();
        self.rq().end(status, result);
    }

    /// Writes the capsule header and, with header digests, its digest.
    /// Call once the SQE is final: the digest covers it.
    pub(crate) fn seal_cmd(&mut self, digests: Digests, inline_len: u32) {
        let hdr = pdu::cmd_header(digests, inline_len);
        self.cmd.0[..pdu::HDR_LEN].copy_from_slice(&hdr.encode());
        if digests.header {
            let d = crc::digest(&KernelCrc32c, &self.cmd.0[..pdu::CMD_PDU_LEN]);
            self.cmd.0[pdu::CMD_PDU_LEN..].copy_from_slice(&d);
        }
    }

    /// The command id in the capsule (the AER's too, which has no blk-mq
    /// request to ask).
    pub(crate) fn command_id(&self) -> u16 {
        let at = pdu::HDR_LEN + 2;
        u16::from_le_bytes([self.cmd.0[at], self.cmd.0[at + 1]])
    }

    /// Moves the R2T slot on `ev`, as [`r2t::transition`] allows.
    fn r2t_transition(&self, ev: SlotEvent, cid: u16) -> Result<SlotAction, ProtoError> {
        let mut cur = self.r2t_slot.load(Ordering::Acquire);
        loop {
            let (next, action) = r2t::transition(Slot::from_u8(cur), ev, cid)?;
            // Every new command is `Taken` in `Sending`: no locked operation
            // on the hot path when nothing changes.
            if next as u8 == cur {
                return Ok(action);
            }
            match self.r2t_slot.compare_exchange(cur, next as u8, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(action),
                Err(now) => cur = now,
            }
        }
    }
}

/// What only io_work touches: the FIFO of requests to send and the one
/// being sent.
struct SendSide {
    head: *mut TcpRequest,
    tail: *mut TcpRequest,
    cur: *mut TcpRequest,
}

impl SendSide {
    const fn new() -> Self {
        Self { head: null_mut(), tail: null_mut(), cur: null_mut() }
    }

    fn push(&mut self, req: *mut TcpRequest) {
        // SAFETY: `req` is an in-flight request the send side owns.
        unsafe { (*req).next = null_mut() };
        if self.tail.is_null() {
            self.head = req;
        } else {
            // SAFETY: `tail` is on the FIFO.
            unsafe { (*self.tail).next = req };
        }
        self.tail = req;
    }

    fn pop(&mut self) -> *mut TcpRequest {
        let req = self.head;
        if !req.is_null() {
            // SAFETY: `req` is on the FIFO.
            self.head = unsafe { (*req).next };
            if self.head.is_null() {
                self.tail = null_mut();
            }
        }
        req
    }
}

/// The receive state other than the machine: the current data phase and
/// where the bytes come from.
struct RecvData {
    /// The request of the current C2HData phase.
    data_req: *mut TcpRequest,
    /// The data phase's msghdr: set up once per phase (and per bio).
    phase: DataPhase,
    /// Where the running pass reads from; `Socket` outside a push.
    source: RecvSource,
    /// A push pass's outcome so far: completions, or why the queue failed.
    push_result: Result<u32, RecvError>,
    /// TLS: where the data phase stood before the last receive, until its
    /// record type says commit or rewind.
    tls_mark: Option<PhaseMark>,
}

/// What whoever holds `recv_busy` touches.
struct RecvSide {
    machine: RecvMachine,
    data: RecvData,
    /// TLS: a record that is not data being read, and its buffer.
    tls: TlsRx,
}

impl RecvSide {
    fn new(digests: Digests) -> Self {
        Self {
            machine: RecvMachine::new(digests),
            data: RecvData {
                data_req: null_mut(),
                phase: DataPhase::new(),
                source: RecvSource::Socket,
                push_result: Ok(0),
                tls_mark: None,
            },
            tls: TlsRx::new(),
        }
    }
}

/// The receive side, held: `recv_busy` is released when this goes.
///
/// # Invariants
///
/// This value set `queue.recv_busy`, so `side` is the queue's receive side
/// and nobody else has it.
struct RecvGuard<'a> {
    queue: &'a Queue,
    side: &'a mut RecvSide,
}

impl Drop for RecvGuard<'_> {
    fn drop(&mut self) {
        self.queue.recv_busy.store(false, Ordering::Release);
    }
}

/// What a queue is set up with; changed only by [`Queue::alloc`] and
/// [`Queue::free`], while nothing else uses the queue.
pub(crate) struct QueueConf {
    sock: Option<TcpSocket>,
    pub(crate) digests: Digests,
    maxh2cdata: u32,
    pub(crate) cmnd_capsule_len: u32,
    /// io_work receives with `read_sock()` (push) instead of
    /// `sock_recvmsg()` (module parameter `read_sock`, for the A/B).
    work_pushes: bool,
    allocated: bool,
}

/// One queue of a controller.
///
/// # Invariants
///
/// Lives inside `TcpCtrl::queues`, which is allocated once per controller
/// and never moves, so the raw pointers to it (the socket callbacks', the
/// requests' `queue`, the work item) stay valid while it is allocated.
/// `send` is touched only by io_work, `recv` only under `recv_busy`, and
/// `conf` changes only in `alloc`/`free`, whose callers keep every other
/// user away.
pub(crate) struct Queue {
    ctrl: *const TcpCtrl,
    pub(crate) qid: u16,
    conf: UnsafeCell<QueueConf>,
    sk_ctx: SockCallbacks,
    io_work: Work,
    req_list: LList,
    send: UnsafeCell<SendSide>,
    recv: UnsafeCell<RecvSide>,
    pub(crate) live: AtomicBool,
    /// `sk_ctx.io_cpu` was picked by `set_io_cpu` and counts in `CPU_QUEUES`.
    io_cpu_set: AtomicBool,
    /// Held by whoever runs a receive pass: io_work or a blk-mq poller.
    recv_busy: AtomicBool,
    /// Receive counters (debugfs `rnvme_tcp/queues`).
    pub(crate) stats: QueueStats,
}

// SAFETY: shared between blk-mq, io_work, pollers and the socket callbacks
// on any CPU: `send` only by io_work, `recv` only under `recv_busy`,
// `conf` only changed while nobody else uses the queue (type invariant);
// the rest is atomics and `Sync` wrappers (work item, llist, callbacks).
unsafe impl Sync for Queue {}
// SAFETY: as above; nothing in it is bound to a thread.
unsafe impl Send for Queue {}

impl Queue {
    /// A queue not yet connected.
    pub(crate) fn new(ctrl: *const TcpCtrl, qid: u16) -> Self {
        let digests = Digests { header: false, data: false };
        Self {
            ctrl,
            qid,
            conf: UnsafeCell::new(QueueConf {
                sock: None,
                digests,
                maxh2cdata: 0,
                cmnd_capsule_len: 0,
                work_pushes: false,
                allocated: false,
            }),
            sk_ctx: SockCallbacks::new(),
            io_work: Work::new(),
            req_list: LList::new(),
            send: UnsafeCell::new(SendSide::new()),
            recv: UnsafeCell::new(RecvSide::new(digests)),
            live: AtomicBool::new(false),
            io_cpu_set: AtomicBool::new(false),
            recv_busy: AtomicBool::new(false),
            stats: QueueStats::default(),
        }
    }

    pub(crate) fn ctrl(&self) -> &TcpCtrl {
        // SAFETY: the controller owns its queues and outlives them.
        unsafe { &*self.ctrl }
    }

    fn dev(&self) -> &kernel::device::Device {
        self.ctrl().device()
    }

    /// What the queue is set up with.
    pub(crate) fn conf(&self) -> &QueueConf {
        // SAFETY: changed only by `alloc`/`free`, whose callers keep every
        // other user away meanwhile (type invariant).
        unsafe { &*self.conf.get() }
    }

    /// Takes the connected socket and what ICResp negotiated (C:
    /// `nvme_tcp_alloc_queue`); the queue is not live yet. `capsule_len`:
    /// the command capsule size the controller accepts on this queue.
    ///
    /// # Safety
    ///
    /// Called from a controller set-up path (nvme-core runs one at a time)
    /// while the queue is stopped and its blk-mq queue quiesced: no
    /// io_work, poller, socket callback or `queue_rq` uses it meanwhile.
    pub(crate) unsafe fn alloc(&self, sock: TcpSocket, icresp: pdu::IcResp, capsule_len: u32, work_pushes: bool) {
        // SAFETY: nobody else uses the queue (caller), so these cells are
        // ours for the call.
        unsafe {
            *self.conf.get() = QueueConf {
                sock: Some(sock),
                digests: icresp.digests,
                maxh2cdata: icresp.maxh2cdata,
                cmnd_capsule_len: capsule_len,
                work_pushes,
                allocated: true,
            };
            *self.send.get() = SendSide::new();
            *self.recv.get() = RecvSide::new(icresp.digests);
        }
        self.stats.set_digests(icresp.digests.header, icresp.digests.data);
        // Requests left from a failed connection were cancelled by
        // nvme-core: forget them.
        for _ in self.req_list.take_all() {}
        // SAFETY: `io_work` is not in use (the queue is stopped), and the
        // queue never moves (type invariant).
        unsafe { self.io_work.init(io_work_fn, kernel::static_lock_class!()) };
    }

    /// Starts receiving: hooks the socket callbacks up to io_work.
    pub(crate) fn start_io(&self) {
        let me: *const Queue = self;
        let work = self.io_work.as_raw();
        if let Some(s) = &self.conf().sock {
            self.sk_ctx.set_tls(s.tls());
            // `stop` restored any earlier install; `io_work` was initialised
            // in `alloc`. SAFETY: so not installed now, and the queue neither
            // moves nor goes away before `stop` restores (type invariant).
            unsafe { self.sk_ctx.install(s, work, WORK_CPU_UNBOUND, me.cast_mut().cast(), sk_error_fn) };
        }
    }

    /// Runs io_work on the least used online CPU that blk-mq maps to this
    /// queue's hardware context `hctx_idx` in `mq_map` (one entry per CPU
    /// id), so submission and io_work share a CPU (C:
    /// `nvme_tcp_set_queue_io_cpu`). Keeps it unbound when no CPU maps here.
    pub(crate) fn set_io_cpu(&self, mq_map: &[c_uint], hctx_idx: c_uint) {
        self.put_io_cpu();
        let mut best: Option<(usize, u32)> = None;
        let mut cpu: c_int = -1;
        loop {
            // SAFETY: reads the online mask.
            cpu = unsafe { nb::rnvme_next_online_cpu(cpu) };
            let Ok(i) = usize::try_from(cpu) else { break };
            let (Some(&m), Some(n)) = (mq_map.get(i), CPU_QUEUES.get(i)) else { break };
            let n = n.load(Ordering::Relaxed);
            if m == hctx_idx && best.is_none_or(|(_, b)| n < b) {
                best = Some((i, n));
            }
        }
        if let Some((i, _)) = best {
            CPU_QUEUES[i].fetch_add(1, Ordering::Relaxed);
            self.sk_ctx.set_io_cpu(i as c_int);
            self.io_cpu_set.store(true, Ordering::Release);
        }
    }

    /// The CPU io_work runs on, `None` when unbound (the queuing CPU).
    pub(crate) fn io_cpu(&self) -> Option<u32> {
        if self.io_cpu_set.load(Ordering::Acquire) { u32::try_from(self.sk_ctx.io_cpu()).ok() } else { None }
    }

    fn put_io_cpu(&self) {
        if self.io_cpu_set.swap(false, Ordering::AcqRel) {
            if let Some(n) = usize::try_from(self.sk_ctx.io_cpu()).ok().and_then(|i| CPU_QUEUES.get(i)) {
                n.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Stops the queue (C: `__nvme_tcp_stop_queue`): no more receives,
    /// callbacks restored, socket shut down, pollers out, io_work finished
    /// and disabled. Any context that may sleep (teardown, the timeout
    /// handler).
    ///
    /// The order matters: a poller handling an R2T queues io_work, so
    /// io_work is disabled only once no poller can be in a pass (C, whose
    /// pollers only receive, cancels io_work right after the shutdown).
    /// Disabled, not cancelled: a late kick (`queue_rq`, `commit_rqs`, an
    /// AER) queues nothing until `alloc` initialises the work again.
    pub(crate) fn stop(&self) {
        self.stop_nowait();
        self.wait_sent();
    }

    /// [`Self::stop`] without waiting for the send queue (C:
    /// `nvme_tcp_stop_queue_nowait`), so several queues can drain at once.
    pub(crate) fn stop_nowait(&self) {
        if !self.conf().allocated {
            return;
        }
        // Pollers that see this leave without touching the queue.
        self.live.store(false, Ordering::SeqCst);
        self.put_io_cpu();
        self.sk_ctx.set_rd_enabled(false);
        if let Some(s) = &self.conf().sock {
            self.sk_ctx.restore(s);
            s.shutdown();
        }
        // A poller (or io_work) already in a pass: the shutdown ends a
        // recvmsg, and a poller never sleeps there, so this wait is short.
        while self.recv_busy.load(Ordering::Acquire) {
            // SAFETY: plain sleep in process context (stop is never called
            // from a receive pass).
            unsafe { kb::msleep(1) };
        }
        self.io_work.disable_sync();
    }

    /// Waits, 100 ms at most, until the stopped queue's socket holds no
    /// sent data (C: `nvme_tcp_wait_queue`): request pages go out by
    /// reference (`MSG_SPLICE_PAGES`), and once the requests are failed
    /// over their buffers may be reused while skbs still point at them.
    pub(crate) fn wait_sent(&self) {
        let Ok(sock) = self.sock() else { return };
        for _ in 0..50 {
            if !sock.send_queued() {
                return;
            }
            // SAFETY: plain sleep in process context (as `stop`).
            unsafe { kb::msleep(2) };
        }
        dev_warn!(self.dev(), "qid {}: timeout draining sock wmem allocation expired\n", self.qid);
    }

    /// Releases the socket (C: `nvme_tcp_free_queue`).
    ///
    /// # Safety
    ///
    /// As for [`Self::alloc`]; the queue was stopped.
    pub(crate) unsafe fn free(&self) {
        // SAFETY: nobody else uses the queue (caller).
        let conf = unsafe { &mut *self.conf.get() };
        conf.sock = None;
        conf.allocated = false;
    }

    /// Hands a request to io_work (from queue_rq, the AER, or an R2T).
    /// io_work is kicked for the `last` request of a batch only; blk-mq
    /// calls `commit_rqs` (which kicks it) when a batch ends without one.
    pub(crate) fn queue_request(&self, req: &mut TcpRequest, last: bool) {
        // SAFETY: the request is in flight and on no list (a new command,
        // or one the send side is done with: R2T slot `Waiting`), and stays
        // valid until it completes, after io_work took it off.
        unsafe { self.req_list.add(&raw mut req.lentry) };
        if last {
            self.kick();
        }
    }

    /// A batch ended without a `last` request (blk-mq's `commit_rqs`):
    /// kick io_work only if requests wait for it (C: `nvme_tcp_commit_rqs`).
    pub(crate) fn commit(&self) {
        if !self.req_list.is_empty() {
            self.kick();
        }
    }

    /// Schedules io_work on the queue's CPU.
    pub(crate) fn kick(&self) {
        self.io_work.queue_on(self.sk_ctx.io_cpu());
    }

    /// The send side.
    ///
    /// # Safety
    ///
    /// Only io_work calls this, once per run (type invariant).
    #[allow(clippy::mut_from_ref)]
    unsafe fn send_side(&self) -> &mut SendSide {
        // SAFETY: io_work is the only user and never runs twice at once.
        unsafe { &mut *self.send.get() }
    }

    /// The receive side, unless another context is receiving.
    fn try_recv(&self) -> Option<RecvGuard<'_>> {
        if self.recv_busy.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return None;
        }
        // SAFETY: we just set `recv_busy`: nobody else touches `recv` until
        // the guard clears it.
        let side = unsafe { &mut *self.recv.get() };
        // INVARIANT: `recv_busy` is ours.
        Some(RecvGuard { queue: self, side })
    }

    /// Moves newly queued requests onto the send side's FIFO; a request an
    /// R2T handed back gets its H2CData set up here.
    fn take_new_requests(&self, s: &mut SendSide) -> Result<(), c_int> {
        for node in self.req_list.take_all() {
            let off = core::mem::offset_of!(TcpRequest, lentry);
            // SAFETY: every node on `req_list` is the `lentry` of an
            // in-flight request, now the send side's.
            let req = unsafe { &mut *node.cast::<u8>().sub(off).cast::<TcpRequest>() };
            if let SlotAction::SendH2C = self.slot_event(req, SlotEvent::Taken)? {
                self.start_r2t(req)?;
            }
            s.push(req);
        }
        Ok(())
    }

    /// Moves a request's R2T slot; a refusal (a misbehaving target) is
    /// logged with the queue and the command.
    fn slot_event(&self, req: &mut TcpRequest, ev: SlotEvent) -> Result<SlotAction, c_int> {
        let cid = req.command_id();
        req.r2t_transition(ev, cid).map_err(|e| {
            dev_err!(self.dev(), "queue {}: {}\n", self.qid, Shown(e));
            -e.errno()
        })
    }

    /// The queue runs over kTLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.conf().sock.as_ref().is_some_and(TcpSocket::tls)
    }

    fn sock(&self) -> Result<&TcpSocket, c_int> {
        self.conf().sock.as_ref().ok_or(-(errno::ENOTCONN))
    }

    /// Sends `buf` without blocking; returns bytes sent.
    fn send_buf(&self, buf: &[u8], more: bool) -> Result<usize, c_int> {
        self.sock()?.send_nonblocking(buf, more)
    }

    /// Sends up to `len` bytes of the request's data (pages spliced, not
    /// copied, where allowed), extending the request's data digest when
    /// data digests are on.
    fn send_data(&self, req: &mut TcpRequest, len: usize, more: bool) -> Result<usize, c_int> {
        let sock = self.sock()?;
        let crc = if self.conf().digests.data { Some(&mut req.snd_crc) } else { None };
        req.data.send(sock, len, more, crc)
    }

    /// Takes the R2T the receive side recorded: checks it against what was
    /// sent (as `nvme_tcp_handle_r2t()`), then sets up its first H2CData.
    fn start_r2t(&self, req: &mut TcpRequest) -> Result<(), c_int> {
        let r = R2T {
            command_id: req.command_id(),
            ttag: req.r2t.ttag.load(Ordering::Relaxed),
            offset: req.r2t.offset.load(Ordering::Relaxed),
            length: req.r2t.length.load(Ordering::Relaxed),
        };
        let total = if req.write { req.data_len } else { 0 };
        if let Err(e) = pdu::check_r2t(&r, req.data_sent, total) {
            dev_err!(self.dev(), "queue {}: {}\n", self.qid, Shown(e));
            return Err(-e.errno());
        }
        req.ttag = r.ttag;
        req.h2c_offset = r.offset;
        req.r2t_left = r.length;
        self.setup_h2c(req);
        Ok(())
    }

    /// Prepares the next H2CData PDU of the current R2T.
    fn setup_h2c(&self, req: &mut TcpRequest) {
        let len = req.r2t_left.min(self.conf().maxh2cdata);
        req.r2t_left -= len;
        req.h2c_left = len;
        let last = req.r2t_left == 0;
        let cid = req.command_id();
        let h = pdu::encode_h2c_data(self.conf().digests, cid, req.ttag, req.h2c_offset, len, last);
        req.h2c[..pdu::DATA_PDU_LEN].copy_from_slice(&h);
        if self.conf().digests.header {
            let d = crc::digest(&KernelCrc32c, &h);
            req.h2c[pdu::DATA_PDU_LEN..].copy_from_slice(&d);
        }
        req.send = SendState::H2CHeader { off: 0 };
    }

    /// After a PDU's payload: its data digest, or what comes next.
    fn payload_done(&self, s: &mut SendSide, req: &mut TcpRequest) -> Result<(), c_int> {
        if self.conf().digests.data {
            req.ddgst = crc::finish(req.snd_crc);
            req.send = SendState::DataDigest { off: 0 };
            Ok(())
        } else {
            self.pdu_done(s, req)
        }
    }

    /// After a whole PDU: the next H2CData of the R2T, or the request is
    /// sent for now.
    fn pdu_done(&self, s: &mut SendSide, req: &mut TcpRequest) -> Result<(), c_int> {
        if req.r2t_left > 0 {
            self.setup_h2c(req);
            Ok(())
        } else {
            self.request_sent(s, req)
        }
    }

    /// The send side is done with `req` until an R2T asks for more of its
    /// data (or for good). An R2T that came early is served at once.
    fn request_sent(&self, s: &mut SendSide, req: &mut TcpRequest) -> Result<(), c_int> {
        s.cur = null_mut();
        let more_due = req.write && req.data_sent < req.data_len;
        if let SlotAction::SendH2C = self.slot_event(req, SlotEvent::SendDone { more_due })? {
            self.start_r2t(req)?;
            s.cur = req;
        }
        Ok(())
    }

    /// Sends the current request's PDUs (capsule and in-capsule data, or an
    /// H2CData header, payload and digest) until it is sent for now or the
    /// socket is full, as the C driver's `nvme_tcp_try_send()`: io_work
    /// receives between requests, not between the pieces of one.
    /// `Ok(true)` when progress was made, `Ok(false)` when there is nothing
    /// to send or the socket is full.
    fn try_send(&self, s: &mut SendSide) -> Result<bool, c_int> {
        let mut progress = false;
        loop {
            match self.send_step(s) {
                Ok(true) if !s.cur.is_null() => progress = true,
                Ok(sent) => return Ok(progress || sent),
                Err(e) if progress && e == -(errno::EAGAIN) => return Ok(true),
                Err(e) => return Err(e),
            }
        }
    }

    /// One send call for the current request (taking the next one when
    /// there is none). `Ok(true)` when bytes went out.
    fn send_step(&self, s: &mut SendSide) -> Result<bool, c_int> {
        if s.cur.is_null() {
            self.take_new_requests(s)?;
            s.cur = s.pop();
            if s.cur.is_null() {
                return Ok(false);
            }
        }
        // SAFETY: `cur` is an in-flight request the send side owns.
        let req = unsafe { &mut *s.cur };
        // Not across requests on TLS (C: `nvme_tcp_queue_more()`): a record
        // kept open for a later request would wait for it.
        let more = !s.head.is_null() && !self.is_tls();
        let n = match req.send {
            SendState::Cmd { off } => {
                let total = pdu::CMD_PDU_LEN + self.conf().digests.hdgst_len();
                let inline = req.inline_len > 0;
                let n = self.send_buf(&req.cmd.0[off..total], inline || more)?;
                if off + n == total {
                    if inline {
                        req.snd_crc = crc::SEED;
                        req.send = SendState::InlineData;
                    } else {
                        self.request_sent(s, req)?;
                    }
                } else {
                    req.send = SendState::Cmd { off: off + n };
                }
                n
            }
            SendState::InlineData => {
                let left = (req.inline_len - req.data_sent) as usize;
                let n = self.send_data(req, left, more || self.conf().digests.data)?;
                req.data_sent += n as u32;
                if req.data_sent == req.inline_len {
                    self.payload_done(s, req)?;
                }
                n
            }
            SendState::H2CHeader { off } => {
                let total = pdu::DATA_PDU_LEN + self.conf().digests.hdgst_len();
                let n = self.send_buf(&req.h2c[off..total], true)?;
                if off + n == total {
                    req.snd_crc = crc::SEED;
                    req.send = SendState::H2CData;
                } else {
                    req.send = SendState::H2CHeader { off: off + n };
                }
                n
            }
            SendState::H2CData => {
                let n = self.send_data(req, req.h2c_left as usize, more || req.r2t_left > 0 || self.conf().digests.data)?;
                req.h2c_left -= n as u32;
                req.data_sent += n as u32;
                req.h2c_offset += n as u32;
                if req.h2c_left == 0 {
                    self.payload_done(s, req)?;
                }
                n
            }
            SendState::DataDigest { off } => {
                let d = req.ddgst;
                let n = self.send_buf(&d[off..], more || req.r2t_left > 0)?;
                if off + n == pdu::DIGEST_LEN {
                    self.pdu_done(s, req)?;
                } else {
                    req.send = SendState::DataDigest { off: off + n };
                }
                n
            }
        };
        Ok(n > 0)
    }

    /// The in-flight request a command id of a `what` PDU names on this
    /// queue; any other id is a protocol error, logged with the queue and
    /// the id (`Err` is the positive errno that stops the queue).
    fn find_request<'r>(&self, what: &str, cid: u16) -> Result<&'r mut TcpRequest, i32> {
        // The borrow is not tied to `self`: the request is blk-mq memory,
        // handled until it completes. SAFETY: the controller owns its
        // queues and outlives them and their requests.
        let c: &'r TcpCtrl = unsafe { &*self.ctrl };
        match c.find_request(self.qid, cid) {
            Ok((_, req)) => Ok(req),
            Err(Lookup::Unknown) => {
                dev_err!(self.dev(), "queue {}: {} for unknown command id {:#x}\n", self.qid, what, cid);
                Err(errno::EPROTO)
            }
            Err(Lookup::NotInFlight) => {
                dev_err!(self.dev(), "queue {}: {} for command id {:#x}, which is not in flight\n", self.qid, what, cid);
                Err(errno::EPROTO)
            }
        }
    }

    /// The status `req` (command id `cid`) completes with when the target
    /// reports `target_status` ([`completion::complete`]); a read that
    /// ends before all its data arrived is logged and fails with a
    /// transfer error.
    fn completion_status(&self, req: &TcpRequest, cid: u16, target_status: u16) -> u16 {
        let to_host = if req.write { 0 } else { req.data_len };
        let c = completion::complete(req.status, target_status, to_host, req.data_recvd);
        if let Completion::ShortRead { got, want } = c {
            dev_err!(self.dev(), "queue {}: cid {:#x} short data-in: got {} of {}\n", self.qid, cid, got, want);
        }
        c.status()
    }

    /// One receive pass from io_work, if no poller is in one: io_work and
    /// pollers take turns here, as lock_sock() makes them do in C. `None`
    /// when a poller holds it.
    fn try_recv_pass(&self) -> Option<Result<recv::PassEnd, RecvError>> {
        let g = self.try_recv()?;
        Some(if self.conf().work_pushes {
            // read_sock() takes everything queued: the pass always drains.
            self.push_pass(g, true).map(|completions| recv::PassEnd { completions, drained: true })
        } else {
            run_pass(self, &mut *g.side)
        })
    }

    /// Runs the receive machine over what the socket holds, pushed by
    /// `read_sock()`: under `lock_sock()` from a task that may sleep
    /// (io_work), else under the socket spinlock, skipped when a task owns
    /// the socket (pollers). Returns the commands completed.
    fn push_pass(&self, g: RecvGuard<'_>, may_sleep: bool) -> Result<u32, RecvError> {
        let Ok(sock) = self.sock() else {
            return Ok(0);
        };
        g.side.data.push_result = Ok(0);
        let mut ctx = PushCtx { queue: self, side: &mut *g.side };
        let ctx_ptr: *mut PushCtx<'_> = &mut ctx;
        // read_sock's byte count is not needed: the machine keeps its own
        // place. -EBUSY (a task owns the socket: pollers only) means that
        // task receives.
        QueueStats::add(&self.stats.read_sock_calls, 1);
        // SAFETY: `ctx_ptr` points to `ctx`, alive for the call;
        // `push_actor` only runs inside it, with this type of context.
        let r = unsafe { sock.read_sock(may_sleep, ctx_ptr.cast(), push_actor) };
        let done = core::mem::replace(&mut ctx.side.data.push_result, Ok(0))?;
        // From io_work, a drained socket's FIN or error ends the connection
        // as recvmsg's 0 or -errno would; pollers leave that to io_work.
        match r {
            _ if !may_sleep || r >= 0 => Ok(done),
            r if r == -(errno::ESHUTDOWN) => Err(RecvError::Proto(ProtoError::ConnectionClosed)),
            r => Err(RecvError::Socket(-r)),
        }
    }

    /// The blk-mq poll of a poll queue (C: `nvme_tcp_poll`): what the
    /// socket holds now goes through the receive machine, pushed by
    /// `read_sock()` under the socket spinlock, because pollers may run
    /// where sleeping is not allowed (io_uring polls under
    /// `rcu_read_lock()`), and `sock_recvmsg()` sleeps in `lock_sock()`.
    ///
    /// Returns the commands completed, 0 when io_work is receiving (it
    /// completes them) or the queue is not live, or a negative errno when
    /// the connection failed (error recovery has been started).
    pub(crate) fn poll(&self) -> c_int {
        // TLS queues: io_work receives (see `crate::tls`).
        if self.is_tls() {
            return 0;
        }
        let Some(g) = self.try_recv() else {
            return 0;
        };
        // `stop` clears `live` before waiting for `recv_busy`: a live
        // queue here keeps its socket until we let go.
        if !self.live.load(Ordering::Acquire) || !self.sk_ctx.rd_enabled() {
            return 0;
        }
        // While we poll, data_ready does not kick io_work for bytes we are
        // about to take (C: NVME_TCP_Q_POLLING).
        self.sk_ctx.set_polling(true);
        let r = self.push_pass(g, false);
        self.sk_ctx.set_polling(false);
        QueueStats::add(&self.stats.polls, 1);
        match r {
            Ok(done) => {
                QueueStats::add(&self.stats.poll_completions, u64::from(done));
                done.min(c_int::MAX as u32) as c_int
            }
            Err(e) => {
                self.recv_failed(e);
                -e.errno()
            }
        }
    }

    /// Logs why the queue stopped and starts error recovery. The queue is
    /// dead from here: nothing more is received on it. While connecting
    /// there is no recovery to run: the queue's set-up commands time out
    /// at once. Never sleeps (pollers call it too). The receive side is
    /// left as it is: nothing reads it again before `alloc` starts it over.
    fn recv_failed(&self, e: RecvError) {
        dev_err!(self.dev(), "queue {}: receive failed: {} (-{})\n", self.qid, Shown(e), e.errno());
        self.sk_ctx.set_rd_enabled(false);
        self.live.store(false, Ordering::SeqCst);
        self.ctrl().error_recovery();
        self.ctrl().expire_setup_requests(self.qid);
    }
}

/// Runs the receive machine of `q` over its current source.
fn run_pass(q: &Queue, side: &mut RecvSide) -> Result<recv::PassEnd, RecvError> {
    let RecvSide { machine, data, tls } = side;
    // TLS queues always pull with recvmsg, so every record's type is seen
    // (pollers and read_sock=1 never push on them: see `crate::tls`).
    if q.is_tls() && matches!(data.source, RecvSource::Socket) {
        return tlsproto::recv_pass_tls(machine, tls, &mut RecvCtx { queue: q, data });
    }
    recv::recv_pass(machine, &mut RecvCtx { queue: q, data })
}

/// A push pass's context, for [`push_actor`].
struct PushCtx<'a> {
    queue: &'a Queue,
    side: &'a mut RecvSide,
}

/// The queue as the receive machine sees it during a pass.
struct RecvCtx<'a> {
    queue: &'a Queue,
    data: &'a mut RecvData,
}

impl QueueIo for RecvCtx<'_> {
    type Crc = KernelCrc32c;

    fn crc(&self) -> &KernelCrc32c {
        &KernelCrc32c
    }

    fn recv_buf(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let r = match &mut self.data.source {
            RecvSource::Socket => {
                QueueStats::add(&self.queue.stats.recvmsg_calls, 1);
                self.queue.sock()?.recv(buf, kb::MSG_DONTWAIT as c_int)
            }
            RecvSource::Skb(src) => src.copy_to(buf),
        };
        r.map_err(|e| -e)
    }

    fn recv_data(&mut self, len: usize, crc: Option<&mut u32>) -> Result<usize, i32> {
        let q = self.queue;
        let d = &mut *self.data;
        if d.data_req.is_null() {
            return Err(errno::EINVAL);
        }
        // SAFETY: set by DataBegin to an in-flight read of this queue,
        // whose receive fields are the receive side's.
        let req = unsafe { &mut *d.data_req };
        if d.phase.ensure_room(&mut req.data).is_err() {
            let cid = req.rq().cid();
            dev_err!(q.dev(), "queue {}: no space in request {:#x}\n", q.qid, cid);
            return Err(errno::EIO);
        }
        let r = match &mut d.source {
            RecvSource::Socket => {
                let sock = q.sock().map_err(|e| -e)?;
                QueueStats::add(&q.stats.recvmsg_calls, 1);
                d.phase.recv(&mut req.data, sock, len, crc)
            }
            RecvSource::Skb(src) => d.phase.copy_from(&mut req.data, src, len, crc),
        };
        let n = r.map_err(|e| -e)?;
        req.data_recvd += n as u32;
        Ok(n)
    }

    fn event(&mut self, ev: Event) -> Result<bool, i32> {
        let q = self.queue;
        match ev {
            Event::Response(cqe) => {
                // The AER lives outside blk-mq, past the admin tag space;
                // only an outstanding one may complete.
                if q.qid == 0
                    && cqe.command_id == nb::NVME_AQ_BLK_MQ_DEPTH as u16
                    && crate::ctrl::complete_async_event(q.ctrl(), cqe.status, cqe.result)
                {
                    return Ok(true);
                }
                let req = q.find_request("response", cqe.command_id)?;
                let status = q.completion_status(req, cqe.command_id, cqe.status);
                req.end(status, cqe.result);
                Ok(true)
            }
            Event::DataBegin(d) => {
                let req = q.find_request("c2h data", d.command_id)?;
                // Only a read may receive data: a write's pages are the
                // data to send, never a destination.
                let expected = if req.write { 0 } else { req.data_len };
                if let Err(e) = pdu::check_c2h_range(&d, req.data_recvd, expected) {
                    dev_err!(q.dev(), "queue {}: {}\n", q.qid, Shown(e));
                    return Err(e.errno());
                }
                // The data phase's msghdr, set up once.
                self.data.phase.begin(&req.data).map_err(|e| -e)?;
                self.data.data_req = req;
                Ok(false)
            }
            Event::DataEnd { pdu: d, digest_ok } => {
                let req_ptr = core::mem::replace(&mut self.data.data_req, null_mut());
                self.data.phase.end();
                if req_ptr.is_null() {
                    return Err(errno::EINVAL);
                }
                // SAFETY: the data phase's request, still in flight.
                let req = unsafe { &mut *req_ptr };
                if !digest_ok {
                    dev_err!(q.dev(), "queue {}: data digest error, cid {:#x}\n", q.qid, d.command_id);
                    req.status = completion::STATUS_DATA_XFER_ERROR;
                }
                if d.success {
                    let status = q.completion_status(req, d.command_id, 0);
                    req.end(status, 0);
                    return Ok(true);
                }
                Ok(false)
            }
            Event::R2T(r) => {
                let req = q.find_request("r2t", r.command_id)?;
                // Record it for the send side, then hand over: the send
                // side checks it against what it sent and builds the
                // H2CData PDUs (it alone touches the send fields).
                req.r2t.ttag.store(r.ttag, Ordering::Relaxed);
                req.r2t.offset.store(r.offset, Ordering::Relaxed);
                req.r2t.length.store(r.length, Ordering::Relaxed);
                match q.slot_event(req, SlotEvent::R2TArrived) {
                    Ok(SlotAction::QueueForSend) => q.queue_request(req, true),
                    Ok(_) => {}
                    Err(e) => return Err(-e),
                }
                Ok(false)
            }
        }
    }

    fn pass_budget(&self) -> usize {
        match self.data.source {
            // A target can keep the socket full: yield after the budget.
            RecvSource::Socket => recv::PASS_BUDGET,
            // One skb read_sock() holds: its length bounds the pass.
            RecvSource::Skb(_) => usize::MAX,
        }
    }
}

impl RecvCtx<'_> {
    /// The data phase's request (set by `DataBegin`).
    fn data_req(&mut self) -> Result<&mut TcpRequest, i32> {
        if self.data.data_req.is_null() {
            return Err(errno::EINVAL);
        }
        // SAFETY: set by DataBegin to an in-flight read of this queue,
        // whose receive fields are the receive side's.
        Ok(unsafe { &mut *self.data.data_req })
    }
}

impl TlsQueueIo for RecvCtx<'_> {
    fn recv_buf_tls(&mut self, buf: &mut [u8]) -> Result<Got, i32> {
        QueueStats::add(&self.queue.stats.recvmsg_calls, 1);
        self.queue.sock().map_err(|e| -e)?.recv_record(buf, kb::MSG_DONTWAIT as c_int).map_err(|e| -e)
    }

    fn recv_data_tls(&mut self, len: usize) -> Result<Got, i32> {
        let q = self.queue;
        let sock = q.sock().map_err(|e| -e)?;
        let d = &mut *self.data;
        if d.data_req.is_null() {
            return Err(errno::EINVAL);
        }
        // SAFETY: as in `data_req`.
        let req = unsafe { &mut *d.data_req };
        if d.phase.ensure_room(&mut req.data).is_err() {
            let cid = req.rq().cid();
            dev_err!(q.dev(), "queue {}: no space in request {:#x}\n", q.qid, cid);
            return Err(errno::EIO);
        }
        QueueStats::add(&q.stats.recvmsg_calls, 1);
        let (got, mark) = d.phase.recv_tls(&mut req.data, sock, len).map_err(|e| -e)?;
        d.tls_mark = Some(mark);
        Ok(got)
    }

    fn commit_data(&mut self, n: usize, crc: Option<&mut u32>) {
        let Some(mark) = self.data.tls_mark.take() else { return };
        let Ok(req) = self.data_req() else { return };
        let req: *mut TcpRequest = req;
        // SAFETY: the data phase's request (above), a different object
        // from `self.data`.
        let req = unsafe { &mut *req };
        let n2 = self.data.phase.commit_tls(&mut req.data, mark, crc);
        debug_assert_eq!(n, n2);
        req.data_recvd += n2 as u32;
    }

    fn rewind_data(&mut self, _n: usize, sink: &mut dyn FnMut(&[u8])) {
        if let Some(mark) = self.data.tls_mark.take() {
            self.data.phase.rewind_tls(mark, sink);
        }
    }

    fn record_consumed(&mut self, record: &ControlRecord) {
        QueueStats::add(&self.queue.stats.tls_tickets, u64::from(record.tickets));
    }
}

/// The io_work item (C: `nvme_tcp_io_work`): send, then one receive pass,
/// until neither makes progress or the 1 ms budget is used; then requeue.
///
/// # Safety
///
/// Called by the workqueue with the `io_work` of a live queue.
unsafe extern "C" fn io_work_fn(work: *mut kb::work_struct) {
    let off = core::mem::offset_of!(Queue, io_work);
    // SAFETY: `work` is the `io_work` of a live queue (type invariant;
    // `Work` starts with its `work_struct`).
    let q = unsafe { &*work.cast::<u8>().sub(off).cast::<Queue>() };
    // SAFETY: this is io_work, which never runs twice at once.
    let s = unsafe { q.send_side() };
    // SAFETY: plain reads of a kernel clock.
    let deadline = unsafe { kb::ktime_get() } + IO_WORK_BUDGET_NS;
    loop {
        let mut pending = false;
        match q.try_send(s) {
            Ok(p) => pending |= p,
            Err(e) if e == -(errno::EAGAIN) => {}
            Err(e) => {
                dev_err!(q.dev(), "queue {}: failed to send request: {}\n", q.qid, e);
                q.ctrl().error_recovery();
                return;
            }
        }
        if q.sk_ctx.rd_enabled() {
            match q.try_recv_pass() {
                Some(Ok(end)) => {
                    QueueStats::add(&q.stats.work_passes, 1);
                    QueueStats::add(&q.stats.work_completions, u64::from(end.completions));
                    pending |= end.completions > 0 || !end.drained
                }
                Some(Err(e)) => {
                    q.recv_failed(e);
                    return;
                }
                // Another context is receiving: look again shortly.
                None => pending = true,
            }
        }
        if !s.cur.is_null() || !s.head.is_null() {
            // Requests wait: go on if the socket has room again.
            if let Ok(sock) = q.sock() {
                pending |= SockCallbacks::writeable(sock);
            }
        }
        if !pending {
            return;
        }
        // SAFETY: plain read of a kernel clock.
        if unsafe { kb::ktime_get() } > deadline {
            break;
        }
    }
    q.kick();
}

/// `read_sock()`'s actor for [`Queue::push_pass`]: runs the receive machine
/// over `len` bytes of `skb` from `off` and returns how many it used (all
/// of them unless the queue failed; the failure is in `push_result`).
///
/// # Safety
///
/// Called by `read_sock()` inside [`Queue::push_pass`] with its `PushCtx`
/// and an skb it holds, with `len` bytes from `off`.
unsafe extern "C" fn push_actor(ctx: *mut c_void, skb: *mut kb::sk_buff, off: c_uint, len: usize) -> c_int {
    // SAFETY: `ctx` is the `PushCtx` of the `push_pass` running `read_sock`,
    // which holds the queue's receive side.
    let ctx = unsafe { &mut *ctx.cast::<PushCtx<'_>>() };
    let d = &mut ctx.side.data;
    if d.push_result.is_err() {
        return -(errno::EPROTO);
    }
    // SAFETY: read_sock() holds `skb`, which has `len` bytes from `off`,
    // until we return; the range is dropped (source reset) before that.
    let range = unsafe { SkbRange::new(skb, off, len) };
    let len = range.left();
    d.source = RecvSource::Skb(range);
    let r = run_pass(ctx.queue, ctx.side);
    let d = &mut ctx.side.data;
    let left = match d.source {
        RecvSource::Skb(range) => range.left(),
        RecvSource::Socket => 0,
    };
    d.source = RecvSource::Socket;
    match r {
        Ok(end) => {
            if let Ok(n) = &mut d.push_result {
                *n += end.completions;
            }
        }
        Err(e) => d.push_result = Err(e),
    }
    // left <= len <= c_int::MAX
    (len - left) as c_int
}

/// `sk_state_change` on a closing socket (softirq): start error recovery,
/// or, while the queue is still connecting, let io_work see the error now
/// (its receive fails and the set-up command is failed at once).
///
/// # Safety
///
/// Called by the socket's state_change callback with the queue `start_io`
/// installed, before `stop` restores the callbacks.
unsafe extern "C" fn sk_error_fn(queue: *mut c_void) {
    // SAFETY: `queue` is the queue `start_io` installed, valid until `stop`
    // restores the callbacks under sk_callback_lock.
    let q = unsafe { &*queue.cast::<Queue>() };
    if q.live.load(Ordering::Relaxed) {
        q.ctrl().error_recovery();
    } else {
        q.kick();
    }
}
