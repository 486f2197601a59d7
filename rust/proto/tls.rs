// SPDX-License-Identifier: GPL-2.0
//! TLS records on a queue: what every record type means (one policy
//! table, [`policy`]), how the bytes of a record that is not data are
//! read and set aside, and the receive pass of a TLS queue
//! ([`recv_pass_tls`]).
//!
//! Every receive of a TLS queue is a `recvmsg` with room for the
//! `SOL_TLS`/`TLS_GET_RECORD_TYPE` control message, so each call reports
//! the type of the record its bytes came from (kTLS never mixes types in
//! one call). The policy:
//!
//! | record | what the queue does |
//! | --- | --- |
//! | data (23) | the receive machine |
//! | alert (21), close_notify | orderly stop, then error recovery ([`Action::Close`]) |
//! | alert (21), any other | error recovery naming level and description ([`Action::Recover`]) |
//! | handshake (22), NewSessionTicket (4) | consumed, the queue goes on ([`Action::Continue`]) |
//! | handshake (22), KeyUpdate (24) | recovery by reconnect, logged as KeyUpdate ([`Action::Rekey`]) |
//! | handshake (22), any other | error recovery naming it ([`Action::Recover`]) |
//! | any other content type, or none reported | error recovery naming it ([`Action::Recover`]) |
//!
//! Bytes of a record that is not data may land where the receive machine
//! wanted data: in the header or digest buffer (the machine does not
//! advance, so they are overwritten), or in the request's pages during a
//! C2HData payload ([`data_phase_bytes`]: the data phase rewinds to its
//! iterator snapshot, the bytes count neither as payload nor in the data
//! digest, and are copied out for the policy). A record longer than the
//! space the call offered goes on into the queue's own buffer until its
//! end (`MSG_EOR`).
//!
//! In `read_sock` mode ([`push_pass_tls`]) `read_sock()` pushes data
//! records and refuses any other record with `-EINVAL`, leaving it queued:
//! that record is handed to the same recvmsg receive, then `read_sock()`
//! goes on.

use crate::proto::batch::{StageIo, Staging};
use crate::proto::errno;
use crate::proto::recv::{self, PassBudget, PassEnd, QueueIo, RecvError, RecvMachine, Want};
use core::fmt;
use core::ops::DerefMut;

/// TLS content types (RFC 8446 `ContentType`, `include/net/tls_prot.h`).
pub mod content {
    /// change_cipher_spec.
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    /// alert.
    pub const ALERT: u8 = 21;
    /// handshake.
    pub const HANDSHAKE: u8 = 22;
    /// application_data: NVMe/TCP PDUs.
    pub const DATA: u8 = 23;
    /// heartbeat.
    pub const HEARTBEAT: u8 = 24;
}

/// Alert levels.
pub mod level {
    /// warning.
    pub const WARNING: u8 = 1;
    /// fatal.
    pub const FATAL: u8 = 2;
}

/// Alert descriptions this module knows by name.
pub mod alert {
    /// close_notify: the peer sends nothing more.
    pub const CLOSE_NOTIFY: u8 = 0;
}

/// Handshake message types seen after a TLS 1.3 handshake.
pub mod handshake {
    /// NewSessionTicket: a resumption ticket, nothing to act on.
    pub const NEW_SESSION_TICKET: u8 = 4;
    /// CertificateRequest (post-handshake authentication).
    pub const CERTIFICATE_REQUEST: u8 = 13;
    /// KeyUpdate: the peer's keys change.
    pub const KEY_UPDATE: u8 = 24;
}

/// The name of a content type.
pub fn content_type_name(t: u8) -> &'static str {
    match t {
        0 => "none",
        content::CHANGE_CIPHER_SPEC => "change_cipher_spec",
        content::ALERT => "alert",
        content::HANDSHAKE => "handshake",
        content::DATA => "application_data",
        content::HEARTBEAT => "heartbeat",
        25 => "tls12_cid",
        26 => "ack",
        _ => "unknown",
    }
}

/// The name of an alert level.
pub fn alert_level_name(l: u8) -> &'static str {
    match l {
        level::WARNING => "warning",
        level::FATAL => "fatal",
        _ => "unknown-level",
    }
}

/// The name of an alert description (RFC 8446 and `tls_prot.h`).
pub fn alert_name(d: u8) -> &'static str {
    match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        52 => "too_many_cids_requested",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unknown-alert",
    }
}

/// The name of a handshake message type.
pub fn handshake_name(t: u8) -> &'static str {
    match t {
        1 => "client_hello",
        2 => "server_hello",
        handshake::NEW_SESSION_TICKET => "NewSessionTicket",
        5 => "end_of_early_data",
        8 => "encrypted_extensions",
        11 => "certificate",
        handshake::CERTIFICATE_REQUEST => "certificate_request",
        15 => "certificate_verify",
        20 => "finished",
        handshake::KEY_UPDATE => "KeyUpdate",
        254 => "message_hash",
        _ => "unknown-handshake",
    }
}

/// One unit of a record that is not data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// An alert.
    Alert { level: u8, desc: u8 },
    /// A handshake message of this type.
    Handshake(u8),
    /// A record of this content type, which is neither data, alert nor
    /// handshake; 0 when recvmsg reported no type at all.
    Other(u8),
    /// An alert record that is not exactly one two-byte alert (TLS 1.3
    /// neither fragments nor coalesces alerts); the record's length.
    MalformedAlert(usize),
    /// A record that ended inside a handshake message header.
    MalformedHandshake,
    /// A data record where a record that is not data was being read to
    /// its end: the record boundaries kTLS reports were lost.
    BoundaryLost,
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Alert { level, desc } => {
                write!(f, "TLS alert {} {} ({}/{})", alert_level_name(level), alert_name(desc), level, desc)
            }
            Self::Handshake(t) => write!(f, "TLS handshake message {} ({})", handshake_name(t), t),
            Self::Other(t) => write!(f, "TLS record of content type {} ({})", content_type_name(t), t),
            Self::MalformedAlert(n) => write!(f, "malformed TLS alert record ({} bytes)", n),
            Self::MalformedHandshake => write!(f, "TLS handshake record ends inside a message header"),
            Self::BoundaryLost => write!(f, "TLS data record inside a control record (record boundary lost)"),
        }
    }
}

/// What the queue does about a unit of a record that is not data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Consumed; the queue goes on.
    Continue,
    /// The peer closed the session (close_notify): stop receiving in
    /// order, then error recovery reconnects.
    Close,
    /// KeyUpdate: kTLS now fails every read with `-EKEYEXPIRED` until new
    /// keys are set, and 7.3's net/handshake has no rekey upcall: recovery
    /// by reconnect. A rekey upcall would serve this action instead.
    Rekey,
    /// Error recovery, naming the unit.
    Recover,
}

/// The record-type policy: the one place that says what a unit of a record
/// that is not data means (the table in the module documentation).
pub fn policy(c: Control) -> Action {
    match c {
        Control::Alert { desc: alert::CLOSE_NOTIFY, .. } => Action::Close,
        Control::Alert { .. } => Action::Recover,
        Control::Handshake(handshake::NEW_SESSION_TICKET) => Action::Continue,
        Control::Handshake(handshake::KEY_UPDATE) => Action::Rekey,
        Control::Handshake(_) => Action::Recover,
        Control::Other(_) | Control::MalformedAlert(_) | Control::MalformedHandshake | Control::BoundaryLost => {
            Action::Recover
        }
    }
}

/// What bytes a data phase received mean, by the record type recvmsg
/// reported for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseBytes {
    /// Payload: they count, enter the data digest, the phase moves on.
    Payload,
    /// A record that is not data landed in the request's pages: rewind the
    /// phase to its snapshot from before the call (they are not payload
    /// and do not enter the digest; the next payload overwrites them) and
    /// hand the bytes to the record's collector.
    Rewind,
}

/// The decision for bytes received in a data phase.
pub fn data_phase_bytes(record_type: u8) -> PhaseBytes {
    if record_type == content::DATA { PhaseBytes::Payload } else { PhaseBytes::Rewind }
}

/// Why a TLS queue stopped receiving: the unit and what the policy said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsStop {
    /// The unit.
    pub control: Control,
    /// The policy's action (never `Continue`).
    pub action: Action,
}

impl TlsStop {
    /// The errno the queue fails with (positive).
    pub fn errno(&self) -> i32 {
        match self.action {
            Action::Close => errno::ESHUTDOWN,
            Action::Rekey => errno::EKEYEXPIRED,
            Action::Continue | Action::Recover => errno::EPROTO,
        }
    }
}

impl fmt::Display for TlsStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.action {
            Action::Close => write!(f, "{}: the target closed the TLS session, orderly stop", self.control),
            Action::Rekey => write!(f, "{}: KeyUpdate needs new keys and there is no rekey upcall, reconnecting", self.control),
            Action::Continue | Action::Recover => write!(f, "{}", self.control),
        }
    }
}

/// Reads one record that is not data, fed in pieces, and applies the
/// policy to each unit in it: alerts (two bytes each) and handshake
/// messages (a four-byte header, type and 24-bit length, then the body,
/// which is only counted). Handshake messages may span pieces and records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlRecord {
    ctype: u8,
    len: usize,
    unit: [u8; 4],
    got: usize,
    body_left: u32,
    stop: Option<TlsStop>,
    /// NewSessionTickets consumed in this record.
    pub tickets: u32,
}

impl ControlRecord {
    /// A record of content type `ctype` (never data) begins.
    pub fn new(ctype: u8) -> Self {
        let mut r = Self { ctype, len: 0, unit: [0; 4], got: 0, body_left: 0, stop: None, tickets: 0 };
        if ctype != content::ALERT && ctype != content::HANDSHAKE {
            r.apply(Control::Other(ctype));
        }
        r
    }

    /// The record's content type.
    pub fn content_type(&self) -> u8 {
        self.ctype
    }

    fn apply(&mut self, c: Control) {
        if self.stop.is_some() {
            return;
        }
        match policy(c) {
            Action::Continue => {
                if c == Control::Handshake(handshake::NEW_SESSION_TICKET) {
                    self.tickets += 1;
                }
            }
            action => self.stop = Some(TlsStop { control: c, action }),
        }
    }

    /// The first unit the policy did not let pass, if any.
    pub fn stop(&self) -> Option<TlsStop> {
        self.stop
    }

    /// Takes the next piece of the record.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.len = self.len.saturating_add(bytes.len());
        if self.stop.is_some() {
            return;
        }
        match self.ctype {
            content::ALERT => {
                for &b in bytes {
                    if self.got < 2 {
                        self.unit[self.got] = b;
                    }
                    self.got = self.got.saturating_add(1);
                }
            }
            content::HANDSHAKE => {
                let mut rest = bytes;
                while !rest.is_empty() && self.stop.is_none() {
                    if self.body_left > 0 {
                        let n = rest.len().min(self.body_left as usize);
                        // n <= body_left
                        self.body_left -= n as u32;
                        rest = &rest[n..];
                        continue;
                    }
                    self.unit[self.got] = rest[0];
                    self.got += 1;
                    rest = &rest[1..];
                    if self.got == 4 {
                        self.got = 0;
                        self.body_left = u32::from_be_bytes([0, self.unit[1], self.unit[2], self.unit[3]]);
                        self.apply(Control::Handshake(self.unit[0]));
                    }
                }
            }
            _ => {}
        }
    }

    /// The record ended (`MSG_EOR`): an alert record must have been one
    /// whole alert. A handshake message may go on in the next record
    /// (fragmented), but not from inside its header.
    pub fn end(&mut self) {
        match self.ctype {
            content::ALERT if self.got == 2 => {
                self.apply(Control::Alert { level: self.unit[0], desc: self.unit[1] });
            }
            content::ALERT => self.apply(Control::MalformedAlert(self.len)),
            content::HANDSHAKE if self.got != 0 => self.apply(Control::MalformedHandshake),
            _ => {}
        }
    }

    /// Whether a handshake message's body goes on past this record.
    pub fn continues(&self) -> bool {
        self.ctype == content::HANDSHAKE && self.body_left > 0
    }
}

/// What one receive on a TLS queue returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Got {
    /// Bytes placed.
    pub n: usize,
    /// The record type from the control message (0: none reported).
    pub record_type: u8,
    /// The call consumed the end of its record (`MSG_EOR`).
    pub eor: bool,
}

/// What the TLS receive pass needs from a queue, beyond [`QueueIo`]: every
/// receive reports the record type. `Err` and `Ok(Got { n: 0, .. })` mean
/// what they mean for `recv_buf`.
pub trait TlsQueueIo: QueueIo {
    /// `recvmsg` into `buf` with a control buffer reset for this call.
    fn recv_buf_tls(&mut self, buf: &mut [u8]) -> Result<Got, i32>;
    /// `recvmsg` of at most `len` bytes into the current data phase (the
    /// request's pages), with a control buffer; the bytes are placed but
    /// not accounted: [`Self::commit_data`] or [`Self::rewind_data`] follows.
    fn recv_data_tls(&mut self, len: usize) -> Result<Got, i32>;
    /// The `n` bytes just placed are payload: the phase moves past them,
    /// `crc` (with data digests) is extended over them, they count.
    fn commit_data(&mut self, n: usize, crc: Option<&mut u32>);
    /// The `n` bytes just placed belong to a record that is not data: the
    /// phase goes back to where it was before the call, and `sink` is
    /// given the bytes, copied out of the pages, in order.
    fn rewind_data(&mut self, n: usize, sink: &mut dyn FnMut(&[u8]));
    /// A record that is not data was read to its end with no unit the
    /// policy refused (NewSessionTickets consumed: `tickets`).
    fn record_consumed(&mut self, record: &ControlRecord);
}

/// The receive state of a TLS queue besides the machine: the record that
/// is not data being read, and the queue-owned buffer it goes into when it
/// is longer than the space a call offered.
pub struct TlsRx {
    record: Option<ControlRecord>,
    buf: [u8; 256],
}

impl Default for TlsRx {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsRx {
    /// No record in progress.
    pub const fn new() -> Self {
        Self { record: None, buf: [0; 256] }
    }

    /// Whether a record that is not data is being read.
    pub fn in_record(&self) -> bool {
        self.record.is_some()
    }
}

/// Continues the record in progress (or starts one) with `bytes`, ending
/// it on `eor`. The record stays in progress until its end.
fn control_bytes<I: TlsQueueIo>(
    t: &mut Option<ControlRecord>,
    got: Got,
    io: &mut I,
    feed: &mut dyn FnMut(&mut ControlRecord, &mut I),
) -> Result<(), RecvError> {
    let rec = t.get_or_insert_with(|| ControlRecord::new(got.record_type));
    if rec.content_type() != got.record_type {
        // A new record of another type: the previous one ended (EOR was
        // reported with it, so this does not happen with kTLS).
        rec.end();
        if let Some(stop) = rec.stop() {
            return Err(RecvError::Tls(stop));
        }
        *rec = ControlRecord::new(got.record_type);
    }
    feed(rec, io);
    if got.eor {
        rec.end();
    }
    if let Some(stop) = rec.stop() {
        return Err(RecvError::Tls(stop));
    }
    if got.eor && !rec.continues() {
        io.record_consumed(rec);
        *t = None;
    }
    Ok(())
}

/// One receive pass of a TLS queue: [`crate::proto::recv::recv_pass`] with
/// the record type of every receive checked against [`policy`].
///
/// Data records feed the machine exactly as on a plain queue. Bytes of any
/// other record are never accounted by the machine: in a header or digest
/// buffer they are simply overwritten later; in a data phase the phase is
/// rewound ([`data_phase_bytes`]). While a record that is not data goes on
/// (no `MSG_EOR` yet), receives go to the queue's own buffer. Returns as
/// `recv_pass`; a unit the policy refuses ends the pass with
/// `Err(RecvError::Tls(..))`.
pub fn recv_pass_tls<I: TlsQueueIo>(m: &mut RecvMachine, t: &mut TlsRx, io: &mut I) -> Result<PassEnd, RecvError> {
    tls_pass(m, t, io, false).map(|(end, _)| end)
}

/// [`recv_pass_tls`], also the hand-off's: with `one_record`, the pass
/// ends after its first receive that leaves no record that is not data in
/// progress (the record read to its end, or one data receive). Returns the
/// bytes taken too.
fn tls_pass<I: TlsQueueIo>(
    m: &mut RecvMachine,
    t: &mut TlsRx,
    io: &mut I,
    one_record: bool,
) -> Result<(PassEnd, usize), RecvError> {
    let mut completions = 0u32;
    let mut budget = PassBudget::of(io);
    loop {
        if budget.spent() || (one_record && budget.taken() > 0 && t.record.is_none()) {
            return Ok((PassEnd { completions, drained: false }, budget.taken()));
        }
        let took = if t.record.is_some() {
            continue_record(t, io)?.map(|n| (n, false))
        } else {
            match m.want() {
                Want::Header(buf) | Want::Digest(buf) => match received_tls(io.recv_buf_tls(buf))? {
                    Some(g) if g.record_type != content::DATA => {
                        control_in_buf(&mut t.record, g, buf, io)?;
                        Some((g.n, false))
                    }
                    Some(g) => Some((g.n, recv::advance_and_deliver(m, g.n, io)?)),
                    None => None,
                },
                Want::Payload { len, .. } => recv_data_phase(m, &mut t.record, len, io)?,
            }
        };
        let Some((n, completed)) = took else {
            return Ok((PassEnd { completions, drained: true }, budget.taken()));
        };
        budget.take(n);
        if completed {
            completions += 1;
        }
    }
}

/// What one `read_sock()` call on a TLS queue returned, and what the push
/// pass does next. kTLS's `tls_sw_read_sock()` (7.3) hands the actor the
/// data records at the head of the queue, one skb each, and returns the
/// bytes they had (if any), else the reason it stopped: `-EAGAIN` when
/// nothing is queued, `-EINVAL` when the record at the head is not data
/// (it stays queued, at the head of kTLS's `rx_list`), `-EKEYEXPIRED` once
/// a KeyUpdate was decrypted, the socket's error. When it pushed bytes
/// first, those reasons are hidden behind the count: the next call says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadSockStep {
    /// `n > 0` bytes of data records went through the machine: call again
    /// (it may have stopped at a record that is not data).
    Again(usize),
    /// Nothing queued (`-EAGAIN`, or 0 without a FIN): wait for data_ready.
    Drained,
    /// A record that is not data heads the queue (`-EINVAL`), or the peer
    /// closed (`-ESHUTDOWN`, which the socket layer reports for a FIN once
    /// TCP's queue is empty, while such a record may still wait on kTLS's
    /// `rx_list`): recvmsg reads it with its type ([`push_pass_tls`]).
    HandOff,
    /// The connection failed.
    Failed(RecvError),
}

/// The step for `read_sock()`'s return value `ret` on a TLS queue.
pub fn read_sock_step(ret: i32) -> ReadSockStep {
    match ret {
        n if n > 0 => ReadSockStep::Again(n as usize),
        0 => ReadSockStep::Drained,
        e if e == -errno::EAGAIN => ReadSockStep::Drained,
        e if e == -errno::EINVAL || e == -errno::ESHUTDOWN => ReadSockStep::HandOff,
        e => ReadSockStep::Failed(socket_error(e.wrapping_neg())),
    }
}

/// What the push pass of a TLS queue needs beyond [`TlsQueueIo`].
pub trait TlsPushIo: TlsQueueIo {
    /// One `read_sock()` call: the bytes of the data records it pushes go
    /// through `m` as on a plain queue. Returns `read_sock()`'s value and
    /// the machine's completions, or why the machine stopped the queue.
    fn read_sock(&mut self, m: &mut RecvMachine) -> (i32, Result<u32, RecvError>);
    /// A record was handed to the recvmsg path (a counter).
    fn handed_off(&mut self);
}

/// One receive pass of a TLS queue in `read_sock` mode (io_work with
/// `read_sock=1`): `read_sock()` pushes data records through the machine;
/// a record that is not data, which `read_sock()` refuses and leaves
/// queued, is handed to the recvmsg path: [`recv_pass_tls`]'s receive, with
/// the control message, wherever the machine stands (between PDUs, inside
/// a header, a C2HData payload, whose phase rewinds, or a data digest),
/// until the record ends; [`policy`] decides. Then `read_sock()` goes on.
/// A record left in progress (longer than a receive) is finished the same
/// way first. Returns as [`recv_pass_tls`]; `drained: false` when the
/// pass took `io.pass_budget()` bytes.
pub fn push_pass_tls<I: TlsPushIo>(m: &mut RecvMachine, t: &mut TlsRx, io: &mut I) -> Result<PassEnd, RecvError> {
    let mut completions = 0u32;
    let mut budget = PassBudget::of(io);
    loop {
        if budget.spent() {
            return Ok(PassEnd { completions, drained: false });
        }
        let in_record = t.in_record();
        let step = if in_record {
            ReadSockStep::HandOff
        } else {
            let (ret, machine) = io.read_sock(m);
            completions = completions.saturating_add(machine?);
            read_sock_step(ret)
        };
        match step {
            ReadSockStep::Again(n) => budget.take(n),
            ReadSockStep::Drained => return Ok(PassEnd { completions, drained: true }),
            ReadSockStep::Failed(e) => return Err(e),
            ReadSockStep::HandOff => {
                io.handed_off();
                let (end, n) = tls_pass(m, t, io, true)?;
                completions = completions.saturating_add(end.completions);
                if n == 0 && end.drained {
                    if in_record {
                        return Ok(PassEnd { completions, drained: true });
                    }
                    // read_sock() refused what heads the queue and recvmsg
                    // finds nothing: not a record kTLS holds. Calling again
                    // would spin.
                    return Err(RecvError::Socket(errno::EINVAL));
                }
                budget.take(n);
            }
        }
    }
}

/// [`recv_pass_tls`] with batched header receive
/// ([`crate::proto::batch`]): every receive at a header or digest fills
/// `s`. kTLS ends a `recvmsg` where the record type changes, so a fill is
/// all data, fed to the machine, or all of one record that is not data,
/// which goes to the record-type policy as in [`recv_pass_tls`] and is
/// never parsed as PDUs. Payload beyond what a fill carried is received
/// into the request's pages as in [`recv_pass_tls`] (rewound if it turns
/// out not to be data).
pub fn recv_pass_tls_batched<I: TlsQueueIo + StageIo, B: DerefMut<Target = [u8]>>(
    m: &mut RecvMachine,
    t: &mut TlsRx,
    s: &mut Staging<B>,
    io: &mut I,
) -> Result<PassEnd, RecvError> {
    let mut completions = 0u32;
    let mut budget = PassBudget::of(io);
    loop {
        completions += s.feed(m, io)?;
        if budget.spent() {
            return Ok(PassEnd { completions, drained: false });
        }
        let took = if t.record.is_some() {
            continue_record(t, io)?.map(|n| (n, false))
        } else {
            match m.want() {
                Want::Payload { len, .. } if !s.takes_tail(len) => recv_data_phase(m, &mut t.record, len, io)?,
                _ => {
                    let buf = s.space();
                    match received_tls(io.recv_buf_tls(buf))? {
                        Some(g) if g.record_type != content::DATA => {
                            // Never PDUs: the policy's, and the buffer stays empty.
                            control_in_buf(&mut t.record, g, buf, io)?;
                            Some((g.n, false))
                        }
                        Some(g) => {
                            s.filled(g.n)?;
                            Some((g.n, false))
                        }
                        None => None,
                    }
                }
            }
        };
        let Some((n, completed)) = took else {
            return Ok(PassEnd { completions, drained: true });
        };
        budget.take(n);
        if completed {
            completions += 1;
        }
    }
}

/// [`recv::received`] for a TLS receive, whose failure may be a KeyUpdate
/// ([`socket_error`]).
fn received_tls(got: Result<Got, i32>) -> Result<Option<Got>, RecvError> {
    recv::received_as(got, |g| g.n, socket_error)
}

/// Takes the next bytes of the record that is not data in progress (a
/// record longer than the space its first receive offered): they go into
/// the queue's own buffer, never where the machine wants bytes, and on to
/// the record's policy. Returns the bytes taken, or `None` when the socket
/// said `-EAGAIN`. A data record here means kTLS did not end the record
/// where it said (`MSG_EOR`): the record boundary is lost, the queue stops.
fn continue_record<I: TlsQueueIo>(t: &mut TlsRx, io: &mut I) -> Result<Option<usize>, RecvError> {
    let Some(got) = received_tls(io.recv_buf_tls(&mut t.buf))? else {
        return Ok(None);
    };
    if got.record_type == content::DATA {
        let stop = TlsStop { control: Control::BoundaryLost, action: policy(Control::BoundaryLost) };
        return Err(RecvError::Tls(stop));
    }
    control_in_buf(&mut t.record, got, &t.buf, io)?;
    Ok(Some(got.n))
}

/// `got`'s bytes, received into `buf` (a header, digest, staging or the
/// queue's own buffer), belong to a record that is not data: the record's
/// collector gets them; the machine never accounts for them.
fn control_in_buf<I: TlsQueueIo>(
    record: &mut Option<ControlRecord>,
    got: Got,
    buf: &[u8],
    io: &mut I,
) -> Result<(), RecvError> {
    let bytes = buf.get(..got.n).ok_or(RecvError::Internal(errno::EINVAL))?;
    control_bytes(record, got, io, &mut |rec, _| rec.feed(bytes))
}

/// The data phase's receive on a TLS queue, straight into the request's
/// pages (at most `len` bytes): payload is committed ([`TlsQueueIo::commit_data`])
/// and moves the machine; bytes of a record that is not data rewind the
/// phase ([`data_phase_bytes`]) and go to the record's collector. Returns
/// the bytes taken and whether a command completed, or `None` when the
/// socket said `-EAGAIN`. Shared by the batched and unbatched passes so
/// that a payload is received alike in both.
fn recv_data_phase<I: TlsQueueIo>(
    m: &mut RecvMachine,
    record: &mut Option<ControlRecord>,
    len: usize,
    io: &mut I,
) -> Result<Option<(usize, bool)>, RecvError> {
    let Some(g) = received_tls(io.recv_data_tls(len))? else {
        return Ok(None);
    };
    let completed = match data_phase_bytes(g.record_type) {
        PhaseBytes::Payload => {
            let crc = m.data_crc();
            io.commit_data(g.n, crc);
            recv::advance_and_deliver(m, g.n, io)?
        }
        PhaseBytes::Rewind => {
            control_bytes(record, g, io, &mut |rec, io| io.rewind_data(g.n, &mut |b| rec.feed(b)))?;
            false
        }
    };
    Ok(Some((g.n, completed)))
}

/// A failed TLS receive: `-EKEYEXPIRED` (kTLS after a KeyUpdate) is the
/// KeyUpdate case of the policy, whoever read the record.
fn socket_error(e: i32) -> RecvError {
    if e == errno::EKEYEXPIRED {
        let c = Control::Handshake(handshake::KEY_UPDATE);
        return RecvError::Tls(TlsStop { control: c, action: policy(c) });
    }
    RecvError::Socket(e)
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
