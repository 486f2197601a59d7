// SPDX-License-Identifier: GPL-2.0
//! Property tests (proptest) of the receive machine against a reference
//! model.
//!
//! Three parts:
//!
//! * [`Host`]: the queue side of the receive path as `rust/queue/recv.rs`
//!   and `rust/queue/send.rs` implement it (command-id lookup, range check,
//!   completion status, the R2T slot and the send side's R2T check),
//!   transcribed over the same `proto` functions, with a scripted socket
//!   that hands the stream over in generated fragments. It records every
//!   byte placed, every completion and every H2CData the send side would
//!   send, and counts invariant violations instead of trusting its input.
//! * [`model`]: a small interpreter of the target's PDUs (not their bytes)
//!   that applies the NVMe/TCP rules the host enforces
//!   (Documentation/receive-path.md, Documentation/hostile-targets.md),
//!   written from the rules, not from the code: in-order C2HData inside the
//!   read's buffer, completion once, a read's success only with all its
//!   data, a data digest error failing only its command, R2Ts only for
//!   unsent data of a write, in order.
//! * Generators of valid streams (reads in random C2HData chunks, some
//!   ending with SUCCESS, responses interleaved across requests, error
//!   statuses, short reads, bad data digests, writes in several R2Ts, every
//!   digest mode, random fragmentation), of PDU-level mutations (which the
//!   model still predicts exactly, including where the queue stops), and of
//!   byte-level mutations (bit flips, header field changes, truncation,
//!   duplication, reordering), which are checked against invariants.
//!
//! Case counts: proptest's default (256 per property) unless
//! `PROPTEST_CASES` is set.

use crate::proto::completion::{self, STATUS_DATA_XFER_ERROR};
use crate::proto::crc::{Crc32c, SoftCrc32c};
use crate::proto::errno;
use crate::proto::pdu::{build, check_c2h_data, check_r2t, Cqe, Digests, ProtoError, RECV_HDR_LEN, R2T};
use crate::proto::r2t::{transition, Slot, SlotAction, SlotEvent};
use crate::proto::batch::{recv_pass_batched, StageIo, Staging};
use crate::proto::recv::{recv_pass, Event, QueueIo, RecvError, RecvMachine, RecvState};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

// ---------------------------------------------------------------------------
// Requests and target PDUs.

/// What a command in flight moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A read of `len` bytes (C2HData to the host).
    Read,
    /// A write whose `len` bytes the target asks for with R2Ts.
    WriteR2T,
    /// A write with in-capsule data, or a command without data: no data
    /// moves after the capsule.
    NoTransfer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReqSpec {
    cid: u16,
    kind: Kind,
    len: u32,
}

/// A PDU the target sends, before encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pdu {
    Rsp { cid: u16, status: u16, result: u64 },
    Data { cid: u16, offset: u32, payload: Vec<u8>, last: bool, success: bool, bad_digest: bool },
    R2T { cid: u16, ttag: u16, offset: u32, length: u32 },
}

/// The bytes a target holds for a read: position-dependent, so a byte
/// placed at the wrong offset or in the wrong request shows.
fn content(cid: u16, pos: u32) -> u8 {
    let x = u32::from(cid).wrapping_mul(0x9e37_79b9) ^ pos.wrapping_mul(0x85eb_ca6b);
    (x ^ (x >> 13) ^ (x >> 24)) as u8
}

fn read_bytes(cid: u16, offset: u32, len: u32) -> Vec<u8> {
    (offset..offset.saturating_add(len)).map(|p| content(cid, p)).collect()
}

/// The wire bytes of `pdus`, and where each PDU starts.
fn encode(pdus: &[Pdu], d: Digests) -> (Vec<u8>, Vec<usize>) {
    let c = SoftCrc32c;
    let mut v = Vec::new();
    let mut starts = Vec::new();
    for p in pdus {
        starts.push(v.len());
        match p {
            Pdu::Rsp { cid, status, result } => {
                let cqe = Cqe { result: *result, sq_head: 1, sq_id: 1, command_id: *cid, status: *status };
                v.extend(build::rsp(&cqe, d, &c));
            }
            Pdu::Data { cid, offset, payload, last, success, bad_digest } => {
                let mut b = build::c2h_data(*cid, *offset, payload, *last, *success, d, &c);
                if *bad_digest && d.data {
                    let n = b.len();
                    b[n - 1] ^= 0x5a;
                }
                v.extend(b);
            }
            Pdu::R2T { cid, ttag, offset, length } => v.extend(build::r2t(*cid, *ttag, *offset, *length, d, &c)),
        }
    }
    (v, starts)
}

// ---------------------------------------------------------------------------
// The reference model.

/// How the model says the queue stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The header itself is invalid (the parser refuses it).
    Header,
    /// A valid header the queue refuses (unknown id, range, R2T state).
    Refused,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    /// (command id, status, result), in completion order.
    completions: Vec<(u16, u16, u64)>,
    /// The bytes placed into each request, in order (always from offset 0).
    placed: BTreeMap<u16, Vec<u8>>,
    /// H2CData ranges sent, per R2T served: (command id, offset, length).
    h2c: Vec<(u16, u32, u32)>,
    /// Where the queue stopped: the PDU's index and why.
    stop: Option<(usize, Stop)>,
}

fn is_error(status: u16) -> bool {
    status >> 1 != 0
}

/// The reference interpreter. Rules:
/// * a PDU naming a command id that is not in flight stops the queue;
/// * C2HData: zero length, or SUCCESS without LAST, is a bad header; data
///   is accepted only for a read, exactly at the next byte it expects,
///   inside its buffer, and LAST only on the PDU that ends it; a bad data
///   digest fails that command with a transfer error, the stream goes on;
/// * a command completes once (Response, or C2HData with SUCCESS): with
///   the host's transfer error if it had one, else an error status from the
///   target stands, else a read that did not get all its bytes fails with a
///   transfer error, else the target's status;
/// * R2T: only for a write with data still to send, non-empty, at exactly
///   the next unsent byte, inside the write; the host then sends that range
///   (the model's send side is immediate);
/// * a write that completes with success before all its data was sent
///   fails with a transfer error (never acknowledged without its data).
fn model(reqs: &[ReqSpec], pdus: &[Pdu]) -> Outcome {
    struct M {
        spec: ReqSpec,
        got: u32,
        sent: u32,
        host_error: bool,
    }
    let mut live: BTreeMap<u16, M> = reqs.iter().map(|r| (r.cid, M { spec: *r, got: 0, sent: 0, host_error: false })).collect();
    let mut out = Outcome::default();
    let status_of = |m: &M, target: u16| -> u16 {
        if m.host_error {
            STATUS_DATA_XFER_ERROR
        } else if is_error(target) {
            target
        } else if (m.spec.kind == Kind::Read && m.got != m.spec.len) || (m.spec.kind == Kind::WriteR2T && m.sent != m.spec.len) {
            // A read without all its bytes, a write without all its data.
            STATUS_DATA_XFER_ERROR
        } else {
            target
        }
    };
    for (i, p) in pdus.iter().enumerate() {
        match p {
            Pdu::Rsp { cid, status, result } => {
                let Some(m) = live.get(cid) else {
                    out.stop = Some((i, Stop::Refused));
                    return out;
                };
                out.completions.push((*cid, status_of(m, *status), *result));
                live.remove(cid);
            }
            Pdu::Data { cid, offset, payload, last, success, bad_digest } => {
                if payload.is_empty() || (*success && !*last) {
                    out.stop = Some((i, Stop::Header));
                    return out;
                }
                let len = payload.len() as u64;
                let ok = match live.get(cid) {
                    Some(m) => {
                        let end = u64::from(*offset) + len;
                        m.spec.kind == Kind::Read
                            && *offset == m.got
                            && end <= u64::from(m.spec.len)
                            && (!*last || end == u64::from(m.spec.len))
                    }
                    None => false,
                };
                if !ok {
                    out.stop = Some((i, Stop::Refused));
                    return out;
                }
                let Some(m) = live.get_mut(cid) else { unreachable_model() };
                out.placed.entry(*cid).or_default().extend_from_slice(payload);
                m.got += payload.len() as u32;
                m.host_error |= *bad_digest;
                if *success {
                    out.completions.push((*cid, status_of(m, 0), 0));
                    live.remove(cid);
                }
            }
            Pdu::R2T { cid, offset, length, .. } => {
                let ok = match live.get(cid) {
                    Some(m) => {
                        m.spec.kind == Kind::WriteR2T
                            && m.sent < m.spec.len
                            && *length > 0
                            && *offset == m.sent
                            && u64::from(*offset) + u64::from(*length) <= u64::from(m.spec.len)
                    }
                    None => false,
                };
                if !ok {
                    out.stop = Some((i, Stop::Refused));
                    return out;
                }
                let Some(m) = live.get_mut(cid) else { unreachable_model() };
                out.h2c.push((*cid, *offset, *length));
                m.sent = offset + length;
            }
        }
    }
    out
}

#[track_caller]
fn unreachable_model() -> ! {
    panic!("model: request vanished")
}

/// The model's outcome with bad data digests ignored (no data digests
/// negotiated: the flag has no bytes to spoil).
fn model_for(reqs: &[ReqSpec], pdus: &[Pdu], d: Digests) -> Outcome {
    if d.data {
        return model(reqs, pdus);
    }
    let clean: Vec<Pdu> = pdus
        .iter()
        .map(|p| match p {
            Pdu::Data { cid, offset, payload, last, success, .. } => Pdu::Data {
                cid: *cid,
                offset: *offset,
                payload: payload.clone(),
                last: *last,
                success: *success,
                bad_digest: false,
            },
            p => p.clone(),
        })
        .collect();
    model(reqs, &clean)
}

// ---------------------------------------------------------------------------
// The host: the queue side of the driver over a scripted socket.

/// A request as the queue holds it (`TcpRequest`: receive fields, send
/// fields, R2T slot, held completion).
struct HReq {
    spec: ReqSpec,
    buf: Vec<u8>,
    /// `RecvFields::data_recvd` and `status`.
    recvd: u32,
    recv_status: u16,
    /// `RecvFields::completed`.
    completed: bool,
    /// The test's own record that a completion arrived (for the invariant,
    /// independent of what the queue keeps).
    completion_arrived: bool,
    slot: Slot,
    /// `SendFields::data_sent`.
    sent: u32,
    /// The R2T the receive side recorded for the send side.
    r2t: Option<R2T>,
    held: (u16, u64),
}

impl HReq {
    fn to_host(&self) -> u32 {
        if self.spec.kind == Kind::Read { self.spec.len } else { 0 }
    }
    fn write_len(&self) -> u32 {
        if self.spec.kind == Kind::WriteR2T { self.spec.len } else { 0 }
    }
}

struct Host {
    stream: Vec<u8>,
    pos: usize,
    /// Receive sizes: 0 answers -EAGAIN once; past the end, any size.
    chunks: Vec<usize>,
    next_chunk: usize,
    live: BTreeMap<u16, HReq>,
    /// Every request's declared data length, in flight or not.
    declared: BTreeMap<u16, (Kind, u32)>,
    /// The data phase's request (`RecvData::data_req`).
    current: Option<u16>,
    /// Requests the receive side queued for the send side.
    to_send: Vec<u16>,
    /// Requests the send side still owns from before the stream (their
    /// capsule is being sent): it lets go of them after the first pass.
    owned: Vec<u16>,
    /// Serve an R2T within the event (true) or after the pass, as io_work
    /// does (false).
    instant_send: bool,
    completions: Vec<(u16, u16, u64)>,
    /// The buffers of the reads that completed with success.
    good_reads: BTreeMap<u16, Vec<u8>>,
    placed: BTreeMap<u16, Vec<u8>>,
    /// (command id, offset named in the H2CData, offset of the bytes sent, length).
    h2c: Vec<(u16, u32, u32, u32)>,
    /// Set when the queue refused something: nothing may happen after.
    stopped: bool,
    violations: Vec<String>,
    /// Batched header receive with a staging buffer of this many bytes
    /// (`proto::batch`); 0: one receive per header, as `recv_pass`.
    stage: usize,
    /// Bytes of the staging buffer a payload's last receive also fills
    /// (`StageIo::recv_data_and_tail`; 0: payloads are received alone).
    tail: usize,
    /// Stream bytes received but still in the staging buffer when the
    /// last pass ended (it must be 0 unless the queue stopped).
    staged_left: usize,
    /// Receives of the stream.
    calls: usize,
    /// Whether the last receive gave less than it asked for or `-EAGAIN`:
    /// only then may a pass end as drained (else bytes wait in the socket
    /// that no `data_ready` will announce again).
    last_short: bool,
}

impl Host {
    fn new(reqs: &[ReqSpec], stream: Vec<u8>, chunks: Vec<usize>, instant_send: bool, send_side_busy: bool) -> Self {
        let live = reqs
            .iter()
            .map(|r| {
                // The send side sent the capsule (Waiting if an R2T is
                // due, else Done), or still owns the request (Sending).
                let slot = match (send_side_busy, r.kind) {
                    (true, _) => Slot::Sending,
                    (false, Kind::WriteR2T) if r.len > 0 => Slot::Waiting,
                    (false, _) => Slot::Done,
                };
                let buf = vec![0; if r.kind == Kind::Read { r.len as usize } else { 0 }];
                (r.cid, HReq { spec: *r, buf, recvd: 0, recv_status: 0, completed: false, completion_arrived: false, slot, sent: 0, r2t: None, held: (0, 0) })
            })
            .collect();
        Self {
            stream,
            pos: 0,
            chunks,
            next_chunk: 0,
            live,
            declared: reqs.iter().map(|r| (r.cid, (r.kind, r.len))).collect(),
            current: None,
            to_send: Vec::new(),
            owned: if send_side_busy { reqs.iter().map(|r| r.cid).collect() } else { Vec::new() },
            instant_send,
            completions: Vec::new(),
            good_reads: BTreeMap::new(),
            placed: BTreeMap::new(),
            h2c: Vec::new(),
            stopped: false,
            violations: Vec::new(),
            stage: 0,
            tail: 0,
            staged_left: 0,
            calls: 0,
            last_short: false,
        }
    }

    fn violation(&mut self, s: String) {
        self.violations.push(s);
    }

    fn allowance(&mut self, want: usize) -> Result<usize, i32> {
        if self.stopped {
            self.violation(format!("receive after the queue stopped (at byte {})", self.pos));
        }
        self.calls += 1;
        self.last_short = true;
        let left = self.stream.len() - self.pos;
        if left == 0 {
            return Err(errno::EAGAIN);
        }
        let limit = match self.chunks.get(self.next_chunk) {
            Some(0) => {
                self.next_chunk += 1;
                return Err(errno::EAGAIN);
            }
            Some(k) => {
                self.next_chunk += 1;
                *k
            }
            None => usize::MAX,
        };
        let n = want.min(left).min(limit);
        // A socket gives less than asked only when it holds no more (a
        // chunk here is bytes that had not arrived yet).
        self.last_short = n < want;
        Ok(n)
    }

    /// Ends a request: the completion is delivered, the request leaves
    /// flight (its command id names nothing from here).
    fn end(&mut self, cid: u16, status: u16, result: u64) {
        let Some(r) = self.live.remove(&cid) else {
            self.violation(format!("completion of {cid:#x}, not in flight"));
            return;
        };
        if matches!(r.slot, Slot::Sending | Slot::Received) {
            self.violation(format!("{cid:#x} completed while the send side owns it"));
        }
        if self.completions.iter().any(|c| c.0 == cid) {
            self.violation(format!("{cid:#x} completed twice"));
        }
        if r.spec.kind == Kind::Read && !is_error(status) && r.recvd != r.spec.len {
            self.violation(format!("read {cid:#x} succeeded with {} of {} bytes", r.recvd, r.spec.len));
        }
        if r.spec.kind == Kind::WriteR2T && !is_error(status) && r.sent != r.spec.len {
            self.violation(format!("write {cid:#x} succeeded with {} of {} bytes sent", r.sent, r.spec.len));
        }
        if r.spec.kind == Kind::Read && !is_error(status) {
            self.good_reads.insert(cid, r.buf);
        }
        self.completions.push((cid, status, result));
    }

    /// `Queue::slot_event`.
    fn slot_event(&mut self, cid: u16, ev: SlotEvent) -> Result<SlotAction, i32> {
        let r = self.live.get_mut(&cid).ok_or(errno::EINVAL)?;
        let (slot, action) = transition(r.slot, ev, cid).map_err(|e| e.errno())?;
        r.slot = slot;
        Ok(action)
    }

    /// `Queue::respond` / `complete_or_hold`.
    fn respond(&mut self, cid: u16, status: u16, result: u64) -> Result<(), i32> {
        if let Some(r) = self.live.get_mut(&cid) {
            r.completed = true;
            r.completion_arrived = true;
            r.held = (status, result);
        }
        match self.slot_event(cid, SlotEvent::ResponseArrived)? {
            SlotAction::Hold => {}
            SlotAction::CompleteEarly => self.end(cid, completion::early_write(status), result),
            _ => self.end(cid, status, result),
        }
        Ok(())
    }

    /// `Queue::complete_held`.
    fn complete_held(&mut self, cid: u16, early: bool) {
        let Some(r) = self.live.get(&cid) else { return };
        let (mut status, result) = r.held;
        if early {
            status = completion::early_write(status);
        }
        self.end(cid, status, result);
    }

    /// `Queue::start_r2t`: the send side checks the R2T against what it
    /// sent, then sends its data (here at once, all of it).
    fn start_r2t(&mut self, cid: u16) -> Result<(), i32> {
        let r = self.live.get_mut(&cid).ok_or(errno::EINVAL)?;
        let t = r.r2t.take().ok_or(errno::EINVAL)?;
        let total = r.write_len();
        check_r2t(&t, r.sent, total).map_err(|e| e.errno())?;
        // H2CData names the R2T's offset; the bytes come from the
        // request's data iterator, which stands at `data_sent`.
        self.h2c.push((cid, t.offset, r.sent, t.length));
        r.sent += t.length;
        Ok(())
    }

    /// `Queue::request_sent`, after the send side sent what it had.
    fn request_sent(&mut self, cid: u16) -> Result<(), i32> {
        loop {
            let r = self.live.get(&cid).ok_or(errno::EINVAL)?;
            let more_due = r.spec.kind == Kind::WriteR2T && r.sent < r.spec.len;
            match self.slot_event(cid, SlotEvent::SendDone { more_due })? {
                SlotAction::SendH2C => self.start_r2t(cid)?,
                SlotAction::Complete => {
                    self.complete_held(cid, more_due);
                    return Ok(());
                }
                _ => return Ok(()),
            }
        }
    }

    /// `Queue::take_new_requests` and the sending of one request.
    fn take(&mut self, cid: u16) -> Result<(), i32> {
        match self.slot_event(cid, SlotEvent::Taken)? {
            SlotAction::SendH2C => {
                self.start_r2t(cid)?;
                self.request_sent(cid)
            }
            SlotAction::Complete => {
                self.complete_held(cid, true);
                Ok(())
            }
            _ => self.request_sent(cid),
        }
    }

    /// io_work's send side after a receive pass: the requests the receive
    /// side queued, and those whose capsule it still had to send.
    fn send_side(&mut self) -> Result<(), i32> {
        // The capsules it was sending: done now (an R2T or a completion
        // that came meanwhile is served or delivered here).
        for cid in core::mem::take(&mut self.owned) {
            if self.live.contains_key(&cid) {
                self.request_sent(cid)?;
            }
        }
        for cid in core::mem::take(&mut self.to_send) {
            if self.live.contains_key(&cid) {
                self.take(cid)?;
            }
        }
        Ok(())
    }

    fn event_inner(&mut self, ev: Event) -> Result<bool, i32> {
        match ev {
            Event::Response(cqe) => {
                let cid = cqe.command_id;
                let r = self.live.get(&cid).ok_or(errno::EPROTO)?;
                let status = completion::complete(r.recv_status, cqe.status, r.to_host(), r.recvd).status();
                self.respond(cid, status, cqe.result)?;
                Ok(true)
            }
            Event::DataBegin(d) => {
                let r = self.live.get(&d.command_id).ok_or(errno::EPROTO)?;
                check_c2h_data(&d, r.recvd, r.to_host(), r.completed).map_err(|e| e.errno())?;
                self.current = Some(d.command_id);
                Ok(false)
            }
            Event::DataEnd { pdu: d, digest_ok } => {
                let cid = self.current.take().ok_or(errno::EINVAL)?;
                if cid != d.command_id {
                    self.violation(format!("data end for {:#x} in the phase of {cid:#x}", d.command_id));
                }
                let r = self.live.get_mut(&cid).ok_or(errno::EINVAL)?;
                if !digest_ok {
                    r.recv_status = STATUS_DATA_XFER_ERROR;
                }
                if d.success {
                    let status = completion::complete(r.recv_status, 0, r.to_host(), r.recvd).status();
                    self.respond(cid, status, 0)?;
                    return Ok(true);
                }
                Ok(false)
            }
            Event::R2T(t) => {
                let cid = t.command_id;
                let r = self.live.get_mut(&cid).ok_or(errno::EPROTO)?;
                r.r2t = Some(t);
                if self.slot_event(cid, SlotEvent::R2TArrived)? == SlotAction::QueueForSend {
                    if self.instant_send {
                        self.take(cid)?;
                    } else {
                        self.to_send.push(cid);
                    }
                }
                Ok(false)
            }
        }
    }
}

impl QueueIo for Host {
    type Crc = SoftCrc32c;
    fn crc(&self) -> &SoftCrc32c {
        &SoftCrc32c
    }

    fn recv_buf(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let n = self.allowance(buf.len())?;
        buf[..n].copy_from_slice(&self.stream[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    fn recv_data(&mut self, len: usize, crc: Option<&mut u32>) -> Result<usize, i32> {
        let n = self.allowance(len)?;
        let bytes = self.stream[self.pos..self.pos + n].to_vec();
        self.place(&bytes)?;
        if let Some(c) = crc {
            *c = SoftCrc32c.update(*c, &bytes);
        }
        self.pos += n;
        Ok(n)
    }

    fn event(&mut self, ev: Event) -> Result<bool, i32> {
        if self.stopped {
            self.violation(format!("event {ev:?} after the queue stopped"));
        }
        let r = self.event_inner(ev);
        if r.is_err() {
            self.stopped = true;
        }
        r
    }

    fn pass_budget(&self) -> usize {
        usize::MAX
    }
}

impl StageIo for Host {
    fn copy_data(&mut self, bytes: &[u8]) -> Result<(), i32> {
        self.place(bytes)
    }
    // Both ways, by the staging size: passes may end on a short fill.
    fn short_fill_drains(&self) -> bool {
        self.stage % 2 == 1
    }
    // As `RecvCtx`: the payload's end and what follows in one receive,
    // except where the queue would refuse (here: payload ends that are 3
    // mod 4 bytes long stand for a payload going on in another bio).
    fn recv_data_and_tail(&mut self, len: usize, crc: Option<&mut u32>, tail: &mut [u8]) -> Option<Result<(usize, usize), i32>> {
        if len % 4 == 3 {
            return None;
        }
        Some(self.recv_payload_and_tail(len, crc, tail))
    }
}

impl Host {
    fn recv_payload_and_tail(&mut self, len: usize, crc: Option<&mut u32>, tail: &mut [u8]) -> Result<(usize, usize), i32> {
        let n = self.allowance(len + tail.len())?;
        let p = n.min(len);
        let bytes = self.stream[self.pos..self.pos + p].to_vec();
        self.place(&bytes)?;
        if let Some(c) = crc {
            *c = SoftCrc32c.update(*c, &bytes);
        }
        let t = n - p;
        tail[..t].copy_from_slice(&self.stream[self.pos + p..self.pos + n]);
        self.pos += n;
        Ok((p, t))
    }

    /// Payload bytes into the data phase's request, with the queue's
    /// checks (`RecvCtx::recv_data` / `copy_data`: no phase or no room is
    /// an error) and the test's own (the bytes go only into a read in
    /// flight, inside its buffer, before its completion arrived).
    fn place(&mut self, bytes: &[u8]) -> Result<(), i32> {
        let n = bytes.len();
        let Some(cid) = self.current else {
            self.violation(format!("payload with no data phase at byte {}", self.pos));
            return Err(errno::EINVAL);
        };
        let Some(r) = self.live.get_mut(&cid) else {
            self.violation(format!("payload for {cid:#x}, not in flight"));
            return Err(errno::EINVAL);
        };
        let at = r.recvd as usize;
        if r.completion_arrived {
            // The send side may end it at any moment: its pages are not ours.
            self.violations.push(format!("{n} bytes into {cid:#x} after its completion arrived"));
        }
        if r.spec.kind != Kind::Read || at + n > r.buf.len() {
            let (kind, declared) = self.declared.get(&cid).copied().unwrap_or((Kind::NoTransfer, 0));
            self.violation(format!("{n} bytes at {at} into {cid:#x} ({kind:?} of {declared})"));
            return Err(errno::EIO);
        }
        r.buf[at..at + n].copy_from_slice(bytes);
        r.recvd += n as u32;
        self.placed.entry(cid).or_default().extend_from_slice(bytes);
        Ok(())
    }
}

/// Runs receive passes (and, unless it is immediate, the send side after
/// each) until the stream is consumed or the queue stops, as io_work does.
fn run(h: &mut Host, d: Digests) -> (Result<(), RecvError>, RecvState) {
    let mut m = RecvMachine::new(d);
    let mut s = Staging::with_tail(vec![0u8; h.stage], h.tail);
    for _ in 0..100_000 {
        let r = if h.stage > 0 { recv_pass_batched(&mut m, &mut s, h) } else { recv_pass(&mut m, h) };
        h.staged_left = s.pending();
        if r.is_ok() && h.staged_left != 0 {
            h.violation(format!("a pass ended with {} bytes staged", h.staged_left));
        }
        match r {
            Err(e) => {
                h.stopped = true;
                return (Err(e), m.state());
            }
            Ok(end) => {
                if end.drained && !h.last_short {
                    h.violation(format!("a pass ended drained after a full receive (at byte {})", h.pos));
                }
                if !h.instant_send {
                    if let Err(e) = h.send_side() {
                        h.stopped = true;
                        return (Err(RecvError::Rejected(e)), m.state());
                    }
                }
                if h.pos == h.stream.len() && end.drained && h.to_send.is_empty() {
                    return (Ok(()), m.state());
                }
            }
        }
    }
    h.violation(String::from("passes never drained the stream"));
    (Ok(()), m.state())
}

/// Checks what only the bytes placed can tell: each request's bytes form
/// a prefix of its buffer, and the buffer holds exactly them.
fn check_buffers(h: &Host) -> Result<(), TestCaseError> {
    for (cid, r) in &h.live {
        let placed = h.placed.get(cid).map_or(0, |p| p.len());
        prop_assert_eq!(placed, r.recvd as usize, "request {:#x}", cid);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Generators.

/// One request's script: a kind selector, a length, how its data is cut,
/// how it ends, a status and which chunk (if any) gets a bad data digest.
#[derive(Clone, Debug)]
struct ReqGen {
    kind: u8,
    len: u32,
    cuts: Vec<u32>,
    end: u8,
    status: u16,
    bad_chunk: Option<usize>,
    ttag: u16,
}

fn req_gen() -> impl Strategy<Value = ReqGen> {
    (
        0u8..6,
        prop_oneof![4 => 1u32..600, 1 => 600u32..5000],
        prop::collection::vec(any::<u32>(), 0..4),
        0u8..8,
        prop_oneof![Just(0u16), Just(1u16), Just(0x4004u16), Just(0x0002u16 << 1), any::<u16>()],
        prop::option::weighted(0.15, 0usize..4),
        any::<u16>(),
    )
        .prop_map(|(kind, len, cuts, end, status, bad_chunk, ttag)| ReqGen { kind, len, cuts, end, status, bad_chunk, ttag })
}

/// Split points of [0, len): sorted, unique, inside.
fn pieces(len: u32, cuts: &[u32]) -> Vec<(u32, u32)> {
    let mut p: Vec<u32> = cuts.iter().map(|c| 1 + c % len.max(1)).filter(|&c| c < len).collect();
    p.push(0);
    p.push(len);
    p.sort_unstable();
    p.dedup();
    p.windows(2).map(|w| (w[0], w[1] - w[0])).collect()
}

/// A valid request and the PDUs a correct (if sometimes failing) target
/// sends for it, in order.
fn script(cid: u16, g: &ReqGen) -> (ReqSpec, Vec<Pdu>) {
    let kind = match g.kind {
        0..=2 => Kind::Read,
        3 | 4 => Kind::WriteR2T,
        _ => Kind::NoTransfer,
    };
    let len = if kind == Kind::NoTransfer { 0 } else { g.len };
    let spec = ReqSpec { cid, kind, len };
    let result = 0x1000_0000_0000 | u64::from(cid);
    let ok_status = g.status & 1; // success, phase bit either way
    let err_status = if is_error(g.status) { g.status } else { 0x4004 };
    let mut v = Vec::new();
    match kind {
        Kind::Read => {
            let ps = pieces(len, &g.cuts);
            let n = ps.len();
            // How it ends: 0-2 Response, 3-4 SUCCESS flag, 5 error status
            // after all data, 6 Response after only part of the data
            // (short read), 7 error status before any data.
            let (sent, rsp) = match g.end {
                0..=2 => (n, Some(ok_status)),
                3 | 4 => (n, None),
                5 => (n, Some(err_status)),
                6 => (n - 1, Some(ok_status)),
                _ => (0, Some(err_status)),
            };
            for (i, &(off, l)) in ps.iter().enumerate().take(sent) {
                let last = i + 1 == n;
                let success = last && rsp.is_none();
                let bad_digest = g.bad_chunk == Some(i);
                v.push(Pdu::Data { cid, offset: off, payload: read_bytes(cid, off, l), last, success, bad_digest });
            }
            if let Some(s) = rsp {
                v.push(Pdu::Rsp { cid, status: s, result });
            }
        }
        Kind::WriteR2T => {
            let ps = pieces(len, &g.cuts);
            // 6-7: the target fails the write after part of its R2Ts.
            let (asked, status) = if g.end >= 6 { (ps.len() / 2, err_status) } else { (ps.len(), ok_status) };
            for &(off, l) in ps.iter().take(asked) {
                v.push(Pdu::R2T { cid, ttag: g.ttag, offset: off, length: l });
            }
            v.push(Pdu::Rsp { cid, status, result });
        }
        Kind::NoTransfer => {
            let status = if g.end >= 6 { err_status } else { ok_status };
            v.push(Pdu::Rsp { cid, status, result });
        }
    }
    (spec, v)
}

/// Merges per-request scripts: `order` picks, at each step, which
/// request's next PDU goes next (each request's own order is kept).
fn interleave(scripts: Vec<Vec<Pdu>>, order: &[usize]) -> Vec<Pdu> {
    let mut queues: Vec<std::collections::VecDeque<Pdu>> = scripts.into_iter().map(Into::into).collect();
    let mut out = Vec::new();
    let mut k = 0;
    loop {
        let open: Vec<usize> = (0..queues.len()).filter(|&i| !queues[i].is_empty()).collect();
        if open.is_empty() {
            return out;
        }
        let pick = open[order.get(k).copied().unwrap_or(0) % open.len()];
        k += 1;
        if let Some(p) = queues[pick].pop_front() {
            out.push(p);
        }
    }
}

/// A generated case: requests, the target's PDUs, digests and fragmentation.
#[derive(Clone, Debug)]
struct Case {
    reqs: Vec<ReqSpec>,
    pdus: Vec<Pdu>,
    digests: Digests,
    chunks: Vec<usize>,
    /// Staging buffer size (0: unbatched receive).
    stage: usize,
    /// Of it, what a payload's last receive also fills.
    tail: usize,
}

/// Staging buffer sizes: unbatched, smaller than a header, around a few
/// PDUs, and larger than most payloads.
fn stage() -> impl Strategy<Value = usize> {
    prop_oneof![2 => Just(0usize), 1 => 1usize..30, 2 => 30usize..300, 2 => 300usize..5000]
}

/// Tails: none, shorter than a header, a few headers, larger than the
/// buffer (capped to it).
fn tail() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 1 => 1usize..30, 2 => 30usize..300, 1 => 300usize..6000]
}

fn chunks() -> impl Strategy<Value = Vec<usize>> {
    // 0: -EAGAIN between two receives.
    prop::collection::vec(prop_oneof![1 => Just(0usize), 6 => 1usize..48, 2 => 48usize..3000], 0..40)
}

fn valid_case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(req_gen(), 1..6),
        prop::collection::vec(any::<usize>(), 0..40),
        any::<bool>(),
        any::<bool>(),
        chunks(),
        any::<u16>(),
        (stage(), tail()),
    )
        .prop_map(|(gens, order, header, data, chunks, base, (stage, tail))| {
            // Command ids as nvme-core makes them: tag plus a generation.
            let base = base & 0xf000;
            let (reqs, scripts): (Vec<_>, Vec<_>) =
                gens.iter().enumerate().map(|(i, g)| script(base | (i as u16 * 3 + 1), g)).unzip();
            Case { reqs, pdus: interleave(scripts, &order), digests: Digests { header, data }, chunks, stage, tail }
        })
}

/// A change to the PDU list that the model still predicts exactly.
#[derive(Clone, Debug)]
enum PduMut {
    /// The PDU names another command id (`to` picks one in the case, or a
    /// stale generation of one, or one never sent).
    Cid { at: usize, to: u16 },
    /// C2HData or R2T offset moved by `delta` (or set, when `set`).
    Offset { at: usize, delta: i32, set: Option<u32> },
    /// C2HData payload cut or extended; R2T length changed.
    Length { at: usize, delta: i32 },
    /// C2HData LAST/SUCCESS flags replaced.
    Flags { at: usize, last: bool, success: bool },
    /// Response status replaced.
    Status { at: usize, status: u16 },
    Duplicate { at: usize },
    Drop { at: usize },
    Swap { a: usize, b: usize },
    /// A PDU moved to another place.
    Move { from: usize, to: usize },
    /// The `at`-th Response moved before the first PDU of its command
    /// (a completion before the data or the R2Ts).
    RspFirst { at: usize },
}

fn pdu_mut() -> impl Strategy<Value = PduMut> {
    let at = any::<usize>();
    prop_oneof![
        (at, any::<u16>()).prop_map(|(at, to)| PduMut::Cid { at, to }),
        (at, -600i32..600, prop::option::weighted(0.2, any::<u32>()))
            .prop_map(|(at, delta, set)| PduMut::Offset { at, delta, set }),
        (at, -600i32..600).prop_map(|(at, delta)| PduMut::Length { at, delta }),
        (at, any::<bool>(), any::<bool>()).prop_map(|(at, last, success)| PduMut::Flags { at, last, success }),
        (at, prop_oneof![Just(0u16), Just(0x4004u16), any::<u16>()]).prop_map(|(at, status)| PduMut::Status { at, status }),
        at.prop_map(|at| PduMut::Duplicate { at }),
        at.prop_map(|at| PduMut::Drop { at }),
        (at, at).prop_map(|(a, b)| PduMut::Swap { a, b }),
        (at, at).prop_map(|(from, to)| PduMut::Move { from, to }),
        at.prop_map(|at| PduMut::RspFirst { at }),
    ]
}

fn apply_pdu_mut(case: &mut Case, m: &PduMut) {
    let n = case.pdus.len();
    if n == 0 {
        return;
    }
    let cids: Vec<u16> = case.reqs.iter().map(|r| r.cid).collect();
    match *m {
        PduMut::Cid { at, to } => {
            let pick = match to % 4 {
                0 | 1 => cids[usize::from(to >> 2) % cids.len()],
                2 => cids[usize::from(to >> 2) % cids.len()].wrapping_sub(0x1000),
                _ => 0x0f00 | (to & 0xff),
            };
            match &mut case.pdus[at % n] {
                Pdu::Rsp { cid, .. } | Pdu::Data { cid, .. } | Pdu::R2T { cid, .. } => *cid = pick,
            }
        }
        PduMut::Offset { at, delta, set } => match &mut case.pdus[at % n] {
            Pdu::Data { offset, .. } | Pdu::R2T { offset, .. } => {
                *offset = set.unwrap_or_else(|| offset.wrapping_add_signed(delta));
            }
            Pdu::Rsp { .. } => {}
        },
        PduMut::Length { at, delta } => match &mut case.pdus[at % n] {
            Pdu::Data { cid, offset, payload, .. } => {
                let l = (payload.len() as i64 + i64::from(delta)).clamp(0, 8192) as u32;
                *payload = read_bytes(*cid, *offset, l);
                if payload.len() < l as usize {
                    // The offset was near u32::MAX: pad.
                    payload.resize(l as usize, 0xee);
                }
            }
            Pdu::R2T { length, .. } => *length = length.wrapping_add_signed(delta),
            Pdu::Rsp { .. } => {}
        },
        PduMut::Flags { at, last: l, success: s } => {
            if let Pdu::Data { last, success, .. } = &mut case.pdus[at % n] {
                *last = l;
                *success = s;
            }
        }
        PduMut::Status { at, status: st } => {
            if let Pdu::Rsp { status, .. } = &mut case.pdus[at % n] {
                *status = st;
            }
        }
        PduMut::Duplicate { at } => {
            let p = case.pdus[at % n].clone();
            case.pdus.insert(at % n, p);
        }
        PduMut::Drop { at } => {
            case.pdus.remove(at % n);
        }
        PduMut::Swap { a, b } => case.pdus.swap(a % n, b % n),
        PduMut::Move { from, to } => {
            let p = case.pdus.remove(from % n);
            case.pdus.insert(to % n, p);
        }
        PduMut::RspFirst { at } => {
            let rsps: Vec<usize> = (0..n).filter(|&i| matches!(case.pdus[i], Pdu::Rsp { .. })).collect();
            if rsps.is_empty() {
                return;
            }
            let i = rsps[at % rsps.len()];
            let cid_of = |p: &Pdu| match p {
                Pdu::Rsp { cid, .. } | Pdu::Data { cid, .. } | Pdu::R2T { cid, .. } => *cid,
            };
            let cid = cid_of(&case.pdus[i]);
            let first = case.pdus.iter().position(|p| cid_of(p) == cid).unwrap_or(i);
            let p = case.pdus.remove(i);
            case.pdus.insert(first, p);
        }
    }
}

/// A change to the bytes, checked against invariants only.
#[derive(Clone, Debug)]
enum ByteMut {
    /// Flip bit `bit` of byte `at`.
    Flip { at: usize, bit: u8 },
    /// Overwrite a header field of the PDU `pdu`: the field's offset in
    /// the header and its width (type, flags, hlen, pdo, plen, cid,
    /// offset, length), with `value` or an interesting one.
    Field { pdu: usize, field: u8, value: u32 },
    /// Cut the stream at `at`.
    Truncate { at: usize },
    /// Repeat the bytes of a PDU, or of any range.
    Repeat { pdu: usize, len: Option<usize> },
    /// Swap the bytes of two PDUs.
    Swap { a: usize, b: usize },
}

fn byte_mut() -> impl Strategy<Value = ByteMut> {
    prop_oneof![
        1 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| ByteMut::Flip { at, bit }),
        3 => (any::<usize>(), 0u8..8, prop_oneof![Just(0u32), Just(24), Just(28), Just(u32::MAX), 0u32..70000, any::<u32>()])
            .prop_map(|(pdu, field, value)| ByteMut::Field { pdu, field, value }),
        1 => any::<usize>().prop_map(|at| ByteMut::Truncate { at }),
        1 => (any::<usize>(), prop::option::of(1usize..200)).prop_map(|(pdu, len)| ByteMut::Repeat { pdu, len }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| ByteMut::Swap { a, b }),
    ]
}

fn apply_byte_mut(v: &mut Vec<u8>, starts: &[usize], m: &ByteMut) {
    if v.is_empty() || starts.is_empty() {
        return;
    }
    // A PDU's bytes as they were encoded, clamped to what is left.
    let range = |i: usize, v: &Vec<u8>| {
        let i = i % starts.len();
        let s = starts[i].min(v.len());
        (s, starts.get(i + 1).copied().unwrap_or(v.len()).clamp(s, v.len()))
    };
    match *m {
        ByteMut::Flip { at, bit } => {
            let n = v.len();
            v[at % n] ^= 1 << bit;
        }
        ByteMut::Field { pdu, field, value } => {
            let (s, _) = range(pdu, v);
            // (offset in the header, width)
            let (off, w) = [(0, 1), (1, 1), (2, 1), (3, 1), (4, 4), (8, 2), (12, 4), (16, 4)][usize::from(field % 8)];
            for k in 0..w {
                if let Some(b) = v.get_mut(s + off + k) {
                    *b = (value >> (8 * k)) as u8;
                }
            }
        }
        ByteMut::Truncate { at } => {
            let n = v.len();
            v.truncate(at % n);
        }
        ByteMut::Repeat { pdu, len } => {
            let (s, e) = range(pdu, v);
            let e = len.map_or(e, |l| (s + l).min(v.len()));
            let piece = v[s..e].to_vec();
            v.splice(e..e, piece);
        }
        ByteMut::Swap { a, b } => {
            let (a, b) = (range(a, v), range(b, v));
            let (first, second) = if a.0 <= b.0 { (a, b) } else { (b, a) };
            if first.1 <= second.0 {
                let mut out = v[..first.0].to_vec();
                out.extend_from_slice(&v[second.0..second.1]);
                out.extend_from_slice(&v[first.1..second.0]);
                out.extend_from_slice(&v[first.0..first.1]);
                out.extend_from_slice(&v[second.1..]);
                *v = out;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Properties.

/// Runs `case` through the host with an immediate send side and compares
/// everything with the model.
fn check_against_model(case: &Case) -> Result<(), TestCaseError> {
    let want = model_for(&case.reqs, &case.pdus, case.digests);
    let (stream, starts) = encode(&case.pdus, case.digests);
    let mut h = Host::new(&case.reqs, stream, case.chunks.clone(), true, false);
    h.stage = case.stage;
    h.tail = case.tail;
    let (res, state) = run(&mut h, case.digests);
    prop_assert!(h.violations.is_empty(), "violations: {:?}", h.violations);
    prop_assert_eq!(&h.completions, &want.completions, "completions");
    prop_assert_eq!(&h.placed, &want.placed, "bytes placed");
    let h2c: Vec<(u16, u32, u32)> = h.h2c.iter().map(|&(c, off, _, len)| (c, off, len)).collect();
    prop_assert_eq!(&h2c, &want.h2c, "H2CData sent");
    for &(cid, named, from, len) in &h.h2c {
        prop_assert_eq!(named, from, "H2CData of {:#x} names offset {} but carries the bytes at {} ({} bytes)", cid, named, from, len);
    }
    check_buffers(&h)?;
    match want.stop {
        None => {
            prop_assert_eq!(res, Ok(()));
            prop_assert_eq!(state, RecvState::Header { got: 0 }, "stream ended mid-PDU");
        }
        Some((i, why)) => {
            let e = match res {
                Err(e) => e,
                Ok(()) => return Err(TestCaseError::fail(format!("the model stops at PDU {i} ({why:?}), the host went on"))),
            };
            match why {
                Stop::Header => prop_assert!(matches!(e, RecvError::Proto(_)), "{:?}", e),
                Stop::Refused => prop_assert_eq!(e, RecvError::Rejected(errno::EPROTO)),
            }
            // It stopped on that PDU: its header was read, nothing after it.
            let hdr_end = starts[i] + case.digests.recv_hdr_len();
            // Batched: the machine stopped there; the rest of the staging
            // buffer's fill was never looked at.
            prop_assert_eq!(h.pos - h.staged_left, hdr_end, "stopped at byte {} instead of after the header of PDU {}", h.pos, i);
        }
    }
    Ok(())
}

/// Invariants that hold for any input. With both digests, any change to a
/// header or a payload is caught, so a read that succeeds holds exactly
/// the target's bytes.
fn check_invariants(reqs: &[ReqSpec], h: &Host, res: &Result<(), RecvError>, d: Digests) -> Result<(), TestCaseError> {
    if d.header && d.data {
        for (cid, buf) in &h.good_reads {
            prop_assert!(*buf == read_bytes(*cid, 0, buf.len() as u32), "read {:#x} succeeded with other bytes", cid);
        }
    }
    prop_assert!(h.violations.is_empty(), "violations: {:?}", h.violations);
    let mut seen = BTreeSet::new();
    for &(cid, _, _) in &h.completions {
        prop_assert!(seen.insert(cid), "{:#x} completed twice", cid);
        prop_assert!(reqs.iter().any(|r| r.cid == cid), "{:#x} completed, never sent", cid);
    }
    for (cid, bytes) in &h.placed {
        let r = reqs.iter().find(|r| r.cid == *cid);
        prop_assert!(matches!(r, Some(r) if r.kind == Kind::Read && bytes.len() <= r.len as usize), "{:#x}: {} bytes", cid, bytes.len());
    }
    for &(cid, named, from, len) in &h.h2c {
        prop_assert_eq!(named, from, "H2CData of {:#x} names offset {} but carries the bytes at {} ({} bytes)", cid, named, from, len);
    }
    check_buffers(h)?;
    if res.is_err() {
        prop_assert!(h.stopped);
    }
    Ok(())
}

fn config() -> ProptestConfig {
    // PROPTEST_CASES overrides (proptest reads it into the default).
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    /// Valid streams: the host's completions (id, status, once each), the
    /// bytes it placed and the H2CData it sent equal the model's exactly,
    /// however the stream is fragmented.
    #[test]
    fn valid_streams_match_the_model(case in valid_case()) {
        check_against_model(&case)?;
    }

    /// The same valid stream gives the same result in one piece and in
    /// any fragmentation (the model is blind to fragments; this pins the
    /// machine to it even where the model would be wrong).
    #[test]
    fn fragmentation_changes_nothing(case in valid_case()) {
        let (stream, _) = encode(&case.pdus, case.digests);
        let mut whole = Host::new(&case.reqs, stream.clone(), vec![], true, false);
        let mut split = Host::new(&case.reqs, stream, case.chunks.clone(), true, false);
        split.stage = case.stage;
        split.tail = case.tail;
        let (a, _) = run(&mut whole, case.digests);
        let (b, _) = run(&mut split, case.digests);
        prop_assert_eq!(a, b);
        prop_assert_eq!(&whole.completions, &split.completions);
        prop_assert_eq!(&whole.placed, &split.placed);
    }

    /// Batched header receive changes nothing but the number of receives:
    /// the same stream, in the same fragments, gives the same result,
    /// completions and bytes placed unbatched and with any staging buffer
    /// size, and with a buffer of a header or more never more receives.
    #[test]
    fn batching_changes_nothing_but_the_calls(case in valid_case(), size in 1usize..5000) {
        let (stream, _) = encode(&case.pdus, case.digests);
        let mut plain = Host::new(&case.reqs, stream.clone(), case.chunks.clone(), true, false);
        let mut batched = Host::new(&case.reqs, stream, case.chunks.clone(), true, false);
        batched.stage = size;
        let (a, _) = run(&mut plain, case.digests);
        let (b, _) = run(&mut batched, case.digests);
        prop_assert!(batched.violations.is_empty(), "violations: {:?}", batched.violations);
        prop_assert_eq!(a, b);
        prop_assert_eq!(&plain.completions, &batched.completions);
        prop_assert_eq!(&plain.placed, &batched.placed);
        if case.chunks.is_empty() && size >= case.digests.recv_hdr_len() && a.is_ok() {
            prop_assert!(batched.calls <= plain.calls, "batched {} receives, unbatched {}", batched.calls, plain.calls);
        }
    }

    /// Receiving what follows a payload with the payload's end changes
    /// nothing but the number of receives: with any staging buffer and any
    /// tail, the same result, completions and bytes placed as the same
    /// buffer without a tail, and, unfragmented, never more receives.
    #[test]
    fn payload_tails_change_nothing_but_the_calls(case in valid_case(), size in 1usize..5000, tail in 1usize..5000) {
        let (stream, _) = encode(&case.pdus, case.digests);
        let mut untailed = Host::new(&case.reqs, stream.clone(), case.chunks.clone(), true, false);
        let mut tailed = Host::new(&case.reqs, stream, case.chunks.clone(), true, false);
        untailed.stage = size;
        tailed.stage = size;
        tailed.tail = tail;
        let (a, _) = run(&mut untailed, case.digests);
        let (b, _) = run(&mut tailed, case.digests);
        prop_assert!(tailed.violations.is_empty(), "violations: {:?}", tailed.violations);
        prop_assert_eq!(a, b);
        prop_assert_eq!(&untailed.completions, &tailed.completions);
        prop_assert_eq!(&untailed.placed, &tailed.placed);
        if case.chunks.is_empty() && a.is_ok() {
            prop_assert!(tailed.calls <= untailed.calls, "tailed {} receives, untailed {}", tailed.calls, untailed.calls);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Valid streams with PDU-level faults (other or stale command ids,
    /// moved offsets, changed lengths and flags, duplicated, dropped and
    /// swapped PDUs): the model still says exactly what the host does,
    /// including the PDU at which the queue stops and that nothing of it
    /// or after it is placed or completed.
    #[test]
    fn pdu_faults_match_the_model(mut case in valid_case(), muts in prop::collection::vec(pdu_mut(), 1..4)) {
        for m in &muts {
            apply_pdu_mut(&mut case, m);
        }
        check_against_model(&case)?;
    }
}

proptest! {
    #![proptest_config(config())]

    /// Byte-level faults (bit flips, header fields, truncation, repeats,
    /// swapped PDUs), with the send side immediate or after each pass, and
    /// requests whose capsule is still being sent: no byte lands outside a
    /// read's [0, len) or in a request not in flight, nothing completes
    /// twice or under the send side, a read succeeds only with all its
    /// bytes, nothing is received or handled after the queue stopped, the
    /// host sends each write's bytes at the offset it names, and nothing
    /// panics.
    #[test]
    fn hostile_bytes_keep_the_invariants(
        case in valid_case(),
        muts in prop::collection::vec(byte_mut(), 1..4),
        instant in any::<bool>(),
        busy in any::<bool>(),
    ) {
        let (mut stream, starts) = encode(&case.pdus, case.digests);
        for m in &muts {
            apply_byte_mut(&mut stream, &starts, m);
        }
        let busy = busy && !instant;
        let mut h = Host::new(&case.reqs, stream, case.chunks.clone(), instant, busy);
        h.stage = case.stage;
        h.tail = case.tail;
        let (res, _) = run(&mut h, case.digests);
        check_invariants(&case.reqs, &h, &res, case.digests)?;
    }

    /// PDU-level faults with the send side after each pass (so R2Ts and
    /// responses meet requests the send side owns): the invariants hold.
    #[test]
    fn pdu_faults_with_a_deferred_send_side_keep_the_invariants(
        mut case in valid_case(),
        muts in prop::collection::vec(pdu_mut(), 0..4),
        busy in any::<bool>(),
    ) {
        for m in &muts {
            apply_pdu_mut(&mut case, m);
        }
        let (stream, _) = encode(&case.pdus, case.digests);
        let mut h = Host::new(&case.reqs, stream, case.chunks.clone(), false, busy);
        h.stage = case.stage;
        h.tail = case.tail;
        let (res, _) = run(&mut h, case.digests);
        check_invariants(&case.reqs, &h, &res, case.digests)?;
    }
}

/// The model refuses what the host must refuse (sanity of the reference
/// itself, so a property cannot pass because both are lenient).
#[test]
fn the_model_refuses_what_it_must() {
    let r = [ReqSpec { cid: 1, kind: Kind::Read, len: 8 }, ReqSpec { cid: 2, kind: Kind::WriteR2T, len: 8 }];
    let data = |off, len, last, success| Pdu::Data {
        cid: 1,
        offset: off,
        payload: read_bytes(1, off, len),
        last,
        success,
        bad_digest: false,
    };
    let stop = |p: Vec<Pdu>| model(&r, &p).stop;
    assert_eq!(stop(vec![data(0, 9, true, true)]), Some((0, Stop::Refused)));
    assert_eq!(stop(vec![data(1, 4, false, false)]), Some((0, Stop::Refused)));
    assert_eq!(stop(vec![data(0, 4, true, false)]), Some((0, Stop::Refused)));
    assert_eq!(stop(vec![data(0, 4, false, true)]), Some((0, Stop::Header)));
    assert_eq!(stop(vec![data(0, 8, true, true), Pdu::Rsp { cid: 1, status: 0, result: 0 }]), Some((1, Stop::Refused)));
    assert_eq!(stop(vec![Pdu::R2T { cid: 1, ttag: 0, offset: 0, length: 8 }]), Some((0, Stop::Refused)));
    assert_eq!(stop(vec![Pdu::R2T { cid: 2, ttag: 0, offset: 4, length: 4 }]), Some((0, Stop::Refused)));
    assert_eq!(stop(vec![Pdu::R2T { cid: 2, ttag: 0, offset: 0, length: 9 }]), Some((0, Stop::Refused)));
    let o = model(&r, &[data(0, 4, false, false), Pdu::Rsp { cid: 1, status: 0, result: 7 }]);
    assert_eq!(o.completions, vec![(1, STATUS_DATA_XFER_ERROR, 7)]);
    let o = model(&r, &[Pdu::R2T { cid: 2, ttag: 0, offset: 0, length: 4 }, Pdu::Rsp { cid: 2, status: 0, result: 7 }]);
    assert_eq!(o.completions, vec![(2, STATUS_DATA_XFER_ERROR, 7)]);
    let _ = (RECV_HDR_LEN, ProtoError::ZeroDataLength);
}

// ---------------------------------------------------------------------------
// Findings of the properties, kept as regular tests.

/// Found by `pdu_faults_match_the_model`: an R2T for only part of a write,
/// then a success Response. The write was acknowledged with 128 of its 129
/// bytes sent (slot `Waiting`: the receive side completed at once with the
/// target's status). Now a transfer error (nvme-core retries the write).
#[test]
fn success_before_all_write_data_was_asked_for_is_a_transfer_error() {
    let reqs = [ReqSpec { cid: 1, kind: Kind::WriteR2T, len: 129 }];
    let pdus = [Pdu::R2T { cid: 1, ttag: 0, offset: 0, length: 128 }, Pdu::Rsp { cid: 1, status: 0, result: 5 }];
    for d in [Digests::default(), Digests { header: true, data: true }] {
        let (stream, _) = encode(&pdus, d);
        let mut h = Host::new(&reqs, stream, vec![], true, false);
        assert_eq!(run(&mut h, d).0, Ok(()));
        assert_eq!(h.completions, vec![(1, STATUS_DATA_XFER_ERROR, 5)]);
        assert!(h.violations.is_empty(), "{:?}", h.violations);
        assert_eq!(model(&reqs, &pdus).completions, h.completions);
    }
    // An error status stands.
    let pdus = [Pdu::R2T { cid: 1, ttag: 0, offset: 0, length: 128 }, Pdu::Rsp { cid: 1, status: 0x4004, result: 5 }];
    let (stream, _) = encode(&pdus, Digests::default());
    let mut h = Host::new(&reqs, stream, vec![], true, false);
    assert_eq!(run(&mut h, Digests::default()).0, Ok(()));
    assert_eq!(h.completions, vec![(1, 0x4004, 5)]);
}

/// Found by `pdu_faults_match_the_model` (and the H2CData invariant): an
/// R2T that skips data (offset past what was sent) was accepted, and the
/// send side sent the write's bytes at 0 in an H2CData naming offset 1.
/// Now refused like any other out-of-order R2T.
#[test]
fn an_r2t_past_the_next_unsent_byte_is_refused() {
    let reqs = [ReqSpec { cid: 7, kind: Kind::WriteR2T, len: 6 }];
    let pdus = [Pdu::R2T { cid: 7, ttag: 0, offset: 1, length: 5 }, Pdu::Rsp { cid: 7, status: 0, result: 0 }];
    let d = Digests::default();
    let (stream, _) = encode(&pdus, d);
    let mut h = Host::new(&reqs, stream.clone(), vec![], true, false);
    assert_eq!(run(&mut h, d).0, Err(RecvError::Rejected(errno::EPROTO)));
    assert!(h.h2c.is_empty(), "{:?}", h.h2c);
    assert!(h.completions.is_empty());
    // The send side after the pass: the Response came first and is held,
    // so the R2T is never served and the write fails with a transfer error.
    let mut h = Host::new(&reqs, stream, vec![], false, false);
    assert_eq!(run(&mut h, d).0, Ok(()));
    assert!(h.h2c.is_empty(), "{:?}", h.h2c);
    assert_eq!(h.completions, vec![(7, STATUS_DATA_XFER_ERROR, 0)]);
    assert!(h.violations.is_empty(), "{:?}", h.violations);
}

/// Found by `pdu_faults_with_a_deferred_send_side_keep_the_invariants`: a
/// read's Response arrives while the send side still owns the request (its
/// capsule going out; on a poll queue, between the last sendmsg() and the
/// send side's note that it is done), so it is held; then C2HData for the
/// same read. Its data phase began on the held request, the send side
/// completed the request after the pass, and the next pass went on placing
/// the payload into the pages of a request no longer in flight. Now data
/// for a command whose completion arrived is refused.
#[test]
fn data_after_a_held_response_is_refused() {
    let reqs = [ReqSpec { cid: 10, kind: Kind::Read, len: 8 }];
    let pdus = [
        Pdu::Rsp { cid: 10, status: 0, result: 0 },
        Pdu::Data { cid: 10, offset: 0, payload: read_bytes(10, 0, 8), last: true, success: false, bad_digest: false },
    ];
    for d in [Digests::default(), Digests { header: true, data: true }] {
        let (stream, _) = encode(&pdus, d);
        let h = d.recv_hdr_len();
        // The Response, the data header and 3 bytes, then -EAGAIN: the
        // pass ends mid-payload and the send side lets go of the request.
        let mut host = Host::new(&reqs, stream, vec![h, h, 3, 0], false, true);
        let (res, _) = run(&mut host, d);
        assert!(host.violations.is_empty(), "{:?}", host.violations);
        assert_eq!(res, Err(RecvError::Rejected(errno::EPROTO)));
        assert!(host.placed.is_empty(), "{:?}", host.placed);
    }
}
