// SPDX-License-Identifier: GPL-2.0
//! A queue's receive side: the receive machine over `sock_recvmsg()` (pull,
//! io_work) or `read_sock()` (push: pollers and `read_sock=1`), command-id
//! lookups, completions, and what the machine asks of the queue
//! ([`QueueIo`], [`TlsQueueIo`]).

use super::{Queue, Rq};
use crate::proto::batch::{self, StageIo, Staging};
use crate::proto::completion::{self, Completion};
use crate::proto::errno;
use crate::proto::pdu::{self, Digests, ProtoError};
use crate::proto::r2t::{SlotAction, SlotEvent};
use crate::proto::recv::{self, Event, QueueIo, RecvError, RecvMachine};
use crate::proto::tls::{self as tlsproto, ControlRecord, Got, TlsPushIo, TlsQueueIo, TlsRx};
use crate::request::{RecvFields, TcpRequest};
use crate::stats::QueueStats;
use crate::sys::bindings as nb;
use crate::sys::blk_mq::Lookup;
use crate::sys::fmt::Shown;
use crate::sys::iov::{DataPhase, KernelCrc32c, PhaseMark, SkbRange};
use core::sync::atomic::{fence, Ordering};
use kernel::{bindings as kb, prelude::*};

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

/// The receive state other than the machine: the current data phase and
/// where the bytes come from.
struct RecvData {
    /// The request of the current C2HData phase, found by its command id.
    data_req: Option<Rq>,
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
pub(super) struct RecvSide {
    machine: RecvMachine,
    data: RecvData,
    /// TLS: a record that is not data being read, and its buffer.
    tls: TlsRx,
    /// Batched header receive: the staging buffer a pull pass fills at a
    /// header boundary (`proto::batch`); empty when `recv_batch=0`.
    stage: Staging<KVec<u8>>,
}

/// The largest staging buffer `recv_batch` may ask for.
const RECV_BATCH_MAX: usize = 65536;

impl RecvSide {
    /// The receive side of a new connection, with a staging buffer of
    /// `recv_batch` bytes (none when it is 0).
    pub(super) fn connected(digests: Digests) -> Result<Self> {
        let size = (crate::module_parameters::recv_batch.value() as usize).min(RECV_BATCH_MAX);
        let buf = KVec::from_elem(0u8, size, GFP_KERNEL)?;
        let tail = crate::module_parameters::recv_tail.value() as usize;
        Ok(Self { stage: Staging::with_tail(buf, tail), ..Self::new(digests) })
    }

    pub(super) fn new(digests: Digests) -> Self {
        Self {
            stage: Staging::new(KVec::new()),
            machine: RecvMachine::new(digests),
            data: RecvData {
                data_req: None,
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

impl Queue {
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

    /// The in-flight request a command id of a `what` PDU names on this
    /// queue; any other id is a protocol error, logged with the queue and
    /// the id (`Err` is the positive errno that stops the queue).
    fn find_request(&self, what: &str, cid: u16) -> Result<Rq, i32> {
        match self.ctrl().find_request(self.qid, cid) {
            Ok(rq) => Ok(rq),
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
    /// transfer error. `recv_status`/`recvd`: the receive side's record.
    fn completion_status(&self, req: &TcpRequest, cid: u16, target_status: u16, recv_status: u16, recvd: u32) -> u16 {
        let c = completion::complete(recv_status, target_status, req.submit().to_host(), recvd);
        if let Completion::ShortRead { got, want } = c {
            dev_err!(self.dev(), "queue {}: cid {:#x} short data-in: got {} of {}\n", self.qid, cid, got, want);
        }
        c.status()
    }

    /// The receive side got the completion of `req` (a Response, or C2HData
    /// with SUCCESS): `Some(status)` when the caller ends the command now,
    /// with that status; `None` when the send side still owns the request
    /// and the completion is held for it, to deliver when it lets go
    /// ([`crate::proto::r2t`]). Never under the send side: its pages would
    /// go back to their owner, and the request to a new command, while it
    /// still sends from them. A write whose data was not all asked for yet
    /// gets [`completion::early_write`]'s status: never acknowledged
    /// without its data.
    fn complete_or_hold(&self, req: &TcpRequest, status: u16, result: u64) -> Result<Option<u16>, i32> {
        // Before the slot moves: once it does, the send side may end the
        // request and queue_rq start it over.
        // SAFETY: every caller is the receive side with a request from a
        // command-id lookup (or the outstanding AER), and holds no other
        // borrow of its receive fields.
        unsafe { req.recv_fields() }.completed = true;
        req.held.status.store(status, Ordering::Relaxed);
        req.held.result.store(result, Ordering::Relaxed);
        // Held is not always the target's fault: on a poll queue the
        // Response can be received between the send side's last sendmsg()
        // and its note that it is done. The send side says which it was.
        let action = self.slot_event(req, SlotEvent::ResponseArrived).map_err(|e| -e)?;
        Ok(match action {
            SlotAction::Hold => None,
            SlotAction::CompleteEarly => {
                let early = completion::early_write(status);
                // An error status stands (a target may fail a write before
                // asking for its data); only a success is the target's fault.
                if early != status {
                    dev_warn!(
                        self.dev(),
                        "queue {}: success for command id {:#x} before all its data was asked for: status {:#x}\n",
                        self.qid,
                        req.submit().command_id(),
                        early
                    );
                }
                Some(early)
            }
            _ => Some(status),
        })
    }

    /// [`Self::complete_or_hold`] for a blk-mq request found by its id.
    fn respond(&self, rq: Rq, status: u16, result: u64) -> Result<(), i32> {
        if let Some(status) = self.complete_or_hold(rq.data(), status, result)? {
            rq.end(status, result);
        }
        Ok(())
    }

    /// One receive pass from io_work, if no poller is in one: io_work and
    /// pollers take turns here, as lock_sock() makes them do in C. `None`
    /// when a poller holds it.
    /// io_work found the receive side held (by a poller): says so, then
    /// tries once more, since the poller may have let go before it could
    /// see `recv_wanted` (the fence pairs with `PollGuard`'s).
    pub(super) fn defer_recv(&self) -> Option<Result<recv::PassEnd, RecvError>> {
        self.recv_wanted.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let r = self.try_recv_pass()?;
        self.recv_wanted.store(false, Ordering::Relaxed);
        Some(r)
    }

    pub(super) fn try_recv_pass(&self) -> Option<Result<recv::PassEnd, RecvError>> {
        let g = self.try_recv()?;
        Some(if self.conf().work_pushes {
            if self.is_tls() {
                return Some(self.push_pass_tls(g));
            }
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
        let RecvSide { machine, data, .. } = &mut *g.side;
        // read_sock's byte count is not needed: the machine keeps its own
        // place. -EBUSY (a task owns the socket: pollers only) means that
        // task receives.
        let (r, done) = self.read_sock_once(machine, data, may_sleep);
        let done = done?;
        // From io_work, a drained socket's FIN or error ends the connection
        // as recvmsg's 0 or -errno would; pollers leave that to io_work.
        match r {
            _ if !may_sleep || r >= 0 => Ok(done),
            r if r == -(errno::ESHUTDOWN) => Err(RecvError::Proto(ProtoError::ConnectionClosed)),
            r => Err(RecvError::Socket(-r)),
        }
    }

    /// One `read_sock()` call over the machine: returns its value, and the
    /// machine's completions or why it stopped the queue. No socket: `0`.
    fn read_sock_once(&self, machine: &mut RecvMachine, data: &mut RecvData, may_sleep: bool) -> (c_int, Result<u32, RecvError>) {
        let Ok(sock) = self.sock() else {
            return (0, Ok(0));
        };
        data.push_result = Ok(0);
        let mut ctx = PushCtx { queue: self, machine, data };
        let ctx_ptr: *mut PushCtx<'_> = &mut ctx;
        QueueStats::add(&self.stats.read_sock_calls, 1);
        // SAFETY: `ctx_ptr` points to `ctx`, alive for the call;
        // `push_actor` only runs inside it, with this type of context.
        let r = unsafe { sock.read_sock(may_sleep, ctx_ptr.cast(), push_actor) };
        if let Ok(n) = usize::try_from(r) {
            QueueStats::add(&self.stats.recv_bytes, n as u64);
        }
        (r, core::mem::replace(&mut ctx.data.push_result, Ok(0)))
    }

    /// io_work's pass on a TLS queue with `read_sock=1`
    /// ([`tlsproto::push_pass_tls`]): `read_sock()` pushes data records;
    /// one it refuses (`-EINVAL`: not data, left queued) is handed to the
    /// recvmsg receive with the control message, then `read_sock()` goes
    /// on. Only io_work: both sleep (lock_sock, kTLS's reader lock).
    fn push_pass_tls(&self, g: RecvGuard<'_>) -> Result<recv::PassEnd, RecvError> {
        let RecvSide { machine, data, tls, .. } = &mut *g.side;
        tlsproto::push_pass_tls(machine, tls, &mut RecvCtx { queue: self, data })
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
        let Some(g) = self.try_recv() else {
            return 0;
        };
        let r = self.poll_held(g);
        self.hand_back_recv();
        r
    }

    /// A poller let go of the receive side: if io_work wanted in meanwhile
    /// (`defer_recv`), queue it, for bytes that arrived after the poller's
    /// read_sock() took the last skb while data_ready left them to the
    /// poller. Only the queue's own fields are touched: once `recv_busy` is
    /// clear, `stop` may be taking the socket away.
    fn hand_back_recv(&self) {
        // Pairs with the fence in `defer_recv`: either io_work's second
        // try found `recv_busy` clear, or this sees `recv_wanted` set.
        fence(Ordering::SeqCst);
        if self.recv_wanted.load(Ordering::Relaxed) && self.recv_wanted.swap(false, Ordering::Relaxed) {
            QueueStats::add(&self.stats.poll_kicks, 1);
            self.kick();
        }
    }

    /// `poll` with the receive side held by `g`, released on return.
    fn poll_held(&self, g: RecvGuard<'_>) -> c_int {
        // `stop` clears `live` before waiting for `recv_busy`: a live
        // queue here keeps its socket (and `conf`) until we let go.
        if !self.live.load(Ordering::Acquire) || !self.sk_ctx.rd_enabled() {
            return 0;
        }
        // TLS queues: io_work receives (see `crate::tls`): kTLS's
        // read_sock() takes its reader lock, which may sleep.
        if self.is_tls() {
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
    /// left as it is: nothing reads it again before `attach` starts it over.
    pub(super) fn recv_failed(&self, e: RecvError) {
        dev_err!(self.dev(), "queue {}: receive failed: {} (-{})\n", self.qid, Shown(e), e.errno());
        self.sk_ctx.set_rd_enabled(false);
        self.live.store(false, Ordering::SeqCst);
        self.ctrl().error_recovery();
        self.ctrl().expire_setup_requests(self.qid);
    }
}

/// A pull pass with batched header receive (`proto::batch`), when the
/// queue has a staging buffer and the pass pulls with recvmsg; `None`
/// otherwise (pushes from `read_sock()` and `recv_batch=0` run unbatched).
/// The pass never ends with bytes staged, so a push that follows starts
/// where the machine is.
fn run_batched_pass(q: &Queue, side: &mut RecvSide) -> Option<Result<recv::PassEnd, RecvError>> {
    let RecvSide { machine, data, tls, stage } = side;
    if !stage.enabled() || !matches!(data.source, RecvSource::Socket) {
        return None;
    }
    let mut ctx = RecvCtx { queue: q, data };
    let r = if q.is_tls() {
        tlsproto::recv_pass_tls_batched(machine, tls, stage, &mut ctx)
    } else {
        batch::recv_pass_batched(machine, stage, &mut ctx)
    };
    let c = stage.take_counts();
    QueueStats::add(&q.stats.stage_fills, c.fills);
    QueueStats::add(&q.stats.stage_pdus, c.pdus);
    QueueStats::add(&q.stats.stage_payload, c.payload);
    Some(r)
}

/// Runs the receive machine of `q` over its current source.
fn run_pass(q: &Queue, side: &mut RecvSide) -> Result<recv::PassEnd, RecvError> {
    if let Some(r) = run_batched_pass(q, side) {
        return r;
    }
    let RecvSide { machine, data, tls, .. } = side;
    // TLS queues pull with recvmsg, so every record's type is seen (with
    // read_sock=1 io_work pushes data records and hands any other record
    // to this pass: `Queue::push_pass_tls`; pollers never push on them).
    if q.is_tls() && matches!(data.source, RecvSource::Socket) {
        return tlsproto::recv_pass_tls(machine, tls, &mut RecvCtx { queue: q, data });
    }
    recv::recv_pass(machine, &mut RecvCtx { queue: q, data })
}

/// A push pass's context, for [`push_actor`].
struct PushCtx<'a> {
    queue: &'a Queue,
    machine: &'a mut RecvMachine,
    data: &'a mut RecvData,
}

/// The queue as the receive machine sees it during a pass.
struct RecvCtx<'a> {
    queue: &'a Queue,
    data: &'a mut RecvData,
}

impl RecvData {
    /// The data phase's request and its receive fields.
    fn phase_fields(data_req: &mut Option<Rq>) -> Result<(&TcpRequest, &mut RecvFields), i32> {
        let rq = data_req.as_ref().ok_or(errno::EINVAL)?;
        let req = rq.data();
        // SAFETY: we hold the receive side (`RecvData` is only reached
        // through a `RecvGuard`), `rq` came from a command-id lookup, and
        // `&mut` on the data phase's handle makes this the only borrow.
        let f = unsafe { req.recv_fields() };
        Ok((req, f))
    }

    /// The data phase's request, its receive fields and the phase.
    fn phase_req(&mut self) -> Result<(&TcpRequest, &mut RecvFields, &mut DataPhase), i32> {
        let (req, f) = Self::phase_fields(&mut self.data_req)?;
        Ok((req, f, &mut self.phase))
    }
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
                let r = self.queue.sock()?.recv(buf, kb::MSG_DONTWAIT as c_int);
                self.queue.count_recv_bytes(&r);
                r
            }
            RecvSource::Skb(src) => src.copy_to(buf),
        };
        r.map_err(|e| -e)
    }

    fn recv_data(&mut self, len: usize, crc: Option<&mut u32>) -> Result<usize, i32> {
        let q = self.queue;
        let RecvData { data_req, phase, source, .. } = &mut *self.data;
        let (req, f) = RecvData::phase_fields(data_req)?;
        if phase.ensure_room(&mut f.data).is_err() {
            dev_err!(q.dev(), "queue {}: no space in request {:#x}\n", q.qid, req.submit().command_id());
            return Err(errno::EIO);
        }
        let r = match source {
            RecvSource::Socket => {
                let sock = q.sock().map_err(|e| -e)?;
                QueueStats::add(&q.stats.recvmsg_calls, 1);
                let r = phase.recv(&mut f.data, sock, len, crc);
                q.count_recv_bytes(&r);
                r
            }
            RecvSource::Skb(src) => phase.copy_from(&mut f.data, src, len, crc),
        };
        let n = r.map_err(|e| -e)?;
        f.data_recvd += n as u32;
        Ok(n)
    }

    fn event(&mut self, ev: Event) -> Result<bool, i32> {
        let q = self.queue;
        match ev {
            Event::Response(cqe) => {
                // The AER lives outside blk-mq, past the admin tag space;
                // only an outstanding one may complete.
                if q.qid == 0 && cqe.command_id == nb::NVME_AQ_BLK_MQ_DEPTH as u16 {
                    if let Some(aer) = q.ctrl().outstanding_aer() {
                        if let Some(status) = q.complete_or_hold(aer, cqe.status, cqe.result)? {
                            q.end_request(aer, status, cqe.result);
                        }
                        return Ok(true);
                    }
                }
                let rq = q.find_request("response", cqe.command_id)?;
                let req = rq.data();
                // SAFETY: we hold the receive side and `rq` came from a
                // lookup.
                let f = unsafe { req.recv_fields() };
                let status = q.completion_status(req, cqe.command_id, cqe.status, f.status, f.data_recvd);
                q.respond(rq, status, cqe.result)?;
                Ok(true)
            }
            Event::DataBegin(d) => {
                let rq = q.find_request("c2h data", d.command_id)?;
                let req = rq.data();
                // Only a read may receive data: a write's pages are the
                // data to send, never a destination.
                // SAFETY: we hold the receive side and `rq` came from a lookup.
                let f = unsafe { req.recv_fields() };
                if let Err(e) = pdu::check_c2h_data(&d, f.data_recvd, req.submit().to_host(), f.completed) {
                    dev_err!(q.dev(), "queue {}: {}\n", q.qid, Shown(e));
                    return Err(e.errno());
                }
                // The data phase's msghdr, set up once.
                self.data.phase.begin(&f.data).map_err(|e| -e)?;
                self.data.data_req = Some(rq);
                Ok(false)
            }
            Event::DataEnd { pdu: d, digest_ok } => {
                self.data.phase.end();
                let rq = self.data.data_req.take().ok_or(errno::EINVAL)?;
                let req = rq.data();
                let (recv_status, recvd) = {
                    // SAFETY: as in `DataBegin`: the data phase's request.
                    let f = unsafe { req.recv_fields() };
                    if !digest_ok {
                        dev_err!(q.dev(), "queue {}: data digest error, cid {:#x}\n", q.qid, d.command_id);
                        f.status = completion::STATUS_DATA_XFER_ERROR;
                    }
                    (f.status, f.data_recvd)
                };
                if d.success {
                    let status = q.completion_status(req, d.command_id, 0, recv_status, recvd);
                    q.respond(rq, status, 0)?;
                    return Ok(true);
                }
                Ok(false)
            }
            Event::R2T(r) => {
                let rq = q.find_request("r2t", r.command_id)?;
                let req = rq.data();
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

impl StageIo for RecvCtx<'_> {
    fn copy_data(&mut self, bytes: &[u8]) -> Result<(), i32> {
        let q = self.queue;
        let (req, f, phase) = self.data.phase_req()?;
        if phase.copy_in(&mut f.data, bytes).is_err() {
            dev_err!(q.dev(), "queue {}: no space in request {:#x}\n", q.qid, req.submit().command_id());
            return Err(errno::EIO);
        }
        f.data_recvd += bytes.len() as u32;
        Ok(())
    }

    fn short_fill_drains(&self) -> bool {
        // TCP: a short recvmsg found the receive queue and backlog empty,
        // and data_ready queues io_work for whatever comes next. kTLS
        // stops at a record-type change with more queued.
        !self.queue.is_tls()
    }

    fn recv_data_and_tail(&mut self, len: usize, crc: Option<&mut u32>, tail: &mut [u8]) -> Option<Result<(usize, usize), i32>> {
        let q = self.queue;
        // kTLS decrypts a record in place only into an iterator it may
        // fill whole, and its record types decide what the bytes are
        // (`recv_data_tls`): TLS queues receive payloads alone.
        if q.is_tls() || !matches!(self.data.source, RecvSource::Socket) {
            return None;
        }
        let sock = match q.sock() {
            Ok(s) => s,
            Err(e) => return Some(Err(-e)),
        };
        let (req, f, phase) = match self.data.phase_req() {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        if phase.ensure_room(&mut f.data).is_err() {
            dev_err!(q.dev(), "queue {}: no space in request {:#x}\n", q.qid, req.submit().command_id());
            return Some(Err(errno::EIO));
        }
        // `None` before any receive: the caller receives the payload alone.
        let r = phase.recv_with_tail(&mut f.data, sock, len, tail, crc)?;
        QueueStats::add(&q.stats.recvmsg_calls, 1);
        QueueStats::add(&q.stats.stage_tails, 1);
        let (p, t) = match r {
            Ok(pt) => pt,
            Err(e) => return Some(Err(-e)),
        };
        QueueStats::add(&q.stats.recv_bytes, (p + t) as u64);
        f.data_recvd += p as u32;
        Some(Ok((p, t)))
    }
}

impl Queue {
    /// Counts the bytes a socket receive call returned (`recv_bytes`).
    fn count_recv_bytes(&self, r: &core::result::Result<usize, c_int>) {
        if let Ok(n) = r {
            QueueStats::add(&self.stats.recv_bytes, *n as u64);
        }
    }
}

impl TlsQueueIo for RecvCtx<'_> {
    fn recv_buf_tls(&mut self, buf: &mut [u8]) -> Result<Got, i32> {
        QueueStats::add(&self.queue.stats.recvmsg_calls, 1);
        let r = self.queue.sock().map_err(|e| -e)?.recv_record(buf, kb::MSG_DONTWAIT as c_int);
        self.queue.count_recv_bytes(&r.map(|g| g.n));
        r.map_err(|e| -e)
    }

    fn recv_data_tls(&mut self, len: usize) -> Result<Got, i32> {
        let q = self.queue;
        let sock = q.sock().map_err(|e| -e)?;
        let (req, f, phase) = self.data.phase_req()?;
        if phase.ensure_room(&mut f.data).is_err() {
            dev_err!(q.dev(), "queue {}: no space in request {:#x}\n", q.qid, req.submit().command_id());
            return Err(errno::EIO);
        }
        QueueStats::add(&q.stats.recvmsg_calls, 1);
        let r = phase.recv_tls(&mut f.data, sock, len);
        q.count_recv_bytes(&r.as_ref().map(|(g, _)| g.n).map_err(|e| *e));
        let (got, mark) = r.map_err(|e| -e)?;
        self.data.tls_mark = Some(mark);
        Ok(got)
    }

    fn commit_data(&mut self, n: usize, crc: Option<&mut u32>) {
        let Some(mark) = self.data.tls_mark.take() else { return };
        let Ok((_, f, phase)) = self.data.phase_req() else { return };
        let n2 = phase.commit_tls(&mut f.data, mark, crc);
        debug_assert_eq!(n, n2);
        f.data_recvd += n2 as u32;
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

impl TlsPushIo for RecvCtx<'_> {
    fn read_sock(&mut self, m: &mut RecvMachine) -> (i32, Result<u32, RecvError>) {
        self.queue.read_sock_once(m, self.data, true)
    }

    fn handed_off(&mut self) {
        QueueStats::add(&self.queue.stats.tls_handoffs, 1);
    }
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
    let d = &mut *ctx.data;
    if d.push_result.is_err() {
        return -(errno::EPROTO);
    }
    // SAFETY: read_sock() holds `skb`, which has `len` bytes from `off`,
    // until we return; the range is dropped (source reset) before that.
    let range = unsafe { SkbRange::new(skb, off, len) };
    let len = range.left();
    d.source = RecvSource::Skb(range);
    // An skb: the plain machine (on a TLS queue, read_sock() pushes data
    // records only).
    let r = recv::recv_pass(ctx.machine, &mut RecvCtx { queue: ctx.queue, data: &mut *ctx.data });
    let d = &mut *ctx.data;
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
