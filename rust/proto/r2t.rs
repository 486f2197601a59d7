// SPDX-License-Identifier: GPL-2.0
//! The R2T hand-off of a write between the receive side (io_work or a
//! blk-mq poller, which parses an R2T) and io_work's send side (which owns
//! the request while it sends, and builds the H2CData PDUs).
//!
//! Each request has one slot, an atomic `u8` in the module, holding a
//! [`Slot`]. Both sides move it only with [`transition`] (the module runs it
//! in a compare-and-swap loop), so an R2T never touches a request the send
//! side is still sending, an R2T for a command that expects none is
//! refused, and a second R2T while one is outstanding (ICReq `maxr2t` = 0:
//! one at a time) is refused instead of queueing the request twice.
//!
//! ```text
//!            SendDone{more}            R2T
//!  Sending ------------------> Waiting ----> Received --Take--> Sending
//!     |  \--SendDone{!more}--> Done          ^
//!     \-------------- R2T (send side still busy) ---/  then SendDone{more}
//!                                                       takes it at once
//! ```
//!
//! The same slot decides who completes the command. A completion (a
//! Response, or C2HData with SUCCESS) that arrives while the send side
//! still owns the request (`Sending`, or `Received`: queued for the send
//! side to take) must not end it under the send side's feet: the request's
//! pages would go back to their owner, and its tag to a new command, while
//! the send side still sends from them and holds it on its FIFO. It is
//! held (`Responded`) and the send side completes it when it lets go. In
//! `Waiting` or `Done` nobody sends: the receive side completes at once.
//! In `Waiting` the write's data is not all sent yet (the target answered
//! before asking for the rest), so, as for a completion the send side was
//! holding, a success becomes a transfer error
//! ([`crate::proto::completion::early_write`]): never a write acknowledged
//! without its data.
//!
//! ```text
//!  Sending | Received --Response--> Responded --SendDone|Take--> Done (send side completes)
//!  Waiting            --Response--> Done (receive side completes, early)
//!  Done               --Response--> Done (receive side completes)
//! ```

use crate::proto::pdu::ProtoError;

/// Where a request is in the hand-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Slot {
    /// The send side owns the request (queued, or sending its command or
    /// the H2CData of an R2T). Where `queue_rq` starts every request.
    Sending = 0,
    /// The send side is done with it and more data is due: an R2T may come.
    Waiting = 1,
    /// All data is sent (or none was due): no R2T may come.
    Done = 2,
    /// An R2T arrived and was recorded in the request; the send side takes
    /// it from here.
    Received = 3,
    /// A completion arrived while the send side owned the request; it was
    /// recorded, and the send side completes the request when it is done.
    Responded = 4,
}

impl Slot {
    /// The slot stored as `v`; unknown values read as `Done` (refusing R2Ts).
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Sending,
            1 => Self::Waiting,
            3 => Self::Received,
            4 => Self::Responded,
            _ => Self::Done,
        }
    }
}

/// What happened to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotEvent {
    /// The receive side got a (checked) R2T for it.
    R2TArrived,
    /// The send side finished what it was sending; `more_due`: the
    /// command's data is not all sent yet.
    SendDone { more_due: bool },
    /// The send side took a request that the receive side queued for it.
    Taken,
    /// The receive side got the command's completion (a Response, or
    /// C2HData with SUCCESS), already checked and turned into a status.
    ResponseArrived,
}

/// What the side that made the transition does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotAction {
    /// Nothing: the other side (or nobody) acts.
    None,
    /// Receive side: hand the request back to the send side's queue.
    QueueForSend,
    /// Send side: build the H2CData PDUs of the recorded R2T now.
    SendH2C,
    /// Complete the command now (with the completion just received, or,
    /// on the send side, the one recorded while it was sending).
    Complete,
    /// Receive side: complete the command now, but data of the write was
    /// still due: a success becomes a transfer error
    /// ([`crate::proto::completion::early_write`]).
    CompleteEarly,
    /// Receive side: record the completion; the send side completes it.
    Hold,
}

/// The next slot and the action for `event` in `slot`, or why the event is
/// not allowed (a misbehaving target, given `command_id`).
pub fn transition(slot: Slot, event: SlotEvent, command_id: u16) -> Result<(Slot, SlotAction), ProtoError> {
    use Slot::*;
    use SlotEvent::*;
    match (slot, event) {
        (Sending, R2TArrived) => Ok((Received, SlotAction::None)),
        (Waiting, R2TArrived) => Ok((Received, SlotAction::QueueForSend)),
        (Done, R2TArrived) => Err(ProtoError::UnexpectedR2T(command_id)),
        (Received, R2TArrived) => Err(ProtoError::DuplicateR2T(command_id)),
        (Sending, SendDone { more_due: true }) => Ok((Waiting, SlotAction::None)),
        (Sending, SendDone { more_due: false }) => Ok((Done, SlotAction::None)),
        (Received, SendDone { more_due: true }) => Ok((Sending, SlotAction::SendH2C)),
        (Received, SendDone { more_due: false }) => Err(ProtoError::UnexpectedR2T(command_id)),
        (Received, Taken) => Ok((Sending, SlotAction::SendH2C)),
        (Sending, Taken) => Ok((Sending, SlotAction::None)),
        (Sending | Received, ResponseArrived) => Ok((Responded, SlotAction::Hold)),
        (Waiting, ResponseArrived) => Ok((Done, SlotAction::CompleteEarly)),
        (Done, ResponseArrived) => Ok((Done, SlotAction::Complete)),
        (Responded, ResponseArrived) => Err(ProtoError::DuplicateResponse(command_id)),
        (Responded, R2TArrived) => Err(ProtoError::UnexpectedR2T(command_id)),
        (Responded, SendDone { .. } | Taken) => Ok((Done, SlotAction::Complete)),
        // Only the send side finishes or takes a request, and only one it
        // owns: anything else is a driver bug, refused the same way.
        (Waiting | Done, SendDone { .. } | Taken) => Err(ProtoError::UnexpectedR2T(command_id)),
    }
}

#[cfg(test)]
#[path = "r2t_tests.rs"]
mod tests;
