// SPDX-License-Identifier: GPL-2.0
//! The driver data of one NVMe/TCP command (C: `struct nvme_tcp_request`).
//!
//! Several contexts use a command at once: queue_rq fills it in, io_work's
//! send side sends it, the receive side (io_work or a poller) receives its
//! data and completion, the timeout handler looks at it. Nobody holds a
//! `&mut TcpRequest`: each context's fields live in a cell of their own,
//! and every context reaches the request as `&TcpRequest`.
//!
//! | cell | written by | read by |
//! | --- | --- | --- |
//! | [`Submit`] (capsule, sizes, direction) | queue_rq (or the AER's submitter) before it hands the command over | everyone, afterwards |
//! | [`SendFields`] | queue_rq before the hand-over, then the send side while the request is on its FIFO | the send side |
//! | [`RecvFields`] | queue_rq before the hand-over, then the receive side | the receive side |
//! | `r2t_slot`, `r2t`, `held` (atomics) | both sides, through [`crate::proto::r2t::transition`] | both sides |
//!
//! The hand-overs that make the cells exclusive: a request reaches the send
//! side through the queue's `llist` (release/acquire) after queue_rq
//! finished with it; the receive side reaches it only through a command-id
//! lookup, which hands out a request only once queue_rq armed it (blk-mq
//! handle, release/acquire); the send side lets go of a request before it
//! is completed (the R2T slot holds an early completion until then), so
//! when queue_rq gets the request again nobody else uses it.

use crate::proto::crc;
use crate::proto::pdu::{self, Digests, ProtoError};
use crate::proto::r2t::{self, Slot, SlotAction, SlotEvent};
use crate::queue::Queue;
use crate::sys::bindings as nb;
use crate::sys::iov::{KernelCrc32c, RqData};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use kernel::{bindings as kb, types::Opaque};

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

/// The command capsule of a request, 8-byte aligned so the SQE at offset 8
/// is a valid `struct nvme_command`.
#[repr(C, align(8))]
pub(crate) struct CmdPdu(pub(crate) [u8; pdu::CMD_PDU_LEN + pdu::DIGEST_LEN]);

/// What queue_rq decides for a command and nobody changes while it is in
/// flight.
pub(crate) struct Submit {
    pub(crate) cmd: CmdPdu,
    /// Payload bytes of the command.
    pub(crate) data_len: u32,
    /// Of which sent in the capsule.
    pub(crate) inline_len: u32,
    /// Data flows host to controller: C2HData for it is refused.
    pub(crate) write: bool,
}

impl Submit {
    /// The 64-byte SQE inside the command capsule (always present: the
    /// capsule buffer is longer than header plus SQE).
    pub(crate) fn sqe(&mut self) -> Option<&mut [u8; pdu::SQE_LEN]> {
        self.cmd.0[pdu::HDR_LEN..].first_chunk_mut::<{ pdu::SQE_LEN }>()
    }

    /// Writes the capsule header and, with header digests, its digest.
    /// Call once the SQE is final: the digest covers it.
    pub(crate) fn seal_cmd(&mut self, digests: Digests) {
        let hdr = pdu::cmd_header(digests, self.inline_len);
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

    /// The command's opcode.
    pub(crate) fn opcode(&self) -> u8 {
        self.cmd.0[pdu::HDR_LEN]
    }

    /// Payload bytes the target sends to the host (0 for a write).
    pub(crate) fn to_host(&self) -> u32 {
        if self.write { 0 } else { self.data_len }
    }
}

/// The send side's fields.
pub(crate) struct SendFields {
    pub(crate) h2c: [u8; pdu::DATA_PDU_LEN + pdu::DIGEST_LEN],
    pub(crate) state: SendState,
    pub(crate) data_sent: u32,
    pub(crate) h2c_offset: u32,
    pub(crate) h2c_left: u32,
    pub(crate) r2t_left: u32,
    pub(crate) ttag: u16,
    pub(crate) crc: u32,
    pub(crate) ddgst: [u8; pdu::DIGEST_LEN],
    /// The next request on the send side's FIFO.
    pub(crate) next: Option<NonNull<TcpRequest>>,
    /// A write's pages: what is sent next.
    pub(crate) data: RqData,
}

/// The receive side's fields.
pub(crate) struct RecvFields {
    pub(crate) data_recvd: u32,
    /// A transfer error found while receiving (bad data digest), reported
    /// instead of the target's status.
    pub(crate) status: u16,
    /// The command's completion arrived (it may be held for the send
    /// side): no more data may be placed (`pdu::check_c2h_data`).
    pub(crate) completed: bool,
    /// A read's pages: where C2HData goes next.
    pub(crate) data: RqData,
}

/// An R2T the receive side recorded for the send side; published by the
/// request's R2T slot moving to `Received` (release/acquire).
#[derive(Default)]
pub(crate) struct RecordedR2T {
    pub(crate) ttag: AtomicU16,
    pub(crate) offset: AtomicU32,
    pub(crate) length: AtomicU32,
}

/// A completion held for the send side; published by the slot moving to
/// `Responded` (release/acquire).
#[derive(Default)]
pub(crate) struct HeldCompletion {
    pub(crate) status: AtomicU16,
    pub(crate) result: AtomicU64,
}

/// What kind of command this is: a blk-mq request, or the AER the
/// controller keeps outside blk-mq.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Blk,
    Aer,
}

/// Per-request driver data (the blk-mq PDU's first part; the AER's lives
/// in the controller).
///
/// `nreq` comes first: nvme-core finds it with `nvme_req(rq)`, which is
/// `blk_mq_rq_to_pdu(rq)`.
///
/// # Invariants
///
/// `queue` and `kind` never change after creation; the cells are used as
/// the module comment's table says; the request never moves once placed
/// (`nreq.cmd` points into `submit`).
#[repr(C)]
pub(crate) struct TcpRequest {
    /// nvme-core's part, which nvme-core changes itself.
    nreq: Opaque<nb::nvme_request>,
    queue: *const Queue,
    kind: Kind,
    lentry: Opaque<kb::llist_node>,
    submit: UnsafeCell<Submit>,
    send: UnsafeCell<SendFields>,
    recv: UnsafeCell<RecvFields>,
    /// The send/receive hand-off ([`r2t::Slot`] as `u8`).
    r2t_slot: AtomicU8,
    /// The R2T being handed off.
    pub(crate) r2t: RecordedR2T,
    /// A completion that arrived while the send side owned the request.
    pub(crate) held: HeldCompletion,
}

// SAFETY: shared between queue_rq, io_work, pollers and the timeout
// handler on any CPU; each cell has one owner at a time (type invariant),
// the rest is atomics or immutable.
unsafe impl Sync for TcpRequest {}
// SAFETY: as above; nothing in it is bound to a thread.
unsafe impl Send for TcpRequest {}

/// queue_rq's view of a request it is filling in: all of it.
pub(crate) struct Fresh<'a> {
    pub(crate) submit: &'a mut Submit,
    pub(crate) send: &'a mut SendFields,
    pub(crate) recv: &'a mut RecvFields,
}

impl TcpRequest {
    /// A request of `queue` on controller `ctrl`, with nothing in flight.
    /// `nreq.cmd` must still be pointed at the capsule once the value is at
    /// its final address ([`Self::bind_sqe`]).
    pub(crate) fn new(queue: *const Queue, ctrl: *mut nb::nvme_ctrl, kind: Kind) -> Self {
        Self {
            nreq: Opaque::new(nb::nvme_request { ctrl, ..Default::default() }),
            queue,
            kind,
            lentry: Opaque::new(Default::default()),
            submit: UnsafeCell::new(Submit {
                cmd: CmdPdu([0; pdu::CMD_PDU_LEN + pdu::DIGEST_LEN]),
                data_len: 0,
                inline_len: 0,
                write: false,
            }),
            send: UnsafeCell::new(SendFields {
                h2c: [0; pdu::DATA_PDU_LEN + pdu::DIGEST_LEN],
                state: SendState::Cmd { off: 0 },
                data_sent: 0,
                h2c_offset: 0,
                h2c_left: 0,
                r2t_left: 0,
                ttag: 0,
                crc: 0,
                ddgst: [0; pdu::DIGEST_LEN],
                next: None,
                data: RqData::none(),
            }),
            recv: UnsafeCell::new(RecvFields { data_recvd: 0, status: 0, completed: false, data: RqData::none() }),
            r2t_slot: AtomicU8::new(Slot::Sending as u8),
            r2t: RecordedR2T::default(),
            held: HeldCompletion::default(),
        }
    }

    /// Points nvme-core's `nvme_req(rq)->cmd` at the SQE inside the
    /// capsule. The request must not move afterwards (blk-mq PDUs and the
    /// controller's AER request never do).
    pub(crate) fn bind_sqe(&mut self) {
        let sqe = self.submit.get_mut().cmd.0[pdu::HDR_LEN..].as_mut_ptr();
        // SAFETY: `&mut self`: nvme-core does not use the request yet (it is
        // being placed), so this write races with nothing.
        unsafe { (*self.nreq.get()).cmd = sqe.cast() };
    }

    /// The queue this request belongs to.
    pub(crate) fn queue(&self) -> &Queue {
        // SAFETY: set at creation to the queue of this request (the AER's:
        // the admin queue), which lives in the controller and outlives its
        // requests.
        unsafe { &*self.queue }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// The request's `llist` node, for the hand-over to io_work.
    pub(crate) fn lentry(&self) -> *mut kb::llist_node {
        self.lentry.get()
    }

    /// The request whose `lentry` is `node`.
    ///
    /// # Safety
    ///
    /// `node` is the [`Self::lentry`] of a request.
    pub(crate) unsafe fn from_lentry(node: NonNull<kb::llist_node>) -> NonNull<TcpRequest> {
        let off = core::mem::offset_of!(TcpRequest, lentry);
        // SAFETY: `node` is the `lentry` field of a request (caller), so
        // stepping back by its offset stays inside that request.
        unsafe { NonNull::new_unchecked(node.as_ptr().cast::<u8>().sub(off).cast::<TcpRequest>()) }
    }

    /// The whole request, to fill it in.
    ///
    /// # Safety
    ///
    /// The caller is queue_rq before it starts the request, or the AER's
    /// submitter while no AER is outstanding: the send side let go of the
    /// request before it was last completed, and no lookup hands it out, so
    /// nobody else uses any cell.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn fresh(&self) -> Fresh<'_> {
        // SAFETY: exclusive use of every cell (caller).
        unsafe { Fresh { submit: &mut *self.submit.get(), send: &mut *self.send.get(), recv: &mut *self.recv.get() } }
    }

    /// What queue_rq decided; unchanged while the command is in flight.
    pub(crate) fn submit(&self) -> &Submit {
        // SAFETY: written only through `fresh`, whose users have the
        // request to themselves; every other user comes after the hand-over.
        unsafe { &*self.submit.get() }
    }

    /// The send side's fields.
    ///
    /// # Safety
    ///
    /// The caller is the send side (io_work, which never runs twice at
    /// once) and the request is one it took from the queue's `llist`, not
    /// yet let go of; the returned borrow is the only one.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn send_fields(&self) -> &mut SendFields {
        // SAFETY: the send side's alone (caller).
        unsafe { &mut *self.send.get() }
    }

    /// The receive side's fields.
    ///
    /// # Safety
    ///
    /// The caller holds the queue's receive side and the request was handed
    /// out by a command-id lookup (so queue_rq is done with it); the
    /// returned borrow is the only one.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn recv_fields(&self) -> &mut RecvFields {
        // SAFETY: the receive side's alone (caller).
        unsafe { &mut *self.recv.get() }
    }

    /// Resets the hand-off for a new command (through [`Fresh`]'s owner).
    pub(crate) fn reset_slot(&self) {
        self.r2t_slot.store(Slot::Sending as u8, Ordering::Relaxed);
    }

    /// Moves the slot on `ev`, as [`r2t::transition`] allows.
    pub(crate) fn slot_transition(&self, ev: SlotEvent) -> Result<SlotAction, ProtoError> {
        let cid = self.submit().command_id();
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
