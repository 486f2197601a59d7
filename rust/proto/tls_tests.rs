// SPDX-License-Identifier: GPL-2.0
//! The record-type policy and the TLS receive pass, over a scripted kTLS
//! socket: records that are not data arriving between PDUs, inside a
//! header, inside a C2HData payload (landing in the request's pages) and
//! inside a data digest; the data must verify and the policy must act.

use super::*;
use crate::proto::crc::{Crc32c, SoftCrc32c};
use crate::proto::pdu::{build, check_c2h_range, Cqe, Digests};
use crate::proto::recv::Event;
use crate::proto::batch::{StageIo, Staging};
use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

const ALL: [Digests; 4] = [
    Digests { header: false, data: false },
    Digests { header: true, data: false },
    Digests { header: false, data: true },
    Digests { header: true, data: true },
];

#[test]
fn policy_table() {
    use Action::*;
    assert_eq!(policy(Control::Alert { level: level::WARNING, desc: alert::CLOSE_NOTIFY }), Close);
    assert_eq!(policy(Control::Alert { level: level::FATAL, desc: alert::CLOSE_NOTIFY }), Close);
    assert_eq!(policy(Control::Alert { level: level::WARNING, desc: 90 }), Recover);
    assert_eq!(policy(Control::Alert { level: level::FATAL, desc: 20 }), Recover);
    assert_eq!(policy(Control::Handshake(handshake::NEW_SESSION_TICKET)), Continue);
    assert_eq!(policy(Control::Handshake(handshake::KEY_UPDATE)), Rekey);
    assert_eq!(policy(Control::Handshake(handshake::CERTIFICATE_REQUEST)), Recover);
    assert_eq!(policy(Control::Handshake(1)), Recover);
    for t in [0, content::CHANGE_CIPHER_SPEC, content::HEARTBEAT, 25, 26, 99, 255] {
        assert_eq!(policy(Control::Other(t)), Recover, "content type {t}");
    }
    assert_eq!(policy(Control::MalformedAlert(3)), Recover);
    assert_eq!(policy(Control::MalformedHandshake), Recover);
    assert_eq!(policy(Control::BoundaryLost), Recover);
    assert_eq!(data_phase_bytes(content::DATA), PhaseBytes::Payload);
    for t in [0, 20, 21, 22, 24, 99] {
        assert_eq!(data_phase_bytes(t), PhaseBytes::Rewind);
    }
}

#[test]
fn names() {
    let s = |c: Control| std::format!("{c}");
    assert_eq!(s(Control::Alert { level: 2, desc: 20 }), "TLS alert fatal bad_record_mac (2/20)");
    assert_eq!(s(Control::Alert { level: 1, desc: 0 }), "TLS alert warning close_notify (1/0)");
    assert_eq!(s(Control::Handshake(24)), "TLS handshake message KeyUpdate (24)");
    assert_eq!(s(Control::Handshake(13)), "TLS handshake message certificate_request (13)");
    assert_eq!(s(Control::Other(24)), "TLS record of content type heartbeat (24)");
    assert_eq!(s(Control::Other(99)), "TLS record of content type unknown (99)");
    let stop = TlsStop { control: Control::Handshake(24), action: Action::Rekey };
    assert!(std::format!("{stop}").contains("KeyUpdate"));
    assert_eq!(stop.errno(), errno::EKEYEXPIRED);
    let close = TlsStop { control: Control::Alert { level: 1, desc: 0 }, action: Action::Close };
    assert!(std::format!("{}", RecvError::Tls(close)).contains("close_notify"));
    assert_eq!(RecvError::Tls(close).errno(), errno::ESHUTDOWN);
}

/// A handshake message: type, 24-bit length, body.
fn hs_msg(t: u8, body_len: usize) -> Vec<u8> {
    let mut v = vec![t, (body_len >> 16) as u8, (body_len >> 8) as u8, body_len as u8];
    v.extend((0..body_len).map(|i| i as u8 ^ 0xa5));
    v
}

fn nst(body_len: usize) -> (u8, Vec<u8>) {
    (content::HANDSHAKE, hs_msg(handshake::NEW_SESSION_TICKET, body_len))
}

#[test]
fn control_record_units() {
    // Two tickets coalesced, fed one byte at a time: consumed.
    let mut r = ControlRecord::new(content::HANDSHAKE);
    let mut bytes = hs_msg(4, 200);
    bytes.extend(hs_msg(4, 0));
    for b in &bytes {
        r.feed(core::slice::from_ref(b));
    }
    r.end();
    assert_eq!((r.stop(), r.tickets, r.continues()), (None, 2, false));
    // A ticket and a KeyUpdate: the KeyUpdate stops.
    let mut r = ControlRecord::new(content::HANDSHAKE);
    let mut bytes = hs_msg(4, 30);
    bytes.extend(hs_msg(24, 1));
    r.feed(&bytes);
    r.end();
    assert_eq!(r.stop(), Some(TlsStop { control: Control::Handshake(24), action: Action::Rekey }));
    // A message fragmented over two records.
    let mut r = ControlRecord::new(content::HANDSHAKE);
    let m = hs_msg(4, 100);
    r.feed(&m[..50]);
    r.end();
    assert!(r.continues() && r.stop().is_none());
    r.feed(&m[50..]);
    r.end();
    assert!(!r.continues() && r.stop().is_none() && r.tickets == 1);
    // A record that ends inside a message header.
    let mut r = ControlRecord::new(content::HANDSHAKE);
    r.feed(&[4, 0]);
    r.end();
    assert_eq!(r.stop().map(|s| s.control), Some(Control::MalformedHandshake));
    // Alerts: exactly two bytes.
    let mut r = ControlRecord::new(content::ALERT);
    r.feed(&[2]);
    r.feed(&[51]);
    r.end();
    assert_eq!(r.stop(), Some(TlsStop { control: Control::Alert { level: 2, desc: 51 }, action: Action::Recover }));
    for bad in [&[1u8][..], &[1, 0, 1][..], &[][..]] {
        let mut r = ControlRecord::new(content::ALERT);
        r.feed(bad);
        r.end();
        assert_eq!(r.stop().map(|s| s.control), Some(Control::MalformedAlert(bad.len())));
    }
    // Any other content type stops at once.
    let r = ControlRecord::new(content::HEARTBEAT);
    assert_eq!(r.stop().map(|s| s.control), Some(Control::Other(content::HEARTBEAT)));
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Done {
    Rsp { cid: u16, status: u16 },
    Data { cid: u16, data: Vec<u8>, transfer_error: bool },
    R2T(u16),
}

struct Req {
    data: Vec<u8>,
    received: u32,
    transfer_error: bool,
}

/// A kTLS socket: a list of records (type, plaintext). A receive takes
/// bytes of one record only (kTLS never mixes types in a call), at most
/// what the caller offers and what `chunks` allows (`None`: -EAGAIN once),
/// and reports `eor` when it took the record's last byte.
struct Ktls {
    records: Vec<(u8, Vec<u8>)>,
    rec: usize,
    off: usize,
    chunks: Vec<Option<usize>>,
    next_chunk: usize,
    reqs: BTreeMap<u16, Req>,
    current: Option<u16>,
    /// Bytes the last `recv_data_tls` placed in the pages, at this offset.
    placed: Option<(usize, usize)>,
    log: Vec<Done>,
    tickets: u32,
    /// Bytes of records that were not data that landed in request pages.
    landed: usize,
    /// `read_sock` mode: records handed to the recvmsg path.
    handoffs: u32,
    /// `read_sock()` calls.
    read_socks: u32,
    /// A `read_sock()` that refuses whatever heads the queue.
    refuse_all: bool,
    /// A socket that fails: after this many more receives, every receive
    /// returns the errno.
    fail: Option<(usize, i32)>,
    /// Where the first failed receive was: `"payload"` (into the request's
    /// pages), `"record"` (inside a record that is not data, partly read)
    /// or `"buffer"` (a header, digest or staging buffer).
    failed_in: Option<&'static str>,
}

impl Ktls {
    fn new(records: Vec<(u8, Vec<u8>)>, chunks: Vec<Option<usize>>, reqs: &[(u16, u32)]) -> Self {
        Self {
            records,
            rec: 0,
            off: 0,
            chunks,
            next_chunk: 0,
            reqs: reqs
                .iter()
                .map(|&(cid, len)| (cid, Req { data: vec![0; len as usize], received: 0, transfer_error: false }))
                .collect(),
            current: None,
            placed: None,
            log: Vec::new(),
            tickets: 0,
            landed: 0,
            handoffs: 0,
            read_socks: 0,
            refuse_all: false,
            fail: None,
            failed_in: None,
        }
    }

    /// `Err(errno)` once the receives [`Self::fail`] allows are used up,
    /// noting where (`payload` when the receive is into the pages).
    fn failing(&mut self, payload: bool) -> Result<(), i32> {
        let Some((left, e)) = self.fail else { return Ok(()) };
        if left > 0 {
            self.fail = Some((left - 1, e));
            return Ok(());
        }
        let mid_record = self.off > 0 && self.records.get(self.rec).is_some_and(|r| r.0 != content::DATA);
        let place = if payload { "payload" } else if mid_record { "record" } else { "buffer" };
        self.failed_in.get_or_insert(place);
        Err(e)
    }

    fn done(&self) -> bool {
        self.rec >= self.records.len()
    }

    /// Takes up to `want` bytes of the current record.
    fn take(&mut self, want: usize) -> Result<(u8, Vec<u8>, bool), i32> {
        while self.rec < self.records.len() && self.records[self.rec].1.is_empty() {
            self.rec += 1;
        }
        if self.done() {
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
        let (t, ref body) = self.records[self.rec];
        let n = want.min(limit).min(body.len() - self.off);
        let bytes = body[self.off..self.off + n].to_vec();
        self.off += n;
        let eor = self.off == body.len();
        if eor {
            self.rec += 1;
            self.off = 0;
        }
        Ok((t, bytes, eor))
    }
}

impl QueueIo for Ktls {
    type Crc = SoftCrc32c;
    fn crc(&self) -> &SoftCrc32c {
        &SoftCrc32c
    }
    fn recv_buf(&mut self, _buf: &mut [u8]) -> Result<usize, i32> {
        unreachable_plain()
    }
    fn recv_data(&mut self, _len: usize, _crc: Option<&mut u32>) -> Result<usize, i32> {
        unreachable_plain()
    }
    fn event(&mut self, ev: Event) -> Result<bool, i32> {
        match ev {
            Event::Response(cqe) => {
                self.reqs.remove(&cqe.command_id).ok_or(errno::EPROTO)?;
                self.log.push(Done::Rsp { cid: cqe.command_id, status: cqe.status });
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
                self.log.push(Done::R2T(r.command_id));
                Ok(false)
            }
        }
    }
    fn pass_budget(&self) -> usize {
        usize::MAX
    }
}

/// The plain receive calls are never used on a TLS queue.
#[track_caller]
fn unreachable_plain() -> Result<usize, i32> {
    assert!(false, "a TLS queue used a receive without record type");
    Err(errno::EIO)
}

impl TlsQueueIo for Ktls {
    fn recv_buf_tls(&mut self, buf: &mut [u8]) -> Result<Got, i32> {
        self.failing(false)?;
        let (t, bytes, eor) = self.take(buf.len())?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(Got { n: bytes.len(), record_type: t, eor })
    }

    fn recv_data_tls(&mut self, len: usize) -> Result<Got, i32> {
        let cid = self.current.ok_or(errno::EINVAL)?;
        self.failing(true)?;
        let (t, bytes, eor) = self.take(len)?;
        let req = self.reqs.get_mut(&cid).ok_or(errno::EINVAL)?;
        let at = req.received as usize;
        // Whatever the record, kTLS copies it into the destination: here,
        // the request's pages.
        req.data[at..at + bytes.len()].copy_from_slice(&bytes);
        self.placed = Some((at, bytes.len()));
        Ok(Got { n: bytes.len(), record_type: t, eor })
    }

    fn commit_data(&mut self, n: usize, crc: Option<&mut u32>) {
        let (at, placed) = self.placed.take().unwrap_or((0, 0));
        assert_eq!(placed, n);
        let req = self.current.and_then(|c| self.reqs.get_mut(&c)).expect("a data phase");
        if let Some(c) = crc {
            *c = SoftCrc32c.update(*c, &req.data[at..at + n]);
        }
        req.received += n as u32;
    }

    fn rewind_data(&mut self, n: usize, sink: &mut dyn FnMut(&[u8])) {
        let (at, placed) = self.placed.take().unwrap_or((0, 0));
        assert_eq!(placed, n);
        let req = self.current.and_then(|c| self.reqs.get(&c)).expect("a data phase");
        // Copied out of the pages in small pieces, as the kernel does.
        for piece in req.data[at..at + n].chunks(7) {
            sink(piece);
        }
        self.landed += n;
    }

    fn record_consumed(&mut self, record: &ControlRecord) {
        self.tickets += record.tickets;
    }
}

impl StageIo for Ktls {
    fn copy_data(&mut self, bytes: &[u8]) -> Result<(), i32> {
        let cid = self.current.ok_or(errno::EINVAL)?;
        let req = self.reqs.get_mut(&cid).ok_or(errno::EINVAL)?;
        let at = req.received as usize;
        req.data.get_mut(at..at + bytes.len()).ok_or(errno::EIO)?.copy_from_slice(bytes);
        req.received += bytes.len() as u32;
        Ok(())
    }
}

std::thread_local! {
    /// The staging buffer size `run` uses (0: `recv_pass_tls`, else
    /// `recv_pass_tls_batched`).
    static STAGE: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

fn stage() -> usize {
    STAGE.with(|c| c.get())
}

/// Runs `f` unbatched and with staging buffers of several sizes: smaller
/// than a header, a few PDUs, more than a record.
fn with_stages(f: impl Fn()) {
    for size in [0, 1, 24, 100, 1024, 20000] {
        STAGE.with(|c| c.set(size));
        f();
    }
    STAGE.with(|c| c.set(0));
}

/// One pass, batched or not as `STAGE` says.
fn pass(m: &mut RecvMachine, t: &mut TlsRx, st: &mut Staging<Vec<u8>>, k: &mut Ktls) -> Result<PassEnd, RecvError> {
    let r = if st.enabled() { recv_pass_tls_batched(m, t, st, k) } else { recv_pass_tls(m, t, k) };
    if r.is_ok() {
        assert_eq!(st.pending(), 0, "a pass ended with bytes staged");
    }
    r
}

/// Runs passes until the records are consumed or a pass fails.
fn run(k: &mut Ktls, d: Digests) -> Result<u32, RecvError> {
    let mut m = RecvMachine::new(d);
    let mut t = TlsRx::new();
    let mut st = Staging::new(vec![0u8; stage()]);
    let mut completions = 0;
    for _ in 0..1_000_000 {
        let end = pass(&mut m, &mut t, &mut st, k)?;
        completions += end.completions;
        if k.done() && end.drained {
            assert_eq!(m.state(), crate::proto::recv::RecvState::Header { got: 0 }, "stream ended mid-PDU");
            assert!(!t.in_record(), "stream ended inside a record");
            return Ok(completions);
        }
    }
    Err(RecvError::Internal(0))
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed)).collect()
}

/// The PDU stream of a small I/O queue workload and its requests.
fn workload(d: Digests) -> (Vec<u8>, Vec<(u16, u32)>) {
    let c = SoftCrc32c;
    let cqe = |cid| Cqe { result: 0, sq_head: 1, sq_id: 1, command_id: cid, status: 0 };
    let mut s = Vec::new();
    s.extend(build::rsp(&cqe(1), d, &c));
    let p2 = payload(5000, 2);
    s.extend(build::c2h_data(2, 0, &p2[..4096], false, false, d, &c));
    s.extend(build::c2h_data(2, 4096, &p2[4096..], true, true, d, &c));
    s.extend(build::r2t(3, 1, 0, 4096, d, &c));
    s.extend(build::c2h_data(4, 0, &[0x77], true, true, d, &c));
    (s, vec![(1, 0), (2, 5000), (3, 4096), (4, 1)])
}

/// `stream` as data records of at most `max` bytes, with `extra` records
/// inserted at the given stream offsets.
fn records(stream: &[u8], max: usize, extra: &[(usize, (u8, Vec<u8>))]) -> Vec<(u8, Vec<u8>)> {
    let mut cuts: Vec<usize> = extra.iter().map(|(at, _)| *at).collect();
    cuts.push(stream.len());
    let mut out = Vec::new();
    let mut pos = 0;
    for (i, &cut) in cuts.iter().enumerate() {
        while pos < cut {
            let end = cut.min(pos + max);
            out.push((content::DATA, stream[pos..end].to_vec()));
            pos = end;
        }
        if let Some((_, r)) = extra.get(i) {
            out.push(r.clone());
        }
    }
    out
}

fn clean_log(d: Digests) -> Vec<Done> {
    let (s, reqs) = workload(d);
    let mut k = Ktls::new(records(&s, 16384, &[]), vec![], &reqs);
    assert_eq!(run(&mut k, d), Ok(3));
    k.log
}

/// Stream offsets inside each place a record can interrupt: between PDUs,
/// inside a header, inside a payload and inside a data digest.
fn positions(d: Digests) -> Vec<(&'static str, usize)> {
    let h = d.recv_hdr_len();
    let rsp = build::rsp(&Cqe { result: 0, sq_head: 1, sq_id: 1, command_id: 1, status: 0 }, d, &SoftCrc32c).len();
    let first_data = rsp + h; // payload of cid 2's first PDU starts here
    let mut v = vec![
        ("before everything", 0),
        ("between PDUs", rsp),
        ("inside a header", rsp + 5),
        ("at the start of a payload", first_data),
        ("inside a payload", first_data + 1000),
    ];
    if d.data {
        v.push(("inside a data digest", first_data + 4096 + 2));
    }
    v
}

#[test]
fn tickets_anywhere_are_consumed_and_data_verifies() {
    with_stages(|| {
    for d in ALL {
        let want = clean_log(d);
        for (what, at) in positions(d) {
            for body in [0usize, 3, 180, 5000] {
                let (s, reqs) = workload(d);
                let mut k = Ktls::new(records(&s, 16384, &[(at, nst(body))]), vec![], &reqs);
                assert_eq!(run(&mut k, d), Ok(3), "{d:?} ticket {what}");
                assert_eq!(k.log, want, "{d:?} ticket of {body} bytes {what}: data or completions differ");
                assert_eq!(k.tickets, 1, "{d:?} {what}");
                if what.contains("payload") && stage() == 0 {
                    assert!(k.landed > 0, "{what}: the ticket never landed in the pages");
                }
            }
        }
    }
    });
}

#[test]
fn ticket_longer_than_the_space_offered() {
    with_stages(|| {
    // Payload of cid 4 is one byte: a 600-byte ticket before it lands one
    // byte in the pages, the rest goes to the queue's buffer.
    for d in ALL {
        let want = clean_log(d);
        let (s, reqs) = workload(d);
        let at = s.len() - d.ddgst_len() - 1;
        let mut k = Ktls::new(records(&s, 16384, &[(at, nst(600))]), vec![], &reqs);
        assert_eq!(run(&mut k, d), Ok(3));
        assert_eq!(k.log, want);
        // Batched, the one-byte tail is received through the staging
        // buffer, where the ticket lands instead.
        let landed = if stage() > 1 { 0 } else { 1 };
        assert_eq!((k.tickets, k.landed), (1, landed), "{d:?}");
    }
    });
}

#[test]
fn tickets_with_every_split_and_eagain() {
    with_stages(|| {
    let d = Digests { header: true, data: true };
    let want = clean_log(d);
    let (s, reqs) = workload(d);
    let extra: Vec<(usize, (u8, Vec<u8>))> =
        positions(d).into_iter().map(|(_, at)| (at, nst(40))).collect();
    for chunk in [1usize, 2, 3, 5, 13, 100] {
        let chunks: Vec<Option<usize>> = (0..20000).map(|i| if i % 3 == 2 { None } else { Some(chunk) }).collect();
        let mut k = Ktls::new(records(&s, 1000, &extra), chunks, &reqs);
        assert_eq!(run(&mut k, d), Ok(3), "chunk {chunk}");
        assert_eq!(k.log, want, "chunk {chunk}");
        assert_eq!(k.tickets, extra.len() as u32);
    }
    });
}

#[test]
fn a_ticket_fragmented_over_records_is_consumed() {
    with_stages(|| {
    let d = Digests { header: false, data: true };
    let want = clean_log(d);
    let (s, reqs) = workload(d);
    let m = hs_msg(handshake::NEW_SESSION_TICKET, 300);
    let at = positions(d)[4].1;
    let mut recs = records(&s[..at], 16384, &[]);
    recs.push((content::HANDSHAKE, m[..2].to_vec()));
    recs.push((content::HANDSHAKE, m[2..150].to_vec()));
    recs.push((content::HANDSHAKE, m[150..].to_vec()));
    recs.extend(records(&s[at..], 16384, &[]));
    let mut k = Ktls::new(recs, vec![], &reqs);
    // Ends inside a header in its first record: malformed.
    assert_eq!(run(&mut k, d).map_err(|e| e.errno()), Err(errno::EPROTO));
    let mut recs = records(&s[..at], 16384, &[]);
    recs.push((content::HANDSHAKE, m[..150].to_vec()));
    recs.push((content::HANDSHAKE, m[150..].to_vec()));
    recs.extend(records(&s[at..], 16384, &[]));
    let mut k = Ktls::new(recs, vec![], &reqs);
    assert_eq!(run(&mut k, d), Ok(3));
    assert_eq!((k.log, k.tickets), (want, 1));
    });
}

/// Runs the workload with `rec` at every position; each must stop the
/// queue with `want`, having completed only commands whose data was whole.
fn stops_everywhere(rec: (u8, Vec<u8>), want: TlsStop) {
    with_stages(|| stops_everywhere_once(rec.clone(), want));
}

fn stops_everywhere_once(rec: (u8, Vec<u8>), want: TlsStop) {
    for d in ALL {
        let clean = clean_log(d);
        for (what, at) in positions(d) {
            let (s, reqs) = workload(d);
            let mut k = Ktls::new(records(&s, 16384, &[(at, rec.clone())]), vec![Some(7); 4000], &reqs);
            assert_eq!(run(&mut k, d), Err(RecvError::Tls(want)), "{d:?} {what}");
            // What completed before the record is exactly the clean start.
            assert_eq!(k.log[..], clean[..k.log.len()], "{d:?} {what}");
        }
    }
}

#[test]
fn alerts_stop_the_queue() {
    let close = Control::Alert { level: level::WARNING, desc: alert::CLOSE_NOTIFY };
    stops_everywhere((content::ALERT, vec![1, 0]), TlsStop { control: close, action: Action::Close });
    let fatal = Control::Alert { level: level::FATAL, desc: 20 };
    stops_everywhere((content::ALERT, vec![2, 20]), TlsStop { control: fatal, action: Action::Recover });
    let warning = Control::Alert { level: level::WARNING, desc: 90 };
    stops_everywhere((content::ALERT, vec![1, 90]), TlsStop { control: warning, action: Action::Recover });
    let bad = Control::MalformedAlert(3);
    stops_everywhere((content::ALERT, vec![1, 0, 0]), TlsStop { control: bad, action: Action::Recover });
}

#[test]
fn key_update_and_other_handshakes_stop_the_queue() {
    let ku = Control::Handshake(handshake::KEY_UPDATE);
    stops_everywhere((content::HANDSHAKE, hs_msg(24, 1)), TlsStop { control: ku, action: Action::Rekey });
    // A ticket, then a KeyUpdate in the same record.
    let mut both = hs_msg(4, 60);
    both.extend(hs_msg(24, 1));
    stops_everywhere((content::HANDSHAKE, both), TlsStop { control: ku, action: Action::Rekey });
    let cr = Control::Handshake(handshake::CERTIFICATE_REQUEST);
    stops_everywhere((content::HANDSHAKE, hs_msg(13, 20)), TlsStop { control: cr, action: Action::Recover });
}

#[test]
fn other_content_types_stop_the_queue() {
    for t in [content::CHANGE_CIPHER_SPEC, content::HEARTBEAT, 99, 0] {
        stops_everywhere((t, vec![1, 2, 3]), TlsStop { control: Control::Other(t), action: Action::Recover });
    }
}

#[test]
fn ekeyexpired_is_the_key_update_case() {
    let e = socket_error(errno::EKEYEXPIRED);
    let ku = Control::Handshake(handshake::KEY_UPDATE);
    assert_eq!(e, RecvError::Tls(TlsStop { control: ku, action: Action::Rekey }));
    assert_eq!(socket_error(errno::ECONNRESET), RecvError::Socket(errno::ECONNRESET));
}

/// A receive that fails stops the queue with the socket's error wherever
/// the pass stands (a header, digest or staging buffer, a payload, a
/// record that is not data partly read), batched or not; `-EKEYEXPIRED`
/// (kTLS once it decrypted a KeyUpdate) is the KeyUpdate case of the
/// policy, any other errno a socket error.
#[test]
fn a_failed_receive_stops_the_queue_wherever_it_fails() {
    let ku = TlsStop { control: Control::Handshake(handshake::KEY_UPDATE), action: Action::Rekey };
    let places = core::cell::RefCell::new(std::collections::BTreeSet::new());
    with_stages(|| {
        for d in ALL {
            let (s, reqs) = workload(d);
            // A ticket longer than any buffer a receive offers, inside a payload.
            let at = positions(d)[4].1;
            let recs = records(&s, 16384, &[(at, nst(600))]);
            for (e, want) in [(errno::EKEYEXPIRED, RecvError::Tls(ku)), (errno::ECONNRESET, RecvError::Socket(errno::ECONNRESET))] {
                for after in 0.. {
                    let mut k = Ktls::new(recs.clone(), vec![Some(61); 4000], &reqs);
                    k.fail = Some((after, e));
                    let r = run(&mut k, d);
                    let Some(place) = k.failed_in else {
                        // No receive failed: the stream was consumed first.
                        assert_eq!(r, Ok(3), "{d:?} stage {}", stage());
                        assert_eq!(k.tickets, 1);
                        break;
                    };
                    assert_eq!(r, Err(want), "{d:?} stage {} after {after} receives ({place})", stage());
                    places.borrow_mut().insert(place);
                }
            }
        }
    });
    assert_eq!(places.into_inner().into_iter().collect::<Vec<_>>(), ["buffer", "payload", "record"]);
}

#[test]
fn random_streams_of_records_never_panic() {
    with_stages(|| {
    // xorshift, fixed seed: random record types and contents.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        let mut recs = Vec::new();
        for _ in 0..(next() % 6 + 1) {
            let t = [content::DATA, content::ALERT, content::HANDSHAKE, 99][(next() % 4) as usize];
            let len = (next() % 64) as usize;
            recs.push((t, (0..len).map(|_| next() as u8).collect()));
        }
        let chunks = (0..64).map(|_| Some((next() % 9) as usize)).collect();
        let mut k = Ktls::new(recs, chunks, &[(1, 64)]);
        let d = Digests { header: next() % 2 == 0, data: next() % 2 == 0 };
        let (mut m, mut t) = (RecvMachine::new(d), TlsRx::new());
        let mut st = Staging::new(vec![0u8; stage()]);
        for _ in 0..1000 {
            match pass(&mut m, &mut t, &mut st, &mut k) {
                Ok(end) if k.done() && end.drained => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    });
}

/// One skb `read_sock()` pushes: the receive machine reads it as on a
/// plain queue (its bytes into headers, digests and the request's pages).
struct Skb<'a> {
    k: &'a mut Ktls,
    bytes: Vec<u8>,
    off: usize,
}

impl QueueIo for Skb<'_> {
    type Crc = SoftCrc32c;
    fn crc(&self) -> &SoftCrc32c {
        &SoftCrc32c
    }
    fn recv_buf(&mut self, buf: &mut [u8]) -> Result<usize, i32> {
        let n = buf.len().min(self.bytes.len() - self.off);
        if n == 0 {
            return Err(errno::EAGAIN);
        }
        buf[..n].copy_from_slice(&self.bytes[self.off..self.off + n]);
        self.off += n;
        Ok(n)
    }
    fn recv_data(&mut self, len: usize, crc: Option<&mut u32>) -> Result<usize, i32> {
        let n = len.min(self.bytes.len() - self.off);
        if n == 0 {
            return Err(errno::EAGAIN);
        }
        let cid = self.k.current.ok_or(errno::EINVAL)?;
        let req = self.k.reqs.get_mut(&cid).ok_or(errno::EINVAL)?;
        let at = req.received as usize;
        req.data[at..at + n].copy_from_slice(&self.bytes[self.off..self.off + n]);
        if let Some(c) = crc {
            *c = SoftCrc32c.update(*c, &req.data[at..at + n]);
        }
        req.received += n as u32;
        self.off += n;
        Ok(n)
    }
    fn event(&mut self, ev: Event) -> Result<bool, i32> {
        self.k.event(ev)
    }
    fn pass_budget(&self) -> usize {
        usize::MAX
    }
}

impl TlsPushIo for Ktls {
    /// As 7.3's `tls_sw_read_sock()`: data records from the head, each
    /// through the machine; a record that is not data stays queued and
    /// ends the call (`-EINVAL` unless bytes were pushed first); empty
    /// data records are consumed; `None` in `chunks` at a record boundary:
    /// the next record has not arrived yet.
    fn read_sock(&mut self, m: &mut RecvMachine) -> (i32, Result<u32, RecvError>) {
        self.read_socks += 1;
        let mut copied = 0usize;
        let mut completions = 0;
        loop {
            if self.done() {
                return (if copied > 0 { copied as i32 } else { -errno::EAGAIN }, Ok(completions));
            }
            if self.off == 0 && matches!(self.chunks.get(self.next_chunk), Some(None)) {
                self.next_chunk += 1;
                return (if copied > 0 { copied as i32 } else { -errno::EAGAIN }, Ok(completions));
            }
            let (t, ref body) = self.records[self.rec];
            if t != content::DATA || self.refuse_all {
                return (if copied > 0 { copied as i32 } else { -errno::EINVAL }, Ok(completions));
            }
            let bytes = body[self.off..].to_vec();
            let len = bytes.len();
            self.rec += 1;
            self.off = 0;
            if len == 0 {
                continue;
            }
            let mut skb = Skb { k: self, bytes, off: 0 };
            match crate::proto::recv::recv_pass(m, &mut skb) {
                Ok(end) => completions += end.completions,
                Err(e) => return (copied.max(1) as i32, Err(e)),
            }
            assert_eq!(skb.off, len, "the machine left bytes of an skb");
            copied += len;
        }
    }

    fn handed_off(&mut self) {
        self.handoffs += 1;
    }
}

/// [`run`] in `read_sock` mode.
fn run_push(k: &mut Ktls, d: Digests) -> Result<u32, RecvError> {
    let mut m = RecvMachine::new(d);
    let mut t = TlsRx::new();
    let mut completions = 0;
    for _ in 0..1_000_000 {
        let end = push_pass_tls(&mut m, &mut t, k)?;
        completions += end.completions;
        if k.done() && end.drained {
            assert_eq!(m.state(), crate::proto::recv::RecvState::Header { got: 0 }, "stream ended mid-PDU");
            assert!(!t.in_record(), "stream ended inside a record");
            return Ok(completions);
        }
    }
    Err(RecvError::Internal(0))
}

#[test]
fn read_sock_steps() {
    use ReadSockStep::*;
    assert_eq!(read_sock_step(4096), Again(4096));
    assert_eq!(read_sock_step(0), Drained);
    assert_eq!(read_sock_step(-errno::EAGAIN), Drained);
    assert_eq!(read_sock_step(-errno::EINVAL), HandOff);
    assert_eq!(read_sock_step(-errno::ESHUTDOWN), HandOff);
    let ku = Control::Handshake(handshake::KEY_UPDATE);
    assert_eq!(read_sock_step(-errno::EKEYEXPIRED), Failed(RecvError::Tls(TlsStop { control: ku, action: Action::Rekey })));
    assert_eq!(read_sock_step(-errno::ECONNRESET), Failed(RecvError::Socket(errno::ECONNRESET)));
}

#[test]
fn read_sock_clean_stream_never_hands_off() {
    for d in ALL {
        let want = clean_log(d);
        let (s, reqs) = workload(d);
        for max in [16384usize, 1000, 7, 1] {
            let mut k = Ktls::new(records(&s, max, &[]), vec![], &reqs);
            assert_eq!(run_push(&mut k, d), Ok(3), "{d:?} records of {max}");
            assert_eq!(k.log, want, "{d:?} records of {max}");
            assert_eq!((k.handoffs, k.landed), (0, 0));
            assert!(k.read_socks > 0);
        }
    }
}

#[test]
fn read_sock_hands_tickets_anywhere_to_recvmsg_and_data_verifies() {
    for d in ALL {
        let want = clean_log(d);
        for (what, at) in positions(d) {
            for body in [0usize, 3, 180, 5000] {
                for max in [16384usize, 1000] {
                    let (s, reqs) = workload(d);
                    let mut k = Ktls::new(records(&s, max, &[(at, nst(body))]), vec![], &reqs);
                    assert_eq!(run_push(&mut k, d), Ok(3), "{d:?} ticket {what}");
                    assert_eq!(k.log, want, "{d:?} ticket of {body} bytes {what}: data or completions differ");
                    assert_eq!(k.tickets, 1, "{d:?} {what}");
                    assert!(k.handoffs >= 1, "{d:?} {what}: never handed off");
                    if what.contains("payload") {
                        assert!(k.landed > 0, "{what}: the ticket never landed in the pages");
                    }
                }
            }
        }
    }
}

#[test]
fn read_sock_tickets_with_eagain_and_fragments() {
    let d = Digests { header: true, data: true };
    let want = clean_log(d);
    let (s, reqs) = workload(d);
    let extra: Vec<(usize, (u8, Vec<u8>))> = positions(d).into_iter().map(|(_, at)| (at, nst(300))).collect();
    for chunk in [1usize, 3, 13, 100] {
        let chunks: Vec<Option<usize>> = (0..20000).map(|i| if i % 3 == 2 { None } else { Some(chunk) }).collect();
        let mut k = Ktls::new(records(&s, 700, &extra), chunks, &reqs);
        assert_eq!(run_push(&mut k, d), Ok(3), "chunk {chunk}");
        assert_eq!(k.log, want, "chunk {chunk}");
        assert_eq!(k.tickets, extra.len() as u32);
    }
    // A ticket fragmented over three records inside a payload.
    let m = hs_msg(handshake::NEW_SESSION_TICKET, 600);
    let at = positions(d)[4].1;
    let mut recs = records(&s[..at], 16384, &[]);
    for part in [&m[..10], &m[10..300], &m[300..]] {
        recs.push((content::HANDSHAKE, part.to_vec()));
    }
    recs.extend(records(&s[at..], 16384, &[]));
    let mut k = Ktls::new(recs, vec![], &reqs);
    assert_eq!(run_push(&mut k, d), Ok(3));
    assert_eq!((k.log, k.tickets), (want, 1));
}

/// [`stops_everywhere`] in `read_sock` mode.
fn read_sock_stops_everywhere(rec: (u8, Vec<u8>), want: TlsStop) {
    for d in ALL {
        let clean = clean_log(d);
        for (what, at) in positions(d) {
            let (s, reqs) = workload(d);
            let mut k = Ktls::new(records(&s, 1000, &[(at, rec.clone())]), vec![Some(7); 4000], &reqs);
            assert_eq!(run_push(&mut k, d), Err(RecvError::Tls(want)), "{d:?} {what}");
            assert!(k.handoffs >= 1, "{d:?} {what}");
            assert_eq!(k.log[..], clean[..k.log.len()], "{d:?} {what}");
        }
    }
}

#[test]
fn read_sock_records_stop_the_queue_as_the_table_says() {
    let close = Control::Alert { level: level::WARNING, desc: alert::CLOSE_NOTIFY };
    read_sock_stops_everywhere((content::ALERT, vec![1, 0]), TlsStop { control: close, action: Action::Close });
    let fatal = Control::Alert { level: level::FATAL, desc: 80 };
    read_sock_stops_everywhere((content::ALERT, vec![2, 80]), TlsStop { control: fatal, action: Action::Recover });
    let warning = Control::Alert { level: level::WARNING, desc: 90 };
    read_sock_stops_everywhere((content::ALERT, vec![1, 90]), TlsStop { control: warning, action: Action::Recover });
    let ku = Control::Handshake(handshake::KEY_UPDATE);
    read_sock_stops_everywhere((content::HANDSHAKE, hs_msg(24, 1)), TlsStop { control: ku, action: Action::Rekey });
    read_sock_stops_everywhere((99, vec![1, 2, 3, 4, 5]), TlsStop { control: Control::Other(99), action: Action::Recover });
}

#[test]
fn read_sock_refusing_what_recvmsg_cannot_find_fails_instead_of_spinning() {
    let d = Digests { header: false, data: false };
    let (s, reqs) = workload(d);
    let mut k = Ktls::new(records(&s, 16384, &[]), vec![], &reqs);
    k.refuse_all = true;
    // The hand-off reads the data with recvmsg: the queue goes on.
    assert_eq!(run_push(&mut k, d), Ok(3));
    assert!(k.handoffs >= 1);
    // Nothing queued, yet refused: a socket error, not a loop.
    let mut k = Ktls::new(vec![(content::DATA, vec![])], vec![], &reqs);
    k.refuse_all = true;
    k.records.push((content::DATA, vec![]));
    let (mut m, mut t) = (RecvMachine::new(d), TlsRx::new());
    let r = push_pass_tls(&mut m, &mut t, &mut k);
    assert_eq!(r, Err(RecvError::Socket(errno::EINVAL)));
}
