// SPDX-License-Identifier: GPL-2.0
//! The blk-mq operations of a controller's admin and I/O tag sets (C:
//! `nvme_tcp_mq_ops`, `nvme_tcp_admin_mq_ops`): building the command
//! capsule in queue_rq, timeouts, queue maps.

use super::TcpCtrl;
use crate::proto::pdu::{self, DataPlacement};
use crate::queue::{Queue, Rq};
use crate::request::{Kind, SendState, TcpRequest};
use crate::sys::bindings as nb;
use crate::sys::blk_mq::{HwCtx, MqOperations, SetBeingMapped, BLK_STS_IOERR};
use crate::sys::nvme;
use core::sync::atomic::Ordering;
use kernel::{bindings as kb, prelude::*};

/// The blk-mq operations of the admin queue (`IO = false`: tag set of one
/// hardware queue, queue 0) or of the I/O queues (`IO = true`: hardware
/// queue `i` is queue `i + 1`, with read and poll maps).
pub(crate) struct QueueOps<const IO: bool>;
/// The admin queue's blk-mq operations.
pub(crate) type AdminQueueOps = QueueOps<false>;
/// The I/O queues' blk-mq operations.
pub(crate) type IoQueueOps = QueueOps<true>;

impl<const IO: bool> QueueOps<IO> {
    /// The queue behind hardware queue `hctx_idx` of this tag set.
    fn queue_of(c: &TcpCtrl, hctx_idx: u32) -> Result<&Queue> {
        let qid = if IO { hctx_idx as usize + 1 } else { 0 };
        c.queues.get(qid).map(|q| &**q).ok_or(EINVAL)
    }
}

/// Queues a request (C: `nvme_tcp_queue_rq`): builds its command capsule
/// and hands it to io_work.
fn queue_rq(q: &Queue, hctx: &HwCtx, rq: Rq, last: bool) -> kb::blk_status_t {
    let live = q.live.load(Ordering::Acquire);
    let c = q.ctrl();
    if !c.core().check_ready(&rq, live) {
        return c.core().fail_nonready_command(rq);
    }
    if let Err(st) = rq.setup_cmd(hctx) {
        return st;
    }
    let (len, write) = (rq.payload_bytes(), rq.is_write());
    let icdoff = u32::from(c.core().icdoff());
    let req = rq.data();
    // SAFETY: queue_rq before the request is started: blk-mq gave it to us,
    // no lookup hands it out until `start` arms it, and the send side let
    // go of it before its last completion.
    let f = unsafe { req.fresh() };
    f.submit.data_len = len;
    f.submit.write = write;
    f.submit.inline_len = if write && len > 0 && len <= q.inline_max() { len } else { 0 };
    f.send.data_sent = 0;
    f.send.r2t_left = 0;
    f.send.h2c_left = 0;
    f.send.state = SendState::Cmd { off: 0 };
    f.recv.data_recvd = 0;
    f.recv.status = 0;
    f.recv.completed = false;
    req.reset_slot();
    // The request's pages, on the side that moves them.
    // SAFETY: the request is started below and stays in flight until it
    // completes; the next queue_rq of this PDU starts the data over.
    unsafe {
        if write {
            f.send.data.start(rq.as_raw(), true, len);
            f.recv.data.clear();
        } else {
            f.recv.data.start(rq.as_raw(), false, len);
            f.send.data.clear();
        }
    }
    let place = if len == 0 {
        DataPlacement::None
    } else if f.submit.inline_len > 0 {
        DataPlacement::InCapsule { len, icdoff }
    } else {
        DataPlacement::Transport { len }
    };
    let Some(sqe) = f.submit.sqe() else {
        rq.cleanup_cmd();
        return BLK_STS_IOERR;
    };
    pdu::set_sgl(sqe, place);
    f.submit.seal_cmd(q.digests());
    rq.start();
    q.queue_request(req, last);
    kb::BLK_STS_OK as kb::blk_status_t
}

/// A request timed out (C: `nvme_tcp_timeout`).
fn timeout(rq: Rq) -> kb::blk_eh_timer_return {
    let req = rq.data();
    let q = req.queue();
    let c = q.ctrl();
    let opcode = req.submit().opcode();
    dev_warn!(c.device(), "queue {}: request timeout, opcode {:#x}, state {}\n", q.qid, opcode, c.core().state());
    if c.core().state() != nb::nvme_ctrl_state_NVME_CTRL_LIVE {
        // Not live (connecting, deleting): fail the request now so set-up
        // or teardown can go on.
        let queue_was_live = q.live.load(Ordering::Acquire);
        q.stop();
        if queue_was_live {
            rq.complete_timed_out();
        } else {
            // A Fabrics Connect or DH-HMAC-CHAP command of a queue still
            // connecting (only those pass check_ready there). The queue
            // is stopped now, io_work disabled: a retry (nvme-core retries
            // AUTH_Send/AUTH_Receive, NVME_SUBMIT_RETRY) would wait out
            // another timeout there, five times (5 minutes for a key the
            // target refused and then closed the connection on). C stops
            // nothing for a queue not live (nvme_tcp_stop_queue_nowait),
            // so its retries fail on the dead socket at once.
            rq.complete_timed_out_no_retry();
        }
        return kb::blk_eh_timer_return_BLK_EH_DONE;
    }
    c.error_recovery();
    kb::blk_eh_timer_return_BLK_EH_RESET_TIMER
}

impl<const IO: bool> MqOperations for QueueOps<IO> {
    type Owner = TcpCtrl;
    type HwQueue = Queue;
    type RequestData = TcpRequest;
    const POLL: bool = IO;
    const MAP_QUEUES: bool = IO;

    fn init_request(c: &TcpCtrl, hctx_idx: u32) -> Result<TcpRequest> {
        let q: *const Queue = Self::queue_of(c, hctx_idx)?;
        Ok(TcpRequest::new(q, c.ctrl.get(), Kind::Blk))
    }
    fn request_placed(req: &mut TcpRequest) {
        req.bind_sqe();
    }
    fn init_hctx(c: &TcpCtrl, hctx_idx: u32) -> Result<&Queue> {
        Self::queue_of(c, hctx_idx)
    }
    fn queue_rq(q: &Queue, hctx: &HwCtx, rq: Rq, last: bool) -> kb::blk_status_t {
        queue_rq(q, hctx, rq, last)
    }
    fn commit_rqs(q: &Queue) {
        q.commit();
    }
    fn poll(q: &Queue) -> c_int {
        q.poll()
    }
    fn complete(rq: Rq) {
        rq.nvme_complete();
    }
    fn timeout(rq: Rq) -> kb::blk_eh_timer_return {
        timeout(rq)
    }
    fn map_queues(c: &TcpCtrl, set: SetBeingMapped) {
        nvme::nvmf_map_queues(set, c.core(), &c.io_queues.get());
    }
}

