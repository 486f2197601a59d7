// SPDX-License-Identifier: GPL-2.0
//! The receive machine fed by a scripted socket: the same byte stream must
//! give the same completions however it is split, and bad input must stop
//! the queue without touching a request it does not name.

use super::*;
use crate::proto::batch::{recv_pass_batched, StageCounts, StageIo, Staging};
use crate::proto::crc::SoftCrc32c;
use crate::proto::pdu::{build, check_c2h_range, Cqe, Digests, ProtoError};
use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

const ALL: [Digests; 4] = [
    Digests { header: false, data: false },
    Digests { header: true, data: false },
    Digests { header: false, data: true },
    Digests { header: true, data: true },
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Done {
    Rsp { cid: u16, status: u16, result: u64 },
    Data { cid: u16, data: Vec<u8>, transfer_error: bool },
    R2T(R2T),
}

struct Req {
    data: Vec<u8>,
    received: u32,
    transfer_error: bool,
}

/// A queue over a scripted socket. `chunks` limits each receive: `Some(k)`
/// gives at most k bytes, `None` answers -EAGAIN once; past its end every
/// receive may take what it wants.
struct Scripted {
    stream: Vec<u8>,
    pos: usize,
    chunks: Vec<Option<usize>>,
    next_chunk: usize,
    reqs: BTreeMap<u16, Req>,
    current: Option<u16>,
    log: Vec<Done>,
    budget: usize,
    /// Receives the queue made (socket calls, `-EAGAIN` included).
    calls: usize,
    /// `StageIo::short_fill_drains`.
    short_drains: bool,
}

impl Scripted {
    fn new(stream: Vec<u8>, chunks: Vec<Option<usize>>, reqs: &[(u16, u32)]) -> Self {
        Self {
            stream,
            pos: 0,
            chunks,
            next_chunk: 0,
            reqs: reqs
                .iter()
                .map(|&(cid, len)| (cid, Req { data: vec![0; len as usize], received: 0, transfer_error: false }))
                .collect(),
            current: None,
            log: Vec::new(),
            budget: usize::MAX,
            calls: 0,
            short_drains: false,
        }
    }

    /// How many bytes the next receive may return, or EAGAIN.
    fn allowance(&mut self, want: usize) -> Result<usize, i32> {
        self.calls += 1;
        let left = self.stream.len() - self.pos;
        if left == 0 {
            return Err(errno::EAGAIN);
        }
        let limit = match self.chunks.get(self.next_chunk) {
            Some(None) => {
                self.next_chunk += 1;
                return Err(errno::EAGAIN);
            }
            Some(Some(k)) => {
                self.next_chunk += 1;
                (*k).max(1)
            }
            None => usize::MAX,
        };
        Ok(want.min(left).min(limit))
    }
}

impl QueueIo for Scripted {
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
        match ev {
            Event::Response(cqe) => {
                let req = self.reqs.remove(&cqe.command_id).ok_or(errno::EPROTO)?;
                let _ = req;
                self.log.push(Done::Rsp { cid: cqe.command_id, status: cqe.status, result: cqe.result });
                Ok(true)
            }
            Event::DataBegin(d) => {
                let req = self.reqs.get(&d.command_id).ok_or(errno::EPROTO)?;
                check_c2h_range(&d, req.received, req.data.len() as u32).map_err(|e| e.errno())?;
                self.current = Some(d.command_id);
                Ok(false)
            }
            Event::DataEnd { pdu, digest_ok } => {
                self.current = None;
                let req = self.reqs.get_mut(&pdu.command_id).ok_or(errno::EPROTO)?;
                req.transfer_error |= !digest_ok;
                if pdu.success {
                    let req = self.reqs.remove(&pdu.command_id).ok_or(errno::EPROTO)?;
                    self.log.push(Done::Data { cid: pdu.command_id, data: req.data, transfer_error: req.transfer_error });
                    return Ok(true);
                }
                Ok(false)
            }
            Event::R2T(r) => {
                self.log.push(Done::R2T(r));
                Ok(false)
            }
        }
    }

    fn pass_budget(&self) -> usize {
        self.budget
    }
}

impl Scripted {
    /// Payload into the data phase's request; `EIO` past its buffer.
    fn place(&mut self, bytes: &[u8]) -> Result<(), i32> {
        let cid = self.current.ok_or(errno::EINVAL)?;
        let req = self.reqs.get_mut(&cid).ok_or(errno::EINVAL)?;
        let at = req.received as usize;
        let dst = req.data.get_mut(at..at + bytes.len()).ok_or(errno::EIO)?;
        dst.copy_from_slice(bytes);
        req.received += bytes.len() as u32;
        Ok(())
    }
}

impl StageIo for Scripted {
    fn copy_data(&mut self, bytes: &[u8]) -> Result<(), i32> {
        self.place(bytes)
    }
    fn short_fill_drains(&self) -> bool {
        self.short_drains
    }
}

/// Runs passes until the stream is consumed or a pass fails.
fn run(s: &mut Scripted, d: Digests) -> Result<u32, RecvError> {
    let mut m = RecvMachine::new(d);
    let mut completions = 0;
    for _ in 0..1_000_000 {
        let end = recv_pass(&mut m, s)?;
        completions += end.completions;
        if s.pos == s.stream.len() && end.drained {
            assert_eq!(m.state(), RecvState::Header { got: 0 }, "stream ended mid-PDU");
            return Ok(completions);
        }
    }
    unreachable_drain()
}

/// A test helper that fails the test: the stream never drained.
#[track_caller]
fn unreachable_drain() -> Result<u32, RecvError> {
    assert!(false, "passes never drained the stream");
    Err(RecvError::Socket(0))
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// A stream with every PDU kind a host receives on an I/O queue.
fn workload(d: Digests) -> (Vec<u8>, Vec<(u16, u32)>) {
    let c = SoftCrc32c;
    let mut s = Vec::new();
    let cqe = |cid, status| Cqe { result: 0xabc0 + u64::from(cid), sq_head: 1, sq_id: 1, command_id: cid, status };
    // cid 1: a write's response.
    s.extend(build::rsp(&cqe(1, 0), d, &c));
    // cid 2: a read in three C2HData PDUs, the last with SUCCESS.
    let p2 = payload(8292, 2);
    s.extend(build::c2h_data(2, 0, &p2[..4096], false, false, d, &c));
    s.extend(build::c2h_data(2, 4096, &p2[4096..8192], false, false, d, &c));
    s.extend(build::c2h_data(2, 8192, &p2[8192..], true, true, d, &c));
    // cid 3: a read completed by a response capsule with an error status.
    s.extend(build::c2h_data(3, 0, &payload(512, 3), true, false, d, &c));
    s.extend(build::rsp(&cqe(3, 0x4004), d, &c));
    // cid 4: a write asking for data.
    s.extend(build::r2t(4, 7, 0, 65536, d, &c));
    // cid 5: a one-byte read.
    s.extend(build::c2h_data(5, 0, &[0x5a], true, true, d, &c));
    (s, vec![(1, 0), (2, 8292), (3, 512), (4, 65536), (5, 1)])
}

fn expected_log(s: &mut Scripted, d: Digests) -> Vec<Done> {
    assert_eq!(run(s, d), Ok(4));
    s.log.clone()
}

/// A small deterministic generator for split schedules.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn identical_completions_however_split() {
    for d in ALL {
        let (stream, reqs) = workload(d);
        let reference = expected_log(&mut Scripted::new(stream.clone(), vec![], &reqs), d);
        assert_eq!(reference.len(), 5);
        assert!(matches!(&reference[1], Done::Data { cid: 2, data, transfer_error: false } if *data == payload(8292, 2)));

        let n = stream.len();
        let mut schedules: Vec<Vec<Option<usize>>> = vec![
            vec![Some(1); n],                                        // byte by byte
            (0..n).flat_map(|_| [Some(1), None]).collect(),          // -EAGAIN between any two bytes
            vec![Some(n)],                                           // all at once
            vec![Some(23), Some(25), Some(3), None, Some(4093), None, Some(5)], // across PDU boundaries
        ];
        let mut rng = Lcg(0x5eed ^ u64::from(d.option_byte()));
        for _ in 0..300 {
            let mut s = Vec::new();
            let mut left = n;
            while left > 0 {
                if rng.next() % 4 == 0 {
                    s.push(None);
                }
                let k = 1 + (rng.next() as usize % 200).min(left - 1);
                s.push(Some(k));
                left -= k.min(left);
            }
            schedules.push(s);
        }
        for (i, sched) in schedules.into_iter().enumerate() {
            let mut s = Scripted::new(stream.clone(), sched, &reqs);
            assert_eq!(expected_log(&mut s, d), reference, "digests {d:?}, schedule {i}");
        }
    }
}

#[test]
fn many_pdus_per_read_complete_in_one_pass() {
    let d = Digests::default();
    let (stream, reqs) = workload(d);
    let mut s = Scripted::new(stream, vec![], &reqs);
    let mut m = RecvMachine::new(d);
    assert_eq!(recv_pass(&mut m, &mut s), Ok(PassEnd { completions: 4, drained: true }));
}

#[test]
fn budget_ends_a_pass_and_the_next_goes_on() {
    let d = Digests { header: true, data: true };
    let (stream, reqs) = workload(d);
    let mut s = Scripted::new(stream, vec![], &reqs);
    let mut m = RecvMachine::new(d);
    s.budget = 0;
    assert_eq!(recv_pass(&mut m, &mut s), Ok(PassEnd { completions: 0, drained: false }));
    // A budget of one byte: each pass takes one receive and yields.
    s.budget = 1;
    let mut completions = 0;
    let mut passes = 0;
    loop {
        let end = match recv_pass(&mut m, &mut s) {
            Ok(end) => end,
            Err(e) => {
                assert!(false, "pass failed: {e:?}");
                return;
            }
        };
        completions += end.completions;
        passes += 1;
        if end.drained {
            break;
        }
    }
    assert_eq!(completions, 4);
    assert!(passes > 4, "{passes} passes");
    assert_eq!(s.log.len(), 5);
}

/// A target that never stops sending responses.
struct Streaming {
    hdr: Vec<u8>,
    at: usize,
    taken: usize,
}

impl QueueIo for Streaming {
    type Crc = SoftCrc32c;
    fn crc(&self) -> &SoftCrc32c {
        &SoftCrc32c
    }
    fn recv_buf(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        // Arbitrary short reads, never EAGAIN.
        let n = buf.len().min(self.hdr.len() - self.at).min(7);
        buf[..n].copy_from_slice(&self.hdr[self.at..self.at + n]);
        self.at = (self.at + n) % self.hdr.len();
        self.taken += n;
        Ok(n)
    }
    fn recv_data(&mut self, _: usize, _: Option<&mut u32>) -> Result<usize, i32> {
        Err(errno::EINVAL)
    }
    fn event(&mut self, _: Event) -> Result<bool, i32> {
        Ok(true)
    }
    fn pass_budget(&self) -> usize {
        PASS_BUDGET
    }
}

#[test]
fn a_streaming_target_cannot_hold_a_pass() {
    let d = Digests::default();
    let cqe = Cqe { result: 0, sq_head: 0, sq_id: 0, command_id: 1, status: 0 };
    let mut io = Streaming { hdr: build::rsp(&cqe, d, &SoftCrc32c), at: 0, taken: 0 };
    let mut m = RecvMachine::new(d);
    for _ in 0..3 {
        let before = io.taken;
        let end = recv_pass(&mut m, &mut io);
        assert!(matches!(end, Ok(PassEnd { drained: false, .. })), "{end:?}");
        let took = io.taken - before;
        assert!((PASS_BUDGET..PASS_BUDGET + 7).contains(&took), "took {took}");
    }
    // Every complete response of the 3 passes was handed on.
    assert_eq!(m.state(), RecvState::Header { got: io.at });
}

#[test]
fn corrupt_data_digest_fails_the_command_not_the_queue() {
    let c = SoftCrc32c;
    let d = Digests { header: false, data: true };
    let mut v = build::c2h_data(9, 0, &payload(100, 9), true, true, d, &c);
    let last = v.len() - 1;
    v[last] ^= 1;
    v.extend(build::c2h_data(8, 0, &payload(10, 8), true, true, d, &c));
    let mut s = Scripted::new(v, vec![], &[(9, 100), (8, 10)]);
    assert_eq!(run(&mut s, d), Ok(2));
    assert!(matches!(&s.log[0], Done::Data { cid: 9, transfer_error: true, .. }));
    assert!(matches!(&s.log[1], Done::Data { cid: 8, transfer_error: false, .. }));
}

#[test]
fn corrupt_payload_is_caught_by_the_data_digest() {
    let c = SoftCrc32c;
    let d = Digests { header: true, data: true };
    let mut v = build::c2h_data(9, 0, &payload(4096, 1), true, true, d, &c);
    v[28 + 1000] ^= 0x80;
    let mut s = Scripted::new(v, vec![Some(7); 1000], &[(9, 4096)]);
    assert_eq!(run(&mut s, d), Ok(1));
    assert!(matches!(&s.log[0], Done::Data { cid: 9, transfer_error: true, .. }));
}

fn stops_with(v: Vec<u8>, d: Digests, reqs: &[(u16, u32)]) -> RecvError {
    for sched in [vec![], vec![Some(1); v.len()]] {
        let mut s = Scripted::new(v.clone(), sched, reqs);
        let e = run(&mut s, d).expect_err("bad stream accepted");
        // Nothing named by the bad PDU was completed.
        assert!(s.log.is_empty(), "{:?}", s.log);
        let _ = e;
    }
    let mut s = Scripted::new(v, vec![], reqs);
    run(&mut s, d).expect_err("bad stream accepted")
}

#[test]
fn malformed_headers_stop_the_queue() {
    let c = SoftCrc32c;
    let d = Digests { header: true, data: false };
    let good = build::rsp(&Cqe { result: 0, sq_head: 0, sq_id: 0, command_id: 1, status: 0 }, d, &c);

    let mut bad_type = good.clone();
    bad_type[0] = 0x4;
    assert!(matches!(stops_with(bad_type, d, &[(1, 0)]), RecvError::Proto(ProtoError::UnexpectedType(4))));

    let mut bad_digest = good.clone();
    bad_digest[12] ^= 0xff;
    assert!(matches!(stops_with(bad_digest, d, &[(1, 0)]), RecvError::Proto(ProtoError::HeaderDigest { .. })));

    let mut bad_hlen = good.clone();
    bad_hlen[2] = 23;
    assert!(matches!(stops_with(bad_hlen, d, &[(1, 0)]), RecvError::Proto(ProtoError::BadHlen { .. })));

    // Unknown command id in a response and in data.
    let unknown = build::rsp(&Cqe { result: 0, sq_head: 0, sq_id: 0, command_id: 77, status: 0 }, d, &c);
    assert_eq!(stops_with(unknown, d, &[(1, 0)]), RecvError::Rejected(errno::EPROTO));
    let data = build::c2h_data(77, 0, &[1, 2, 3], true, true, d, &c);
    assert_eq!(stops_with(data, d, &[(1, 16)]), RecvError::Rejected(errno::EPROTO));

    // Data beyond the request and data out of order.
    let big = build::c2h_data(1, 0, &payload(17, 0), true, true, d, &c);
    assert_eq!(stops_with(big, d, &[(1, 16)]), RecvError::Rejected(errno::EPROTO));
    let hole = build::c2h_data(1, 8, &payload(8, 0), true, true, d, &c);
    assert_eq!(stops_with(hole, d, &[(1, 16)]), RecvError::Rejected(errno::EPROTO));

    // C2HTermReq.
    let mut term = vec![3u8, 0, 24, 0, 24, 0, 0, 0, 2, 0];
    term.resize(28, 0);
    assert!(matches!(stops_with(term, d, &[]), RecvError::Terminated(TermReq { fes: 2, .. })));
}

#[test]
fn peer_close_mid_pdu_is_an_error() {
    let d = Digests::default();
    let (mut stream, reqs) = workload(d);
    stream.truncate(30);
    let mut s = Scripted::new(stream, vec![], &reqs);
    let mut m = RecvMachine::new(d);
    // Data runs out: EAGAIN, not an error...
    assert!(recv_pass(&mut m, &mut s).is_ok());
    // ...but a receive of 0 bytes (orderly shutdown) is.
    struct Closed;
    impl QueueIo for Closed {
        type Crc = SoftCrc32c;
        fn crc(&self) -> &SoftCrc32c {
            &SoftCrc32c
        }
        fn recv_buf(&mut self, _: &mut [u8]) -> Result<usize, i32> {
            Ok(0)
        }
        fn recv_data(&mut self, _: usize, _: Option<&mut u32>) -> Result<usize, i32> {
            Ok(0)
        }
        fn event(&mut self, _: Event) -> Result<bool, i32> {
            Ok(false)
        }
        fn pass_budget(&self) -> usize {
            usize::MAX
        }
    }
    assert_eq!(recv_pass(&mut m, &mut Closed), Err(RecvError::Proto(ProtoError::ConnectionClosed)));
}

#[test]
fn advance_refuses_more_than_wanted() {
    let mut m = RecvMachine::new(Digests::default());
    assert_eq!(m.advance(25, &SoftCrc32c), Err(RecvError::Internal(errno::EINVAL)));
}

/// Arbitrary bytes under arbitrary splits never panic and never place data
/// outside a named request (the scripted queue would panic on that).
#[test]
fn random_streams_never_panic() {
    let mut rng = Lcg(42);
    for round in 0..2000 {
        let d = ALL[round % 4];
        let len = (rng.next() % 300) as usize;
        let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Bias towards plausible headers so the deeper states get reached.
        if len >= 8 && rng.next() % 2 == 0 {
            v[0] = [3u8, 5, 7, 9][(rng.next() % 4) as usize];
            v[2] = 24;
            v[3] = d.recv_hdr_len() as u8;
        }
        let sched: Vec<Option<usize>> = (0..50).map(|_| if rng.next() % 5 == 0 { None } else { Some((rng.next() % 40) as usize) }).collect();
        let mut s = Scripted::new(v, sched, &[(0, 64), (1, 0), (0x300, 4096)]);
        let mut m = RecvMachine::new(d);
        for _ in 0..200 {
            if recv_pass(&mut m, &mut s).is_err() {
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Batched header receive (`proto::batch`).

/// Runs batched passes with a staging buffer of `size` bytes until the
/// stream is consumed or a pass fails; every pass must end with nothing
/// staged. Returns the completions and what the buffer carried.
fn run_batched(s: &mut Scripted, d: Digests, size: usize) -> Result<(u32, StageCounts), RecvError> {
    let mut m = RecvMachine::new(d);
    let mut st = Staging::new(vec![0u8; size]);
    let mut completions = 0;
    let mut counts = StageCounts::default();
    for _ in 0..1_000_000 {
        let end = recv_pass_batched(&mut m, &mut st, s)?;
        assert_eq!(st.pending(), 0, "a pass ended with bytes staged");
        let c = st.take_counts();
        counts.fills += c.fills;
        counts.pdus += c.pdus;
        counts.payload += c.payload;
        completions += end.completions;
        if s.pos == s.stream.len() && end.drained {
            assert_eq!(m.state(), RecvState::Header { got: 0 }, "stream ended mid-PDU");
            return Ok((completions, counts));
        }
    }
    Err(RecvError::Socket(0))
}

#[test]
fn batched_receive_gives_the_same_log_in_every_split() {
    for d in ALL {
        let (stream, reqs) = workload(d);
        let mut whole = Scripted::new(stream.clone(), vec![], &reqs);
        let want = expected_log(&mut whole, d);
        for size in [1, 7, 24, 28, 29, 100, 512, 1024, 4096, 9000] {
            let mut s = Scripted::new(stream.clone(), vec![], &reqs);
            assert_eq!(run_batched(&mut s, d, size).map(|r| r.0), Ok(4), "{d:?} size {size}");
            assert_eq!(s.log, want, "{d:?} size {size}");
            let mut rng = Lcg(size as u64);
            for _ in 0..50 {
                let sched = (0..200).map(|_| if rng.next() % 7 == 0 { None } else { Some((rng.next() % 60) as usize) }).collect();
                let mut s = Scripted::new(stream.clone(), sched, &reqs);
                assert_eq!(run_batched(&mut s, d, size).map(|r| r.0), Ok(4), "{d:?} size {size}");
                assert_eq!(s.log, want, "{d:?} size {size}");
            }
        }
    }
}

/// A burst of responses is one receive (plus the final `-EAGAIN`) where
/// the unbatched pass makes one per response.
#[test]
fn a_burst_of_responses_is_one_receive() {
    let d = Digests::default();
    let c = SoftCrc32c;
    let mut stream = Vec::new();
    let mut reqs = Vec::new();
    for cid in 0..32u16 {
        stream.extend(build::rsp(&Cqe { result: 0, sq_head: 1, sq_id: 1, command_id: cid, status: 0 }, d, &c));
        reqs.push((cid, 0));
    }
    let mut plain = Scripted::new(stream.clone(), vec![], &reqs);
    assert_eq!(run(&mut plain, d), Ok(32));
    assert_eq!(plain.calls, 33);
    let mut batched = Scripted::new(stream, vec![], &reqs);
    let (done, counts) = run_batched(&mut batched, d, 1024).unwrap_or_default();
    assert_eq!(done, 32);
    assert_eq!(batched.calls, 2);
    assert_eq!(counts, StageCounts { fills: 1, pdus: 32, payload: 0 });
    assert_eq!(batched.log, plain.log);
    // A TCP socket: the short fill ends the pass, no -EAGAIN receive.
    let mut short = Scripted::new(batched.stream.clone(), vec![], &reqs);
    short.short_drains = true;
    let (done, _) = run_batched(&mut short, d, 1024).unwrap_or_default();
    assert_eq!((done, short.calls), (32, 1));
    assert_eq!(short.log, plain.log);
}

/// With short fills ending passes, every split still gives the same log
/// (the next pass goes on where the last one ended).
#[test]
fn short_fills_end_passes_and_change_nothing() {
    for d in ALL {
        let (stream, reqs) = workload(d);
        let mut whole = Scripted::new(stream.clone(), vec![], &reqs);
        let want = expected_log(&mut whole, d);
        for size in [1, 24, 100, 1024, 9000] {
            let mut rng = Lcg(size as u64 + 99);
            for _ in 0..30 {
                let sched = (0..200).map(|_| if rng.next() % 7 == 0 { None } else { Some((rng.next() % 300) as usize) }).collect();
                let mut s = Scripted::new(stream.clone(), sched, &reqs);
                s.short_drains = true;
                assert_eq!(run_batched(&mut s, d, size).map(|r| r.0), Ok(4), "{d:?} size {size}");
                assert_eq!(s.log, want, "{d:?} size {size}");
            }
        }
    }
}

/// Payload in the staging buffer is copied into the request; the rest of
/// a long payload goes straight into it, never through the buffer.
#[test]
fn long_payloads_bypass_the_staging_buffer() {
    for d in ALL {
        let c = SoftCrc32c;
        let p = payload(65536, 9);
        let mut stream = build::c2h_data(7, 0, &p, true, true, d, &c);
        stream.extend(build::rsp(&Cqe { result: 0, sq_head: 1, sq_id: 1, command_id: 8, status: 0 }, d, &c));
        let mut s = Scripted::new(stream, vec![], &[(7, 65536), (8, 0)]);
        let (done, counts) = run_batched(&mut s, d, 512).unwrap_or_default();
        assert_eq!(done, 2);
        assert!(counts.payload < 512, "{counts:?}");
        assert_eq!(s.log[0], Done::Data { cid: 7, data: p.clone(), transfer_error: false });
    }
}

/// A data digest that does not match what was copied from the staging
/// buffer fails the command with a transfer error, and only it.
#[test]
fn staged_payload_is_covered_by_the_data_digest() {
    let d = Digests { header: false, data: true };
    let c = SoftCrc32c;
    let p = payload(100, 4);
    let mut stream = build::c2h_data(1, 0, &p, true, true, d, &c);
    // Corrupt one payload byte (the digest stays the original's).
    stream[24 + 50] ^= 0x10;
    stream.extend(build::c2h_data(2, 0, &p, true, true, d, &c));
    let mut s = Scripted::new(stream, vec![], &[(1, 100), (2, 100)]);
    let (done, counts) = run_batched(&mut s, d, 4096).unwrap_or_default();
    assert_eq!(done, 2);
    assert_eq!(counts.payload, 200);
    assert!(matches!(&s.log[0], Done::Data { cid: 1, transfer_error: true, .. }), "{:?}", s.log[0]);
    assert_eq!(s.log[1], Done::Data { cid: 2, data: p, transfer_error: false });
}

/// A bad header in the middle of a fill stops the queue there: nothing
/// after it is handed to the queue, though it was received.
#[test]
fn a_bad_header_in_a_fill_stops_there() {
    let d = Digests { header: true, data: false };
    let c = SoftCrc32c;
    let cqe = |cid| Cqe { result: 0, sq_head: 1, sq_id: 1, command_id: cid, status: 0 };
    let mut stream = build::rsp(&cqe(1), d, &c);
    let mut bad = build::rsp(&cqe(2), d, &c);
    bad[10] ^= 1; // header digest mismatch
    stream.extend(bad);
    stream.extend(build::rsp(&cqe(3), d, &c));
    let mut s = Scripted::new(stream, vec![], &[(1, 0), (2, 0), (3, 0)]);
    let mut m = RecvMachine::new(d);
    let mut st = Staging::new(vec![0u8; 1024]);
    assert!(matches!(recv_pass_batched(&mut m, &mut st, &mut s), Err(RecvError::Proto(_))));
    assert_eq!(s.log, vec![Done::Rsp { cid: 1, status: 0, result: 0 }]);
}

/// C2HData past the request's buffer is refused before a staged byte is
/// copied (the same range check as unbatched).
#[test]
fn staged_payload_out_of_range_is_refused() {
    let d = Digests::default();
    let c = SoftCrc32c;
    let stream = build::c2h_data(1, 0, &payload(200, 1), true, true, d, &c);
    let mut s = Scripted::new(stream, vec![], &[(1, 100)]);
    let mut m = RecvMachine::new(d);
    let mut st = Staging::new(vec![0u8; 1024]);
    assert_eq!(recv_pass_batched(&mut m, &mut st, &mut s), Err(RecvError::Rejected(errno::EPROTO)));
    assert!(s.reqs[&1].received == 0);
}

/// The byte budget holds with batching, and a pass never ends with bytes
/// staged: the next pass (or a `read_sock()` push) starts where the
/// machine is.
#[test]
fn batched_passes_end_on_their_budget_with_nothing_staged() {
    let d = Digests::default();
    let (stream, reqs) = workload(d);
    let mut s = Scripted::new(stream, vec![], &reqs);
    s.budget = 100;
    assert_eq!(run_batched(&mut s, d, 64).map(|r| r.0), Ok(4));
}

/// Random bytes through the batched pass never panic.
#[test]
fn random_streams_never_panic_batched() {
    let mut rng = Lcg(7);
    for round in 0..2000 {
        let d = ALL[round % 4];
        let len = (rng.next() % 300) as usize;
        let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if len >= 8 && rng.next() % 2 == 0 {
            v[0] = [3u8, 5, 7, 9][(rng.next() % 4) as usize];
            v[2] = 24;
            v[3] = d.recv_hdr_len() as u8;
        }
        let sched: Vec<Option<usize>> = (0..50).map(|_| if rng.next() % 5 == 0 { None } else { Some((rng.next() % 40) as usize) }).collect();
        let mut s = Scripted::new(v, sched, &[(0, 64), (1, 0), (0x300, 4096)]);
        let mut m = RecvMachine::new(d);
        let mut st = Staging::new(vec![0u8; 1 + (rng.next() % 200) as usize]);
        for _ in 0..200 {
            if recv_pass_batched(&mut m, &mut st, &mut s).is_err() {
                break;
            }
        }
    }
}
