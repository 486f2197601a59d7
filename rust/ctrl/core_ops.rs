// SPDX-License-Identifier: GPL-2.0
//! The nvme-core callbacks of a controller (`nvme_ctrl_ops`, C: the
//! `nvme_tcp_*` functions of `nvme_tcp_ctrl_ops`) and the AER completion.

use super::transport::{CTRLS, LIVE_CTRLS};
use super::TcpCtrl;
use crate::proto::pdu::{self, DataPlacement};
use crate::request::SendState;
use crate::sys::bindings as nb;
use crate::sys::nvme::CtrlOperations;
use core::sync::atomic::Ordering;
use kernel::{bindings as kb, prelude::*};

// SAFETY: `TcpCtrl` is `repr(C)` with its `nvme_ctrl` first; `create`
// allocates it with `KBox` and hands it to nvme-core with nvme_init_ctrl().
unsafe impl CtrlOperations for TcpCtrl {
    const NAME: &'static CStr = c"tcp";

    fn free_ctrl(c: KBox<Self>) {
        if c.created.load(Ordering::Acquire) {
            CTRLS.lock().retain(|p| *p != c.core().as_raw() as usize);
            // SAFETY: after a successful create the options are ours to
            // free, and nothing reads them after free_ctrl.
            unsafe { c.core().opts().free() };
        }
        drop(c);
        // Last: module exit may go on once this reaches zero.
        LIVE_CTRLS.fetch_sub(1, Ordering::AcqRel);
    }

    /// One AER at a time (nvme-core's async event work).
    fn submit_async_event(c: &Self) {
        let q = &c.queues[0];
        let req = &c.async_req;
        // nvme-core submits one AER at a time, after the previous one
        // completed; a completion is delivered only once the send side let
        // go of the AER (its slot holds an early one), and a teardown resets
        // the send side (as the C driver reuses `ctrl->async_req`).
        // SAFETY: so nobody else uses the AER's cells now.
        let f = unsafe { req.fresh() };
        f.submit.cmd.0 = [0; pdu::CMD_PDU_LEN + pdu::DIGEST_LEN];
        f.submit.inline_len = 0;
        f.submit.data_len = 0;
        f.submit.write = false;
        let Some(sqe) = f.submit.sqe() else { return };
        sqe[0] = nb::nvme_admin_opcode_nvme_admin_async_event as u8;
        sqe[2..4].copy_from_slice(&(nb::NVME_AQ_BLK_MQ_DEPTH as u16).to_le_bytes());
        pdu::set_sgl(sqe, DataPlacement::None);
        f.submit.seal_cmd(q.digests());
        f.send.r2t_left = 0;
        f.send.data_sent = 0;
        f.send.data.clear();
        f.send.state = SendState::Cmd { off: 0 };
        f.recv.data.clear();
        f.recv.data_recvd = 0;
        f.recv.status = 0;
        f.recv.completed = false;
        req.reset_slot();
        c.aer_outstanding.store(true, Ordering::Release);
        q.queue_request(req, true);
    }

    fn delete_ctrl(c: &Self) {
        c.err_work.flush();
        c.teardown(true);
    }

    fn source_address(c: &Self) -> Option<kb::__kernel_sockaddr_storage> {
        c.queues.first()?.local_addr()
    }

    fn stop_ctrl(c: &Self) {
        c.err_work.flush();
        c.connect_work.cancel_sync();
    }
}

/// Hands the AER's completion to nvme-core, once: false when no AER is
/// outstanding.
pub(crate) fn complete_async_event(c: &TcpCtrl, status: u16, result: u64) -> bool {
    if !c.aer_outstanding.swap(false, Ordering::AcqRel) {
        return false;
    }
    c.core().complete_async_event(status, result);
    true
}
