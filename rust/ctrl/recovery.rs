// SPDX-License-Identifier: GPL-2.0
//! Error recovery, reconnect and reset (C: `nvme_tcp_error_recovery()`,
//! `nvme_tcp_error_recovery_work`, `nvme_tcp_reconnect_ctrl_work`,
//! `nvme_reset_ctrl_work`, `nvme_tcp_reconnect_or_remove`), each in C's
//! order. nvme-core's state machine runs at most one of them (or create,
//! or delete) at a time for a controller; the queues' own locks make a
//! timeout handler's stop safe beside them.

use super::TcpCtrl;
use crate::sys::bindings as nb;
use crate::sys::workqueue::{DelayedWork, WORK_CPU_UNBOUND};
use kernel::{bindings as kb, prelude::*};

impl TcpCtrl {
    /// Starts error recovery (any context): the controller goes to
    /// RESETTING and `err_work` tears it down and reconnects once.
    pub(crate) fn error_recovery(&self) {
        if !self.core().change_state(nb::nvme_ctrl_state_NVME_CTRL_RESETTING) {
            return;
        }
        dev_warn!(self.device(), "starting error recovery\n");
        self.err_work.queue_on(WORK_CPU_UNBOUND);
    }

    /// Queue `qid` failed while connecting, where error recovery does
    /// nothing (C relies on the set-up command's timeout, 60 s for admin
    /// commands): its started commands time out now, so the waiting
    /// set-up step fails at once. Only this queue's requests, and nothing
    /// is completed here: the timeout handler stops the queue and
    /// completes them, as after any timeout while not live.
    pub(crate) fn expire_setup_requests(&self, qid: u16) {
        if self.core().state() != nb::nvme_ctrl_state_NVME_CTRL_CONNECTING {
            return;
        }
        if qid == 0 {
            self.admin_tag_set.expire_requests(0);
        } else {
            self.tag_set.expire_requests(u32::from(qid) - 1);
        }
    }

    /// After a failed connection (C: `nvme_tcp_reconnect_or_remove`):
    /// another attempt in `reconnect_delay` seconds while `ctrl_loss_tmo`
    /// allows, else the controller is removed.
    fn reconnect_or_remove(&self, status: c_int) {
        let n = self.core();
        if self.core().state() != nb::nvme_ctrl_state_NVME_CTRL_CONNECTING {
            return;
        }
        let delay = n.opts().reconnect_delay();
        if n.should_reconnect(status) {
            dev_info!(self.device(), "Reconnecting in {} seconds...\n", delay);
            self.connect_work.queue_in(delay);
        } else {
            dev_info!(self.device(), "Removing controller ({})...\n", status);
            n.delete();
        }
    }
}

/// Error recovery (C: `nvme_tcp_error_recovery_work`).
///
/// # Safety
///
/// Called by the workqueue with the `err_work` of a live controller.
pub(super) unsafe extern "C" fn err_work_fn(w: *mut kb::work_struct) {
    let off = core::mem::offset_of!(TcpCtrl, err_work);
    // SAFETY: `w` is the `err_work` of a live controller.
    let c = unsafe { &*w.cast::<u8>().sub(off).cast::<TcpCtrl>() };
    let n = c.core();
    if crate::tls::key_revoke_needed(n) {
        n.revoke_tls_key();
    }
    n.stop_keep_alive();
    n.flush_async_event_work();
    c.teardown_io_queues(false);
    if n.has_io_tagset() {
        // Fail pending requests fast.
        n.unquiesce_io_queues();
    }
    c.teardown_admin_queue(false);
    n.unquiesce_admin_queue();
    n.auth_stop();
    if !n.change_state(nb::nvme_ctrl_state_NVME_CTRL_CONNECTING) {
        return;
    }
    c.reconnect_or_remove(0);
}

/// A delayed reconnect attempt (C: `nvme_tcp_reconnect_ctrl_work`).
///
/// # Safety
///
/// Called by the workqueue with the work of a live controller's
/// `connect_work`.
pub(super) unsafe extern "C" fn connect_work_fn(w: *mut kb::work_struct) {
    let off = core::mem::offset_of!(TcpCtrl, connect_work) + DelayedWork::WORK_OFFSET;
    // SAFETY: `w` is the work of `connect_work` of a live controller.
    let c = unsafe { &*w.cast::<u8>().sub(off).cast::<TcpCtrl>() };
    let n = c.core();
    n.set_nr_reconnects(n.nr_reconnects() + 1);
    let max = c.core().opts().max_reconnects();
    match c.setup(false) {
        Ok(()) => {
            dev_info!(c.device(), "Successfully reconnected (attempt {}/{})\n", n.nr_reconnects(), max);
            n.set_nr_reconnects(0);
        }
        Err(e) => {
            dev_info!(c.device(), "Failed reconnect attempt {}/{}\n", n.nr_reconnects(), max);
            c.reconnect_or_remove(e.to_errno());
        }
    }
}

/// `nvme reset` (C: `nvme_reset_ctrl_work`).
///
/// # Safety
///
/// Called by nvme-core's workqueue with the `reset_work` of one of our
/// live controllers.
pub(super) unsafe extern "C" fn reset_work_fn(w: *mut kb::work_struct) {
    let off = core::mem::offset_of!(TcpCtrl, ctrl) + core::mem::offset_of!(nb::nvme_ctrl, reset_work);
    // SAFETY: `w` is the `reset_work` of one of our live controllers.
    let c = unsafe { &*w.cast::<u8>().sub(off).cast::<TcpCtrl>() };
    let n = c.core();
    if crate::tls::key_revoke_needed(n) {
        n.revoke_tls_key();
    }
    n.stop();
    c.teardown(false);
    if !n.change_state(nb::nvme_ctrl_state_NVME_CTRL_CONNECTING) {
        return;
    }
    match c.setup(false) {
        Ok(()) => dev_info!(c.device(), "Successfully reconnected\n"),
        Err(e) => {
            n.set_nr_reconnects(n.nr_reconnects() + 1);
            dev_warn!(c.device(), "failed to reconnect after reset: {}\n", e.to_errno());
            c.reconnect_or_remove(e.to_errno());
        }
    }
}
