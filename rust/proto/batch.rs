// SPDX-License-Identifier: GPL-2.0
//! Batched header receive: at a header boundary one receive fills a small
//! per-queue staging buffer, and the same [`RecvMachine`] parses every
//! complete PDU it holds.
//!
//! Responses are 24 bytes and arrive in bursts; receiving each header with
//! its own `recvmsg` costs a socket-lock round trip per PDU. Here a receive
//! at a header (or data digest) asks for a whole staging buffer; what it
//! got is fed to the machine exactly as if it had arrived in pieces:
//!
//! * header and digest bytes are copied into the machine's buffers, and
//!   every header is validated in full (`pdu::parse_recv_header`) and
//!   handed to the queue (`QueueIo::event`: command id, range, in-flight
//!   checks) before anything acts on it;
//! * C2HData payload already in the buffer is copied into the request's
//!   iterator ([`StageIo::copy_data`]), and the data digest is extended over
//!   exactly those bytes;
//! * the rest of a payload is received straight into the request's
//!   iterator with its own receive (`QueueIo::recv_data`), so large
//!   payloads keep the single copy. Only a payload tail shorter than the
//!   staging buffer is received through it, together with the headers
//!   behind it.
//!
//! A pass never ends with staged bytes left (they are fed before the pass
//! may stop on its budget, `-EAGAIN` or an error of the socket), so a
//! `read_sock()` push (pollers) that follows sees the stream where the
//! machine is. On a TLS queue ([`crate::proto::tls::recv_pass_tls_batched`])
//! a receive never mixes record types (kTLS ends a `recvmsg` at a type
//! change), so a fill is either all data, parsed here, or all of a record
//! that is not data, which goes to the record-type policy and is never
//! parsed as PDUs.

use crate::proto::crc::Crc32c;
use crate::proto::errno;
use crate::proto::recv::{self, Event, PassBudget, PassEnd, QueueIo, RecvError, RecvMachine, Want};
use core::ops::DerefMut;

/// What the batched pass needs from a queue beyond [`QueueIo`].
pub trait StageIo: QueueIo {
    /// Places `bytes`, payload of the current data phase that arrived in
    /// the staging buffer, into that phase's destination (the request's
    /// pages), as `recv_data` would have. All of them, or `Err(errno)`
    /// (no room in the request): the queue stops.
    fn copy_data(&mut self, bytes: &[u8]) -> Result<(), i32>;
    /// Whether a fill shorter than the staging buffer means the socket
    /// held nothing more at that moment, so the pass may end as drained
    /// without the receive that would say `-EAGAIN` (true for a TCP
    /// socket, whose `data_ready` queues io_work for anything that arrives
    /// later; not for kTLS, which ends a receive where the record type
    /// changes with more queued).
    fn short_fill_drains(&self) -> bool {
        false
    }
    /// Receives the last `len` bytes of the current data phase's payload
    /// straight into its destination, as `recv_data` would, and in the same
    /// receive whatever follows them on the stream into `tail` (the staging
    /// buffer): the next PDU headers, a data digest. Saves the receive a
    /// header would otherwise need after every payload.
    ///
    /// `Some(Ok((payload, staged)))`: `payload <= len` bytes went into the
    /// request (the data digest extended over them) and `staged` bytes
    /// into `tail`, never unless `payload == len`; the same errors as
    /// `recv_data`. `None`: the queue cannot receive both in one call here
    /// (the payload goes on in another bio, or there is no such receive),
    /// and the caller receives the payload alone.
    fn recv_data_and_tail(&mut self, len: usize, crc: Option<&mut u32>, tail: &mut [u8]) -> Option<Result<(usize, usize), i32>> {
        let _ = (len, crc, tail);
        None
    }
}

/// Counts of what the staging buffer carried, since they were last taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageCounts {
    /// Receives that filled the staging buffer.
    pub fills: u64,
    /// PDU headers parsed from it.
    pub pdus: u64,
    /// C2HData payload bytes copied from it into requests.
    pub payload: u64,
}

/// A queue's staging buffer: `buf[start..end]` received, not yet fed.
pub struct Staging<B> {
    buf: B,
    start: usize,
    end: usize,
    /// Bytes of `buf` a payload receive also fills (at most its length).
    tail: usize,
    counts: StageCounts,
}

impl<B: DerefMut<Target = [u8]>> Staging<B> {
    /// An empty staging buffer over `buf` (its length is the batch size;
    /// an empty `buf` turns batching off: see [`Self::enabled`]).
    pub fn new(buf: B) -> Self {
        Self { buf, start: 0, end: 0, tail: 0, counts: StageCounts::default() }
    }

    /// The same, where a receive of a payload's end also takes up to
    /// `tail` bytes of what follows it into the buffer (0: payloads are
    /// received alone).
    pub fn with_tail(buf: B, tail: usize) -> Self {
        let tail = tail.min(buf.len());
        Self { tail, ..Self::new(buf) }
    }

    /// Whether there is a buffer to batch into.
    pub fn enabled(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The buffer's size.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Bytes received into the buffer and not fed to the machine yet.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// The counts since the last call, which resets them.
    pub fn take_counts(&mut self) -> StageCounts {
        core::mem::take(&mut self.counts)
    }

    /// Whether a payload with `remaining` bytes to go is received through
    /// the buffer (its tail, with the headers behind it) rather than
    /// straight into the request: only when it is shorter than the buffer.
    pub fn takes_tail(&self, remaining: usize) -> bool {
        remaining < self.buf.len()
    }

    /// The whole buffer, to receive into; only when nothing is pending.
    pub(crate) fn space(&mut self) -> &mut [u8] {
        debug_assert_eq!(self.pending(), 0);
        &mut self.buf[..]
    }

    /// `n` bytes were received into [`Self::space`].
    pub(crate) fn filled(&mut self, n: usize) -> Result<(), RecvError> {
        self.set_pending(n)?;
        self.counts.fills += 1;
        Ok(())
    }

    /// The part of the buffer a payload receive also fills; only when
    /// nothing is pending.
    pub(crate) fn tail_space(&mut self) -> &mut [u8] {
        debug_assert_eq!(self.pending(), 0);
        &mut self.buf[..self.tail]
    }

    /// `n` bytes were received into [`Self::tail_space`] behind a payload.
    pub(crate) fn tail_filled(&mut self, n: usize) -> Result<(), RecvError> {
        if n > self.tail {
            return Err(RecvError::Internal(errno::EINVAL));
        }
        self.set_pending(n)
    }

    fn set_pending(&mut self, n: usize) -> Result<(), RecvError> {
        if n > self.buf.len() {
            return Err(RecvError::Internal(errno::EINVAL));
        }
        self.start = 0;
        self.end = n;
        Ok(())
    }

    /// Feeds every pending byte to `m`, handing each completed unit to
    /// `io.event()`. Returns the commands completed. On `Err` the queue
    /// stops; what is left pending is never looked at again.
    pub fn feed<I: StageIo>(&mut self, m: &mut RecvMachine, io: &mut I) -> Result<u32, RecvError> {
        let mut completions = 0u32;
        while self.start < self.end {
            let avail = &self.buf[self.start..self.end];
            let n = match m.want() {
                Want::Header(b) | Want::Digest(b) => {
                    let k = b.len().min(avail.len());
                    b[..k].copy_from_slice(&avail[..k]);
                    k
                }
                Want::Payload { len, .. } => {
                    let k = len.min(avail.len());
                    let bytes = &avail[..k];
                    io.copy_data(bytes).map_err(RecvError::Rejected)?;
                    if let Some(c) = m.data_crc() {
                        *c = io.crc().update(*c, bytes);
                    }
                    self.counts.payload += k as u64;
                    k
                }
            };
            self.start += n;
            match m.advance(n, io.crc())? {
                Some(ev) => {
                    if !matches!(ev, Event::DataEnd { .. }) {
                        self.counts.pdus += 1;
                    }
                    if recv::deliver(io, ev)? {
                        completions += 1;
                    }
                }
                // Only a zero-length payload places nothing, and it always
                // completes a unit; anything else would loop for ever.
                None if n == 0 => return Err(RecvError::Internal(errno::EINVAL)),
                None => {}
            }
        }
        self.start = 0;
        self.end = 0;
        Ok(completions)
    }
}

/// One receive pass of a queue with batched header receive: as
/// [`crate::proto::recv::recv_pass`] (same returns, same budget), but every
/// receive at a header or digest fills `s`, whose bytes are fed before
/// anything else happens.
pub fn recv_pass_batched<I: StageIo, B: DerefMut<Target = [u8]>>(
    m: &mut RecvMachine,
    s: &mut Staging<B>,
    io: &mut I,
) -> Result<PassEnd, RecvError> {
    let mut completions = 0u32;
    let mut budget = PassBudget::of(io);
    let mut short = false;
    loop {
        completions += s.feed(m, io)?;
        if short {
            return Ok(PassEnd { completions, drained: true });
        }
        if budget.spent() {
            return Ok(PassEnd { completions, drained: false });
        }
        let (got, staged) = match m.want() {
            Want::Payload { len, .. } => {
                let whole = s.takes_tail(len);
                let tail = s.tail_space();
                let asked = len + tail.len();
                let crc = m.data_crc();
                // A payload end shorter than the buffer goes through it
                // whole (`takes_tail`): as few receives, and no tail
                // shorter than the headers behind it.
                let got = if tail.is_empty() || whole { None } else { io.recv_data_and_tail(len, crc, tail) };
                match got {
                    Some(got) => {
                        let Some((p, t)) = recv::received_as(got, |&(p, t)| p + t, RecvError::Socket)? else {
                            return Ok(PassEnd { completions, drained: true });
                        };
                        if p > len || (t > 0 && p != len) {
                            return Err(RecvError::Internal(errno::EINVAL));
                        }
                        budget.take(p + t);
                        // As a short fill: the socket held no more.
                        short = p + t < asked && io.short_fill_drains();
                        if p > 0 && recv::advance_and_deliver(m, p, io)? {
                            completions += 1;
                        }
                        if t > 0 {
                            s.tail_filled(t)?;
                        }
                        continue;
                    }
                    None if !s.takes_tail(len) => {
                        let crc = m.data_crc();
                        (io.recv_data(len, crc), false)
                    }
                    None => (io.recv_buf(s.space()), true),
                }
            }
            _ => (io.recv_buf(s.space()), true),
        };
        let Some(n) = recv::received(got)? else {
            return Ok(PassEnd { completions, drained: true });
        };
        budget.take(n);
        if staged {
            short = n < s.capacity() && io.short_fill_drains();
            s.filled(n)?;
            continue;
        }
        if recv::advance_and_deliver(m, n, io)? {
            completions += 1;
        }
    }
}
