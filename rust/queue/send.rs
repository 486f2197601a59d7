// SPDX-License-Identifier: GPL-2.0
//! A queue's send side (C: `nvme_tcp_try_send()` and its helpers): io_work
//! alone runs it, over the FIFO of requests queue_rq, the AER and R2Ts hand
//! it through the queue's `llist`.

use super::{Queue, Rq};
use crate::proto::completion;
use crate::proto::crc;
use crate::proto::errno;
use crate::proto::pdu::{self, R2T};
use crate::proto::r2t::{SlotAction, SlotEvent};
use crate::request::{Kind, SendFields, SendState, TcpRequest};
use crate::sys::fmt::Shown;
use crate::sys::iov::KernelCrc32c;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use kernel::prelude::*;

/// What only io_work touches: the FIFO of requests to send and the one
/// being sent.
///
/// # Invariants
///
/// Every request on the FIFO and `cur` is one the send side took from the
/// queue's `llist` and has not let go of: its send fields are the send
/// side's ([`TcpRequest::send_fields`]), and it stays valid (it is in
/// flight, or the controller's AER) until the send side lets go.
pub(super) struct SendSide {
    head: Option<NonNull<TcpRequest>>,
    tail: Option<NonNull<TcpRequest>>,
    cur: Option<NonNull<TcpRequest>>,
}

impl SendSide {
    pub(super) const fn new() -> Self {
        Self { head: None, tail: None, cur: None }
    }

    /// The send fields of `req`, one of the send side's requests.
    fn fields<'a>(&'a mut self, req: &'a TcpRequest) -> &'a mut SendFields {
        // SAFETY: `req` is on the FIFO or `cur` (callers pass only those;
        // type invariant), and `&mut self` makes this the only borrow the
        // send side hands out.
        unsafe { req.send_fields() }
    }

    fn push(&mut self, req: NonNull<TcpRequest>) {
        // SAFETY: `req` is a request the send side now owns (invariant).
        let r = unsafe { req.as_ref() };
        self.fields(r).next = None;
        match self.tail {
            None => self.head = Some(req),
            // SAFETY: `tail` is on the FIFO (invariant).
            Some(t) => self.fields(unsafe { t.as_ref() }).next = Some(req),
        }
        self.tail = Some(req);
    }

    /// Requests wait to be sent.
    pub(super) fn busy(&self) -> bool {
        self.cur.is_some() || self.head.is_some()
    }

    fn pop(&mut self) -> Option<NonNull<TcpRequest>> {
        let req = self.head?;
        // SAFETY: `req` is on the FIFO (invariant).
        self.head = self.fields(unsafe { req.as_ref() }).next;
        if self.head.is_none() {
            self.tail = None;
        }
        Some(req)
    }
}

impl Queue {
    /// The send side.
    ///
    /// # Safety
    ///
    /// Only io_work calls this, once per run (type invariant).
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn send_side(&self) -> &mut SendSide {
        // SAFETY: io_work is the only user and never runs twice at once.
        unsafe { &mut *self.send.get() }
    }

    /// Moves newly queued requests onto the send side's FIFO; a request an
    /// R2T handed back gets its H2CData set up here, and one whose
    /// completion was held for the send side is completed instead.
    fn take_new_requests(&self, s: &mut SendSide) -> Result<(), c_int> {
        for node in self.req_list.take_all() {
            let Some(node) = NonNull::new(node) else { continue };
            // SAFETY: every node on `req_list` is the `lentry` of a request
            // handed to the send side.
            let ptr = unsafe { TcpRequest::from_lentry(node) };
            // SAFETY: such a request stays valid until the send side lets
            // go of it (it is in flight, or the AER).
            let req = unsafe { ptr.as_ref() };
            match self.slot_event(req, SlotEvent::Taken)? {
                SlotAction::SendH2C => {
                    s.push(ptr);
                    self.start_r2t(req, s.fields(req))?;
                }
                // The R2T's data was never sent.
                SlotAction::Complete => self.complete_held(req, true),
                _ => s.push(ptr),
            }
        }
        Ok(())
    }

    /// Moves a request's slot; a refusal (a misbehaving target) is logged
    /// with the queue and the command.
    pub(super) fn slot_event(&self, req: &TcpRequest, ev: SlotEvent) -> Result<SlotAction, c_int> {
        req.slot_transition(ev).map_err(|e| {
            dev_err!(self.dev(), "queue {}: {}\n", self.qid, Shown(e));
            -e.errno()
        })
    }

    /// Sends `buf` without blocking; returns bytes sent.
    fn send_buf(&self, buf: &[u8], more: bool) -> Result<usize, c_int> {
        self.sock()?.send_nonblocking(buf, more)
    }

    /// Sends up to `len` bytes of the request's data (pages spliced, not
    /// copied, where allowed), extending the request's data digest when
    /// data digests are on.
    fn send_data(&self, f: &mut SendFields, len: usize, more: bool) -> Result<usize, c_int> {
        let sock = self.sock()?;
        let crc = if self.digests().data { Some(&mut f.crc) } else { None };
        f.data.send(sock, len, more, crc)
    }

    /// Takes the R2T the receive side recorded: checks it against what was
    /// sent (as `nvme_tcp_handle_r2t()`), then sets up its first H2CData.
    fn start_r2t(&self, req: &TcpRequest, f: &mut SendFields) -> Result<(), c_int> {
        let sub = req.submit();
        let r = R2T {
            command_id: sub.command_id(),
            ttag: req.r2t.ttag.load(Ordering::Relaxed),
            offset: req.r2t.offset.load(Ordering::Relaxed),
            length: req.r2t.length.load(Ordering::Relaxed),
        };
        let total = if sub.write { sub.data_len } else { 0 };
        if let Err(e) = pdu::check_r2t(&r, f.data_sent, total) {
            dev_err!(self.dev(), "queue {}: {}\n", self.qid, Shown(e));
            return Err(-e.errno());
        }
        f.ttag = r.ttag;
        f.h2c_offset = r.offset;
        f.r2t_left = r.length;
        self.setup_h2c(req, f);
        Ok(())
    }

    /// Prepares the next H2CData PDU of the current R2T.
    fn setup_h2c(&self, req: &TcpRequest, f: &mut SendFields) {
        let digests = self.digests();
        let len = f.r2t_left.min(self.conf().maxh2cdata);
        f.r2t_left -= len;
        f.h2c_left = len;
        let last = f.r2t_left == 0;
        let cid = req.submit().command_id();
        let h = pdu::encode_h2c_data(digests, cid, f.ttag, f.h2c_offset, len, last);
        f.h2c[..pdu::DATA_PDU_LEN].copy_from_slice(&h);
        if digests.header {
            let d = crc::digest(&KernelCrc32c, &h);
            f.h2c[pdu::DATA_PDU_LEN..].copy_from_slice(&d);
        }
        f.state = SendState::H2CHeader { off: 0 };
    }

    /// After a PDU's payload: its data digest, or what comes next.
    fn payload_done(&self, s: &mut SendSide, req: &TcpRequest) -> Result<(), c_int> {
        if self.digests().data {
            let f = s.fields(req);
            f.ddgst = crc::finish(f.crc);
            f.state = SendState::DataDigest { off: 0 };
            Ok(())
        } else {
            self.pdu_done(s, req)
        }
    }

    /// After a whole PDU: the next H2CData of the R2T, or the request is
    /// sent for now.
    fn pdu_done(&self, s: &mut SendSide, req: &TcpRequest) -> Result<(), c_int> {
        let f = s.fields(req);
        if f.r2t_left > 0 {
            self.setup_h2c(req, f);
            Ok(())
        } else {
            self.request_sent(s, req)
        }
    }

    /// The send side is done with `req` until an R2T asks for more of its
    /// data (or for good). An R2T that came early is served at once; a
    /// completion that came early is delivered now.
    fn request_sent(&self, s: &mut SendSide, req: &TcpRequest) -> Result<(), c_int> {
        let cur = s.cur.take();
        let sub = req.submit();
        let more_due = sub.write && s.fields(req).data_sent < sub.data_len;
        match self.slot_event(req, SlotEvent::SendDone { more_due })? {
            SlotAction::SendH2C => {
                self.start_r2t(req, s.fields(req))?;
                s.cur = cur;
            }
            // The send side let go: the request may complete now.
            SlotAction::Complete => self.complete_held(req, more_due),
            _ => {}
        }
        Ok(())
    }

    /// Completes a request whose completion the receive side held for the
    /// send side, which just let go of it. `early`: data was still due, so
    /// the target answered before it had the command's data (a target
    /// error, logged); else the Response only overtook the send side's own
    /// bookkeeping (a poller received it right after the last send).
    fn complete_held(&self, req: &TcpRequest, early: bool) {
        let mut status = req.held.status.load(Ordering::Relaxed);
        let result = req.held.result.load(Ordering::Relaxed);
        if early {
            // Never acknowledge a write the target did not get all of.
            status = completion::early_write(status);
            dev_warn!(
                self.dev(),
                "queue {}: response for command id {:#x} before its data was sent: status {:#x}\n",
                self.qid,
                req.submit().command_id(),
                status
            );
        }
        self.end_request(req, status, result);
    }

    /// Ends `req` with `status` and `result`: the AER goes to nvme-core's
    /// async event handling, a blk-mq request is ended through its handle.
    pub(super) fn end_request(&self, req: &TcpRequest, status: u16, result: u64) {
        match req.kind() {
            Kind::Aer => {
                crate::ctrl::complete_async_event(self.ctrl(), status, result);
            }
            Kind::Blk => {
                // SAFETY: a blk-mq request of ours, armed and not ended: the
                // receive side saw it in flight when it held its completion,
                // and only the side that wins the slot's `Complete` ends it.
                let rq = unsafe { Rq::from_data(NonNull::from(req)) };
                rq.end(status, result);
            }
        }
    }

    /// Sends the current request's PDUs (capsule and in-capsule data, or an
    /// H2CData header, payload and digest) until it is sent for now or the
    /// socket is full, as the C driver's `nvme_tcp_try_send()`: io_work
    /// receives between requests, not between the pieces of one.
    /// `Ok(true)` when progress was made, `Ok(false)` when there is nothing
    /// to send or the socket is full.
    pub(super) fn try_send(&self, s: &mut SendSide) -> Result<bool, c_int> {
        let mut progress = false;
        loop {
            match self.send_step(s) {
                Ok(true) if s.cur.is_some() => progress = true,
                Ok(sent) => return Ok(progress || sent),
                Err(e) if progress && e == -(errno::EAGAIN) => return Ok(true),
                Err(e) => return Err(e),
            }
        }
    }

    /// One send call for the current request (taking the next one when
    /// there is none). `Ok(true)` when bytes went out.
    fn send_step(&self, s: &mut SendSide) -> Result<bool, c_int> {
        if s.cur.is_none() {
            self.take_new_requests(s)?;
            s.cur = s.pop();
        }
        let Some(ptr) = s.cur else { return Ok(false) };
        // SAFETY: `cur` is a request the send side owns (`SendSide`'s
        // invariant), valid until it lets go.
        let req = unsafe { ptr.as_ref() };
        let sub = req.submit();
        let digests = self.digests();
        // Not across requests on TLS (C: `nvme_tcp_queue_more()`): a record
        // kept open for a later request would wait for it.
        let more = s.head.is_some() && !self.is_tls();
        let f = s.fields(req);
        let n = match f.state {
            SendState::Cmd { off } => {
                let total = pdu::CMD_PDU_LEN + digests.hdgst_len();
                let inline = sub.inline_len > 0;
                let n = self.send_buf(&sub.cmd.0[off..total], inline || more)?;
                if off + n == total {
                    if inline {
                        f.crc = crc::SEED;
                        f.state = SendState::InlineData;
                    } else {
                        self.request_sent(s, req)?;
                    }
                } else {
                    f.state = SendState::Cmd { off: off + n };
                }
                n
            }
            SendState::InlineData => {
                let left = (sub.inline_len - f.data_sent) as usize;
                let n = self.send_data(f, left, more || digests.data)?;
                f.data_sent += n as u32;
                if f.data_sent == sub.inline_len {
                    self.payload_done(s, req)?;
                }
                n
            }
            SendState::H2CHeader { off } => {
                let total = pdu::DATA_PDU_LEN + digests.hdgst_len();
                let n = self.send_buf(&f.h2c[off..total], true)?;
                if off + n == total {
                    f.crc = crc::SEED;
                    f.state = SendState::H2CData;
                } else {
                    f.state = SendState::H2CHeader { off: off + n };
                }
                n
            }
            SendState::H2CData => {
                let more = more || f.r2t_left > 0 || digests.data;
                let n = self.send_data(f, f.h2c_left as usize, more)?;
                f.h2c_left -= n as u32;
                f.data_sent += n as u32;
                f.h2c_offset += n as u32;
                if f.h2c_left == 0 {
                    self.payload_done(s, req)?;
                }
                n
            }
            SendState::DataDigest { off } => {
                let d = f.ddgst;
                let n = self.send_buf(&d[off..], more || f.r2t_left > 0)?;
                if off + n == pdu::DIGEST_LEN {
                    self.pdu_done(s, req)?;
                } else {
                    f.state = SendState::DataDigest { off: off + n };
                }
                n
            }
        };
        Ok(n > 0)
    }
}
