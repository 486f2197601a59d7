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
//! - a request's own fields are split the same way (`crate::request`);
//! - the set-up fields ([`QueueConf`]: socket, sizes) change only in
//!   `attach` and `detach`, under the queue's lock (C: `queue_lock`) and only
//!   while io_work is disabled, the callbacks are off and pollers are out;
//!   what queue_rq reads of them (digests, capsule size) is atomics.

mod recv;
mod send;

use crate::ctrl::TcpCtrl;
use crate::proto::errno;
use crate::proto::pdu::{self, Digests};
use crate::request::TcpRequest;
use crate::stats::QueueStats;
use crate::sys::bindings as nb;
use crate::sys::blk_mq::Request;
use crate::sys::llist::LList;
use crate::sys::socket::{SockCallbacks, TcpSocket};
use crate::sys::workqueue::{Work, WORK_CPU_UNBOUND};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use kernel::{bindings as kb, new_mutex, prelude::*, sync::Mutex};
use recv::RecvSide;
use send::SendSide;

/// A request handle of our tag sets (admin and I/O share the driver data).
pub(crate) type Rq = Request<TcpRequest>;

/// How many queues (of every controller) have their io_work on each CPU,
/// so new queues go to the least used one (C: `nvme_tcp_cpu_queues`).
static CPU_QUEUES: [AtomicU32; kb::NR_CPUS as usize] = [const { AtomicU32::new(0) }; kb::NR_CPUS as usize];

/// Time budget of one `io_work` run, as the C driver's 1 ms.
const IO_WORK_BUDGET_NS: i64 = 1_000_000;

/// Where a queue is in its set-up, under the queue's lock.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No socket.
    Free,
    /// Socket connected, io_work initialised; maybe started.
    Allocated,
    /// Stopped: callbacks off, socket shut down, io_work disabled, pollers
    /// out. Only `detach` follows.
    Stopped,
}

/// What a queue is set up with; changed only by [`Queue::attach`] and
/// [`Queue::detach`], under the queue's lock, in phases where nothing else
/// reads it.
pub(crate) struct QueueConf {
    sock: Option<TcpSocket>,
    maxh2cdata: u32,
    /// io_work receives with `read_sock()` (push) instead of
    /// `sock_recvmsg()` (module parameter `read_sock`, for the A/B).
    work_pushes: bool,
}

/// One queue of a controller.
///
/// # Invariants
///
/// Pinned in its own allocation, owned by its controller, so the raw
/// pointers to it (the socket callbacks', the requests' `queue`, the work
/// item) stay valid while the controller lives. `send` is touched only by
/// io_work, `recv` only under `recv_busy`; `conf` is written only under
/// `lock` in phase `Free` (nobody reads it: io_work is not initialised or
/// disabled, no callback is installed, pollers find the queue not live)
/// or `Stopped` (the same, after [`Queue::stop_nowait`]).
#[pin_data]
pub(crate) struct Queue {
    ctrl: *const TcpCtrl,
    pub(crate) qid: u16,
    /// C: `queue_lock`: attach, stop and detach one at a time (the timeout
    /// handler stops a queue while error recovery may tear it down).
    #[pin]
    lock: Mutex<Phase>,
    conf: UnsafeCell<QueueConf>,
    /// What ICResp negotiated (`Digests` as bits), for queue_rq and the AER.
    digests: AtomicU8,
    /// The command capsule size the controller accepts on this queue.
    capsule_len: AtomicU32,
    sk_ctx: SockCallbacks,
    io_work: Work,
    req_list: LList,
    send: UnsafeCell<SendSide>,
    recv: UnsafeCell<RecvSide>,
    pub(crate) live: AtomicBool,
    /// The socket's close was reported (once per connection).
    close_seen: AtomicBool,
    /// `sk_ctx.io_cpu` was picked by `set_io_cpu` and counts in `CPU_QUEUES`.
    io_cpu_set: AtomicBool,
    /// Held by whoever runs a receive pass: io_work or a blk-mq poller.
    recv_busy: AtomicBool,
    /// io_work found a poller holding `recv_busy` and left: the poller
    /// queues io_work when it lets go with bytes still queued.
    pub(super) recv_wanted: AtomicBool,
    /// Receive counters (debugfs `rnvme_tcp/queues`).
    pub(crate) stats: QueueStats,
}

// SAFETY: shared between blk-mq, io_work, pollers and the socket callbacks
// on any CPU: `send` only by io_work, `recv` only under `recv_busy`,
// `conf` only changed while nobody else uses it (type invariant); the rest
// is atomics, a mutex and `Sync` wrappers (work item, llist, callbacks).
unsafe impl Sync for Queue {}
// SAFETY: as above; nothing in it is bound to a thread.
unsafe impl Send for Queue {}

fn digests_bits(d: Digests) -> u8 {
    u8::from(d.header) | (u8::from(d.data) << 1)
}

impl Queue {
    /// A queue not yet connected.
    pub(crate) fn new(ctrl: *const TcpCtrl, qid: u16) -> impl PinInit<Self> {
        let no_digests = Digests { header: false, data: false };
        pin_init!(Self {
            ctrl,
            qid,
            lock <- new_mutex!(Phase::Free, "rnvme_tcp_queue_lock"),
            conf: UnsafeCell::new(QueueConf { sock: None, maxh2cdata: 0, work_pushes: false }),
            digests: AtomicU8::new(0),
            capsule_len: AtomicU32::new(0),
            sk_ctx: SockCallbacks::new(),
            io_work: Work::new(),
            req_list: LList::new(),
            send: UnsafeCell::new(SendSide::new()),
            recv: UnsafeCell::new(RecvSide::new(no_digests)),
            live: AtomicBool::new(false),
            close_seen: AtomicBool::new(false),
            io_cpu_set: AtomicBool::new(false),
            recv_busy: AtomicBool::new(false),
            recv_wanted: AtomicBool::new(false),
            stats: QueueStats::default(),
        })
    }

    pub(crate) fn ctrl(&self) -> &TcpCtrl {
        // SAFETY: the controller owns its queues and outlives them.
        unsafe { &*self.ctrl }
    }

    fn dev(&self) -> &kernel::device::Device {
        self.ctrl().device()
    }

    fn conf(&self) -> &QueueConf {
        // SAFETY: written only in phases where no reader runs (type
        // invariant); every caller is such a reader (io_work, a poller in a
        // pass on a live queue, stop/free under the lock).
        unsafe { &*self.conf.get() }
    }

    /// What ICResp negotiated on this connection.
    pub(crate) fn digests(&self) -> Digests {
        let b = self.digests.load(Ordering::Relaxed);
        Digests { header: b & 1 != 0, data: b & 2 != 0 }
    }

    /// The in-capsule data this queue accepts.
    pub(crate) fn inline_max(&self) -> u32 {
        self.capsule_len.load(Ordering::Relaxed).saturating_sub(pdu::SQE_LEN as u32)
    }

    /// Takes the connected socket and what ICResp negotiated (C:
    /// `nvme_tcp_alloc_queue`); the queue is not live yet. `capsule_len`:
    /// the command capsule size the controller accepts on this queue.
    /// Fails with `EBUSY` unless the queue is free.
    pub(crate) fn attach(&self, sock: TcpSocket, icresp: pdu::IcResp, capsule_len: u32, work_pushes: bool) -> Result {
        let recv = RecvSide::connected(icresp.digests)?;
        self.stats.tls_no_pad.store(u64::from(sock.rx_no_pad()), Ordering::Relaxed);
        let mut phase = self.lock.lock();
        if *phase != Phase::Free {
            return Err(EBUSY);
        }
        // SAFETY: phase `Free` under the lock: io_work is not initialised
        // or disabled, no callback is installed and pollers find the queue
        // not live, so nothing reads these cells (type invariant).
        unsafe {
            *self.conf.get() = QueueConf { sock: Some(sock), maxh2cdata: icresp.maxh2cdata, work_pushes };
            *self.send.get() = SendSide::new();
            *self.recv.get() = recv;
        }
        self.digests.store(digests_bits(icresp.digests), Ordering::Relaxed);
        self.capsule_len.store(capsule_len, Ordering::Relaxed);
        self.close_seen.store(false, Ordering::Relaxed);
        self.stats.set_digests(icresp.digests.header, icresp.digests.data);
        // Requests left from a failed connection were cancelled by
        // nvme-core: forget them.
        for _ in self.req_list.take_all() {}
        // SAFETY: `io_work` is not in use (not initialised, or disabled by
        // `stop`), and the queue never moves (type invariant).
        unsafe { self.io_work.init(io_work_fn, kernel::static_lock_class!()) };
        *phase = Phase::Allocated;
        Ok(())
    }

    /// Starts receiving: hooks the socket callbacks up to io_work.
    pub(crate) fn start_io(&self) {
        let me: *const Queue = self;
        let work = self.io_work.as_raw();
        let _phase = self.lock.lock();
        if *_phase != Phase::Allocated {
            return;
        }
        if let Some(s) = &self.conf().sock {
            self.sk_ctx.set_tls(s.tls());
            // `stop` restored any earlier install; `io_work` was initialised
            // in `attach`. SAFETY: so not installed now, and the queue neither
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

    /// Stops the queue (C: `nvme_tcp_stop_queue`): no more receives,
    /// callbacks restored, socket shut down, pollers out, io_work finished
    /// and disabled, then the sent data drained. Any context that may
    /// sleep (teardown, the timeout handler); several at once take turns
    /// on the queue's lock, and only the first stops.
    pub(crate) fn stop(&self) {
        self.stop_nowait();
        self.wait_sent();
    }

    /// [`Self::stop`] without waiting for the send queue (C:
    /// `nvme_tcp_stop_queue_nowait`), so several queues can drain at once.
    ///
    /// The order matters: a poller handling an R2T queues io_work, so
    /// io_work is disabled only once no poller can be in a pass (C, whose
    /// pollers only receive, cancels io_work right after the shutdown).
    /// Disabled, not cancelled: a late kick (`queue_rq`, `commit_rqs`, an
    /// AER) queues nothing until `attach` initialises the work again.
    pub(crate) fn stop_nowait(&self) {
        let mut phase = self.lock.lock();
        if *phase != Phase::Allocated {
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
        *phase = Phase::Stopped;
    }

    /// Waits, 100 ms at most, until the stopped queue's socket holds no
    /// sent data (C: `nvme_tcp_wait_queue`): request pages go out by
    /// reference (`MSG_SPLICE_PAGES`), and once the requests are failed
    /// over their buffers may be reused while skbs still point at them.
    pub(crate) fn wait_sent(&self) {
        let phase = self.lock.lock();
        if *phase != Phase::Stopped {
            return;
        }
        let Some(sock) = self.conf().sock.as_ref() else { return };
        for _ in 0..50 {
            if !sock.send_queued() {
                return;
            }
            // SAFETY: plain sleep in process context (as `stop`).
            unsafe { kb::msleep(2) };
        }
        dev_warn!(self.dev(), "qid {}: timeout draining sock wmem allocation expired\n", self.qid);
    }

    /// Releases the socket of a stopped (or never started) queue (C:
    /// `nvme_tcp_free_queue`).
    pub(crate) fn detach(&self) {
        let mut phase = self.lock.lock();
        match *phase {
            Phase::Free => return,
            Phase::Allocated => {
                // Never stopped (a set-up step failed before starting it):
                // stop it first, as every path to free does.
                drop(phase);
                self.stop_nowait();
                phase = self.lock.lock();
                if *phase != Phase::Stopped {
                    return;
                }
            }
            Phase::Stopped => {}
        }
        // SAFETY: phase `Stopped` under the lock: nobody reads `conf`
        // (type invariant).
        unsafe { (*self.conf.get()).sock = None };
        *phase = Phase::Free;
    }

    /// The socket's local address while the queue is live (C:
    /// `kernel_getsockname()` under `queue_lock` in `nvme_tcp_get_address`).
    pub(crate) fn local_addr(&self) -> Option<kb::__kernel_sockaddr_storage> {
        let phase = self.lock.lock();
        if *phase != Phase::Allocated || !self.live.load(Ordering::Acquire) {
            return None;
        }
        let sock = self.conf().sock.as_ref()?;
        // SAFETY: all-zero is a valid (empty) sockaddr_storage.
        let mut ss: kb::__kernel_sockaddr_storage = unsafe { core::mem::zeroed() };
        // SAFETY: an allocated queue's socket, kept by the lock held; `ss`
        // is big enough for any address.
        let r = unsafe { kb::kernel_getsockname(sock.as_raw(), core::ptr::from_mut(&mut ss).cast()) };
        (r > 0).then_some(ss)
    }

    /// Hands a request to io_work (from queue_rq, the AER, or an R2T).
    /// io_work is kicked for the `last` request of a batch only; blk-mq
    /// calls `commit_rqs` (which kicks it) when a batch ends without one.
    pub(crate) fn queue_request(&self, req: &TcpRequest, last: bool) {
        // SAFETY: the request is in flight and on no list (a new command,
        // or one the send side is done with: R2T slot `Waiting`), and stays
        // valid until it completes, after io_work took it off.
        unsafe { self.req_list.add(req.lentry()) };
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

    /// The queue runs over kTLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.conf().sock.as_ref().is_some_and(TcpSocket::tls)
    }

    fn sock(&self) -> Result<&TcpSocket, c_int> {
        self.conf().sock.as_ref().ok_or(-(errno::ENOTCONN))
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
            match q.try_recv_pass().or_else(|| q.defer_recv()) {
                Some(Ok(end)) => {
                    QueueStats::add(&q.stats.work_passes, 1);
                    QueueStats::add(&q.stats.work_completions, u64::from(end.completions));
                    // A drained pass ends io_work unless C's rule (go on
                    // after progress) is asked for: data_ready queues it
                    // for whatever arrives next, queue_rq for new requests.
                    let again = end.completions > 0 && crate::module_parameters::pass_after_completions.value();
                    pending |= again || !end.drained
                }
                Some(Err(e)) => {
                    q.recv_failed(e);
                    return;
                }
                // A poller is receiving and queues io_work when it lets
                // go: spinning here until it does would only take the CPU
                // from it (C: data_ready leaves a polling queue alone).
                None => QueueStats::add(&q.stats.work_recv_deferred, 1),
            }
        }
        if s.busy() {
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
        // The callbacks are restored before we shut the socket down
        // ourselves, so this close is the target's (FIN or RST).
        if !q.close_seen.swap(true, Ordering::Relaxed) {
            dev_err!(q.dev(), "queue {}: socket closed by the target\n", q.qid);
        }
        q.ctrl().error_recovery();
    } else {
        q.kick();
    }
}
