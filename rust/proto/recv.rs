// SPDX-License-Identifier: GPL-2.0
//! The receive state machine of a queue, and the receive pass that drives it.
//!
//! [`RecvMachine`] only says where the next bytes go and how many it wants
//! ([`Want`]); it never touches a socket. [`recv_pass`] pulls bytes with
//! `recvmsg`-like calls through [`QueueIo`]; a `read_sock` (push) mode can
//! feed the same machine from skbs. States, as in the C driver's
//! `enum nvme_tcp_recv_state`, but each carries what it needs:
//!
//! ```text
//!            +-----------------------------------------------+
//!            v                                               |
//!   Header{got} --Rsp/R2T--> (event) ------------------------+
//!        |                                                   |
//!        +--C2HData--> Data{remaining,crc} --no ddgst--------+
//!                             |                              |
//!                             +--ddgst--> DataDigest{got} ---+
//! ```

use crate::proto::crc::{self, Crc32c};
use crate::proto::errno;
use crate::proto::pdu::{self, C2HData, Cqe, Digests, ProtoError, RecvPdu, TermReq, R2T};
use core::fmt;

/// Where the machine is in the byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvState {
    /// Filling the header buffer; `got` bytes are in.
    Header { got: usize },
    /// Receiving a C2HData payload into the request; `remaining` bytes to go,
    /// `crc` the running data digest state (unused without data digests).
    Data { pdu: C2HData, remaining: u32, crc: u32 },
    /// Receiving the data digest after a payload whose digest state is `crc`.
    DataDigest { pdu: C2HData, crc: u32, got: usize },
}

/// The next destination for received bytes.
#[derive(Debug)]
pub enum Want<'a> {
    /// Into the queue's header buffer (a kvec).
    Header(&'a mut [u8]),
    /// Into the pages of request `command_id`, at most `len` bytes.
    Payload { command_id: u16, len: usize },
    /// Into the data digest buffer (a kvec).
    Digest(&'a mut [u8]),
}

/// What a completed unit of the stream means for the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A response capsule: complete the command.
    Response(Cqe),
    /// A C2HData header: the payload that follows belongs to this command.
    /// The queue checks the command id and range, then sets up the data
    /// phase's destination once.
    DataBegin(C2HData),
    /// A C2HData payload (and digest) is in. `digest_ok` is false when the
    /// data digest did not match: the command then fails with a transfer
    /// error, as in the C driver, and the stream goes on.
    DataEnd { pdu: C2HData, digest_ok: bool },
    /// Ready to transfer: send H2CData for this range.
    R2T(R2T),
}

/// The receive state machine of one queue.
pub struct RecvMachine {
    digests: Digests,
    state: RecvState,
    hdr: [u8; pdu::RECV_HDR_LEN + pdu::DIGEST_LEN],
    ddgst: [u8; pdu::DIGEST_LEN],
}

impl RecvMachine {
    /// A machine at the start of a PDU, for a queue with these digests.
    pub const fn new(digests: Digests) -> Self {
        Self {
            digests,
            state: RecvState::Header { got: 0 },
            hdr: [0; pdu::RECV_HDR_LEN + pdu::DIGEST_LEN],
            ddgst: [0; pdu::DIGEST_LEN],
        }
    }

    /// The current state.
    pub fn state(&self) -> RecvState {
        self.state
    }

    /// The negotiated digests.
    pub fn digests(&self) -> Digests {
        self.digests
    }

    /// Back to the start of a PDU (after a reconnect).
    pub fn reset(&mut self, digests: Digests) {
        *self = Self::new(digests);
    }

    /// Where the next bytes go and how many are wanted at most.
    pub fn want(&mut self) -> Want<'_> {
        match self.state {
            RecvState::Header { got } => {
                let end = self.digests.recv_hdr_len();
                Want::Header(&mut self.hdr[got..end])
            }
            RecvState::Data { pdu, remaining, .. } => {
                Want::Payload { command_id: pdu.command_id, len: remaining as usize }
            }
            RecvState::DataDigest { got, .. } => Want::Digest(&mut self.ddgst[got..]),
        }
    }

    /// The running data digest while in [`RecvState::Data`] with data
    /// digests on, for the receiver to extend over the bytes it placed.
    pub fn data_crc(&mut self) -> Option<&mut u32> {
        match &mut self.state {
            RecvState::Data { crc, .. } if self.digests.data => Some(crc),
            _ => None,
        }
    }

    /// Accounts for `n` bytes placed where [`Self::want`] said. Returns the
    /// event a completed unit produced, if any.
    ///
    /// `n` larger than what was wanted is a caller bug and is refused with
    /// `EINVAL` rather than trusted.
    pub fn advance<C: Crc32c + ?Sized>(&mut self, n: usize, c: &C) -> Result<Option<Event>, RecvError> {
        match self.state {
            RecvState::Header { got } => {
                let need = self.digests.recv_hdr_len();
                if n > need - got {
                    return Err(RecvError::Internal(errno::EINVAL));
                }
                let got = got + n;
                if got < need {
                    self.state = RecvState::Header { got };
                    return Ok(None);
                }
                self.state = RecvState::Header { got: 0 };
                match pdu::parse_recv_header(&self.hdr[..need], self.digests, c)? {
                    RecvPdu::Rsp(cqe) => Ok(Some(Event::Response(cqe))),
                    RecvPdu::R2T(r2t) => Ok(Some(Event::R2T(r2t))),
                    RecvPdu::C2HTerm(t) => Err(RecvError::Terminated(t)),
                    RecvPdu::C2HData(d) => {
                        self.state = RecvState::Data { pdu: d, remaining: d.data_length, crc: crc::SEED };
                        Ok(Some(Event::DataBegin(d)))
                    }
                }
            }
            RecvState::Data { pdu, remaining, crc } => {
                if n > remaining as usize {
                    return Err(RecvError::Internal(errno::EINVAL));
                }
                // n <= remaining <= u32::MAX
                let remaining = remaining - n as u32;
                if remaining > 0 {
                    self.state = RecvState::Data { pdu, remaining, crc };
                    Ok(None)
                } else if self.digests.data {
                    self.state = RecvState::DataDigest { pdu, crc, got: 0 };
                    Ok(None)
                } else {
                    self.state = RecvState::Header { got: 0 };
                    Ok(Some(Event::DataEnd { pdu, digest_ok: true }))
                }
            }
            RecvState::DataDigest { pdu, crc, got } => {
                if n > pdu::DIGEST_LEN - got {
                    return Err(RecvError::Internal(errno::EINVAL));
                }
                let got = got + n;
                if got < pdu::DIGEST_LEN {
                    self.state = RecvState::DataDigest { pdu, crc, got };
                    return Ok(None);
                }
                self.state = RecvState::Header { got: 0 };
                let digest_ok = self.ddgst == crc::finish(crc);
                Ok(Some(Event::DataEnd { pdu, digest_ok }))
            }
        }
    }
}

/// Why a receive pass stopped the queue. Every variant is fatal for the
/// connection: the queue stops receiving and error recovery reconnects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The target broke the protocol (the field is named).
    Proto(ProtoError),
    /// The target sent C2HTermReq.
    Terminated(TermReq),
    /// The socket failed (positive errno).
    Socket(i32),
    /// The queue refused an event (unknown command id, range...): errno.
    Rejected(i32),
    /// A caller broke the machine's contract (positive errno).
    Internal(i32),
    /// A TLS record that is not data, which the record-type policy does
    /// not let pass (`proto::tls::policy`).
    Tls(crate::proto::tls::TlsStop),
}

impl From<ProtoError> for RecvError {
    fn from(e: ProtoError) -> Self {
        Self::Proto(e)
    }
}

impl RecvError {
    /// The errno for this error (positive).
    pub fn errno(&self) -> i32 {
        match self {
            Self::Proto(e) => e.errno(),
            Self::Terminated(_) => errno::ECONNRESET,
            Self::Socket(e) | Self::Rejected(e) | Self::Internal(e) => *e,
            Self::Tls(t) => t.errno(),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Proto(e) => write!(f, "{e}"),
            Self::Terminated(t) => write!(f, "received C2HTermReq (FES = {}, FEI = {:#x})", t.fes_name(), t.fei),
            Self::Socket(e) => write!(f, "socket receive failed: -{e}"),
            Self::Rejected(e) => write!(f, "pdu rejected: -{e}"),
            Self::Internal(e) => write!(f, "internal receive error: -{e}"),
            Self::Tls(t) => write!(f, "{t}"),
        }
    }
}

/// What the receive pass needs from a queue: the socket, the request's
/// pages and the completion path. The kernel implements it over
/// `sock_recvmsg()`; host tests over a scripted byte stream.
pub trait QueueIo {
    /// The CRC32C engine.
    type Crc: Crc32c + ?Sized;
    /// The CRC32C engine for digests.
    fn crc(&self) -> &Self::Crc;
    /// Non-blocking receive into a kernel buffer: `Ok(n)` with `n > 0`,
    /// `Ok(0)` when the peer closed, `Err(EAGAIN)` when nothing is queued.
    fn recv_buf(&mut self, buf: &mut [u8]) -> Result<usize, i32>;
    /// Non-blocking receive of at most `len` payload bytes into the current
    /// data phase's destination (set up by `event(DataBegin)`); extends `crc`
    /// over the bytes received when it is `Some`. Same returns as `recv_buf`.
    fn recv_data(&mut self, len: usize, crc: Option<&mut u32>) -> Result<usize, i32>;
    /// Acts on an event. Returns whether a command completed; `Err(errno)`
    /// refuses the event and stops the queue.
    fn event(&mut self, ev: Event) -> Result<bool, i32>;
    /// How many bytes this pass may take from the socket before it yields
    /// ([`PASS_BUDGET`] when pulling from a socket a target can keep full).
    fn pass_budget(&self) -> usize;
}

/// Bytes one receive pass takes from a socket at most before it ends with
/// `drained: false`, so io_work sends what waits and requeues itself (C:
/// io_work's 1 ms quota, which its `read_sock()` pass only checks between
/// passes). Without it a target that keeps streaming holds io_work in one
/// pass for ever and no command is sent.
pub const PASS_BUDGET: usize = 256 * 1024;

/// How a receive pass ended without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassEnd {
    /// Commands completed in this pass.
    pub completions: u32,
    /// True when the socket said `-EAGAIN` (all queued data consumed): wait
    /// for `data_ready`. False when the byte budget ran out first: requeue.
    pub drained: bool,
}

/// One receive pass of a queue.
///
/// Pulls bytes wherever `m` wants them until the socket reports `-EAGAIN`
/// or the pass took `io.pass_budget()` bytes; every completed unit is handed to
/// `io.event()`. Each receive is non-blocking (`MSG_DONTWAIT`, never
/// `MSG_WAITALL`); a short read simply leaves the machine mid-state for the
/// next pass.
///
/// Return value (this replaces `read_sock()`'s "bytes consumed"):
/// * `Ok(PassEnd { completions, drained })`: `completions` commands were
///   completed; `-EAGAIN` is not an error, it ends the pass with
///   `drained = true`.
/// * `Err(e)`: the connection is unusable (protocol violation, C2HTermReq,
///   peer closed, socket error, or an event the queue refused); the caller
///   stops the queue and starts error recovery.
pub fn recv_pass<I: QueueIo>(m: &mut RecvMachine, io: &mut I) -> Result<PassEnd, RecvError> {
    let mut completions = 0u32;
    let mut budget = PassBudget::of(io);
    loop {
        if budget.spent() {
            return Ok(PassEnd { completions, drained: false });
        }
        let got = match m.want() {
            Want::Header(buf) | Want::Digest(buf) => io.recv_buf(buf),
            Want::Payload { len, .. } => {
                let crc = m.data_crc();
                io.recv_data(len, crc)
            }
        };
        let Some(n) = received(got)? else {
            return Ok(PassEnd { completions, drained: true });
        };
        budget.take(n);
        if advance_and_deliver(m, n, io)? {
            completions += 1;
        }
    }
}

/// The byte budget of one receive pass ([`QueueIo::pass_budget`], read
/// once when the pass starts) and the bytes the pass took against it. One
/// type for every pass, so that a plain, batched or TLS pass yields after
/// the same bytes.
pub(crate) struct PassBudget {
    taken: usize,
    limit: usize,
}

impl PassBudget {
    /// Nothing taken yet of `io`'s budget.
    pub(crate) fn of<I: QueueIo + ?Sized>(io: &I) -> Self {
        Self { taken: 0, limit: io.pass_budget() }
    }

    /// Whether the pass took its budget: it ends with `drained: false`.
    pub(crate) fn spent(&self) -> bool {
        self.taken >= self.limit
    }

    /// A receive took `n` bytes from the socket (saturating: `n` is what
    /// a socket said, never trusted to keep a sum in range).
    pub(crate) fn take(&mut self, n: usize) {
        self.taken = self.taken.saturating_add(n);
    }

    /// The bytes taken so far.
    pub(crate) fn taken(&self) -> usize {
        self.taken
    }
}

/// What one non-blocking receive's result (`recv_buf`, `recv_data`) means
/// for a pass: `Ok(Some(n))`, `n > 0` bytes were placed; `Ok(None)`, the
/// socket said `-EAGAIN`, so the pass ends drained; `Err`, the connection
/// is unusable (0 bytes is the peer closing, mid-PDU or not). Every pass
/// goes through here so that none reads a receive differently.
pub(crate) fn received(got: Result<usize, i32>) -> Result<Option<usize>, RecvError> {
    received_as(got, |n| *n, RecvError::Socket)
}

/// [`received`] for a receive that returns more than a byte count (a TLS
/// receive's [`crate::proto::tls::Got`]): `len` says how many bytes it
/// placed, `socket` which error a failed receive is (a TLS queue reads
/// `-EKEYEXPIRED` as a KeyUpdate).
pub(crate) fn received_as<T>(
    got: Result<T, i32>,
    len: fn(&T) -> usize,
    socket: fn(i32) -> RecvError,
) -> Result<Option<T>, RecvError> {
    match got {
        Ok(g) if len(&g) == 0 => Err(RecvError::Proto(ProtoError::ConnectionClosed)),
        Ok(g) => Ok(Some(g)),
        Err(e) if e == errno::EAGAIN => Ok(None),
        Err(e) => Err(socket(e)),
    }
}

/// Accounts for `n` bytes placed where `m` wanted them and hands the event
/// they completed, if any, to the queue ([`deliver`]). Returns whether a
/// command completed. The one place a pass that received bytes itself
/// moves the machine, so that the batched and unbatched passes act on the
/// stream alike.
pub(crate) fn advance_and_deliver<I: QueueIo + ?Sized>(
    m: &mut RecvMachine,
    n: usize,
    io: &mut I,
) -> Result<bool, RecvError> {
    match m.advance(n, io.crc())? {
        Some(ev) => deliver(io, ev),
        None => Ok(false),
    }
}

/// Hands `ev` to the queue: `Ok(true)` when a command completed; a refused
/// event (`Err(errno)` from [`QueueIo::event`]) stops the queue as
/// [`RecvError::Rejected`].
pub(crate) fn deliver<I: QueueIo + ?Sized>(io: &mut I, ev: Event) -> Result<bool, RecvError> {
    io.event(ev).map_err(RecvError::Rejected)
}

#[cfg(test)]
#[path = "recv_tests.rs"]
mod tests;
