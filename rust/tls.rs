// SPDX-License-Identifier: GPL-2.0
//! TLS on a controller's queues: which PSK each queue offers and the
//! handshake, in the C driver's order: TCP connect, handshake, then
//! ICReq/ICResp (`nvme_tcp_alloc_queue`). The unsafe parts (keyring,
//! net/handshake upcall, socket file) are in `sys::handshake`; what a TLS
//! record means once the queue runs is `proto::tls`.
//!
//! Receiving on a TLS queue (`Documentation/tls.md`): every record's type
//! is seen and goes through one policy (`proto::tls::policy`). io_work
//! pulls with `sock_recvmsg()` and a control buffer; with `read_sock=1` it
//! pushes with `read_sock()`, and a record that `tls_sw_read_sock()`
//! refuses (`-EINVAL`, not data, left queued) is handed to that recvmsg
//! receive, then `read_sock()` goes on (`proto::tls::push_pass_tls`). A
//! poll queue's poller hands TLS queues to io_work: `tls_sw_read_sock()`
//! takes kTLS's reader lock, which may sleep, and pollers must not.

use crate::proto::tls::{content, ControlRecord};
use crate::sys::fmt::Shown;
use crate::sys::handshake::{self, HandshakeError, KeySerial};
use crate::sys::nvme::NvmeCtrl;
use crate::sys::socket::TcpSocket;
use kernel::{device::Device, prelude::*};

/// Whether the controller runs TLS: `tls`, or `concat` (C:
/// `nvme_tcp_tls_configured()`).
fn tls_configured(n: NvmeCtrl) -> bool {
    n.opts().tls() || n.opts().concat()
}

/// Secure concatenation's first pass: the admin queue connects over plain
/// TCP so DH-HMAC-CHAP can generate the PSK (`opts->tls_key`), then set-up
/// restarts it over TLS with that PSK (C: `ctrl->opts->concat &&
/// !ctrl->tls_pskid` in `nvme_tcp_setup_ctrl`).
pub(crate) fn concat_first_pass(n: NvmeCtrl) -> bool {
    n.opts().concat() && n.tls_pskid().is_none()
}

/// The generated PSK must be revoked before the admin queue is set up
/// again (C: `nvme_tcp_key_revoke_needed()`): with `concat`, once a PSK
/// was generated and negotiated.
pub(crate) fn key_revoke_needed(n: NvmeCtrl) -> bool {
    n.opts().concat() && n.opts().tls_key().is_some() && n.tls_pskid().is_some()
}

/// The PSK queue `qid` offers, `None` without TLS (C:
/// `nvme_tcp_alloc_admin_queue()` for the admin queue: `tls_key=` (with
/// `concat`, the generated one, none on the first pass) or the retained
/// PSK for the host and subsystem NQNs; `__nvme_tcp_alloc_io_queues()` for
/// I/O queues: the one the admin queue negotiated).
fn queue_psk(n: NvmeCtrl, qid: u16) -> Result<Option<KeySerial>> {
    let opts = n.opts();
    if !tls_configured(n) {
        return Ok(None);
    }
    let dev = n.device();
    if qid == 0 {
        if let Some(k) = opts.tls_key() {
            return Ok(Some(k));
        }
        if opts.concat() {
            return Ok(None);
        }
        return match opts.default_psk() {
            Some(k) => Ok(Some(k)),
            None => {
                dev_err!(
                    dev,
                    "rnvme_tcp: queue 0: no valid PSK found for host {} and subsystem {} in keyring {:08x}\n",
                    opts.hostnqn().unwrap_or(c"?"),
                    opts.subsysnqn().unwrap_or(c"?"),
                    opts.keyring().get()
                );
                Err(ENOKEY)
            }
        };
    }
    if opts.concat() {
        let Some(k) = opts.tls_key() else {
            dev_err!(dev, "rnvme_tcp: queue {}: no PSK generated\n", qid);
            return Err(ENOKEY);
        };
        if let Some(id) = n.tls_pskid().filter(|id| id.get() != k.get()) {
            dev_err!(dev, "rnvme_tcp: queue {}: stale PSK id {:08x}\n", qid, id.get());
            n.set_tls_pskid(None);
        }
    }
    match n.tls_pskid() {
        Some(k) => Ok(Some(k)),
        None => {
            dev_err!(dev, "rnvme_tcp: queue {}: no PSK negotiated\n", qid);
            Err(ENOKEY)
        }
    }
}

/// Starts TLS on queue `qid`'s connected socket when the controller is
/// configured for it (C: `nvme_tcp_start_tls()`); returns the socket,
/// carrying kTLS if so. The admin queue's session sets `ctrl->tls_pskid`
/// (sysfs `tls_key`). A handshake that fails or times out fails the
/// queue with a line naming the queue and the cause.
pub(crate) fn start(n: NvmeCtrl, qid: u16, sock: TcpSocket) -> Result<TcpSocket> {
    let Some(psk) = queue_psk(n, qid)? else {
        return Ok(sock);
    };
    let dev = n.device();
    let mut sock = handshake::attach_file(sock).inspect_err(|e| {
        dev_err!(dev, "rnvme_tcp: queue {}: no socket file for the TLS handshake: {}\n", qid, e.to_errno());
    })?;
    let timeout = crate::module_parameters::tls_handshake_timeout.value();
    let keyring = n.opts().keyring();
    match handshake::client_hello_psk(&sock, psk, keyring, timeout) {
        Ok(id) => {
            if qid == 0 {
                n.set_tls_pskid(Some(id));
                dev_info!(dev, "queue 0: TLS 1.3 session with PSK {:08x} (rnvme_tcp)\n", id.get());
            }
            sock.set_tls();
            Ok(sock)
        }
        Err(e) => {
            let errno = e.error().to_errno();
            match e {
                HandshakeError::Start(_) if errno == -(kernel::bindings::ESRCH as i32) => dev_err!(
                    dev,
                    "rnvme_tcp: queue {}: failed to start TLS: no handshake agent (is tlshd running?): {}\n",
                    qid,
                    errno
                ),
                HandshakeError::Start(_) => {
                    dev_err!(dev, "rnvme_tcp: queue {}: failed to start TLS: {}\n", qid, errno)
                }
                HandshakeError::Timeout(_) => dev_err!(
                    dev,
                    "rnvme_tcp: queue {}: TLS handshake timed out after {} s (tls_handshake_timeout), cancelled: {}\n",
                    qid,
                    timeout,
                    errno
                ),
                HandshakeError::Failed(_) => dev_err!(
                    dev,
                    "rnvme_tcp: queue {}: TLS handshake failed with PSK {:08x}: {}\n",
                    qid,
                    psk.get(),
                    errno
                ),
            }
            Err(e.error())
        }
    }
}

/// Receives the ICResp (blocking, up to the socket's 10 s receive timeout).
/// On a TLS queue every receive reports its record type (C: the ICResp's
/// `tls_get_record_type()` check) and records that are not data go through
/// the record-type policy: a NewSessionTicket is consumed, anything else
/// fails the queue, named in the log.
pub(crate) fn recv_icresp(dev: &Device, qid: u16, sock: &TcpSocket, buf: &mut [u8]) -> Result {
    if !sock.tls() {
        return sock.recv_exact_setup(buf);
    }
    let mut got = 0;
    let mut record: Option<ControlRecord> = None;
    let mut scratch = [0u8; 256];
    while got < buf.len() {
        // A record that is not data goes on in the scratch buffer.
        let dst = if record.is_some() { &mut scratch[..] } else { &mut buf[got..] };
        let r = sock.recv_record(dst, 0).map_err(Error::from_errno)?;
        if r.n == 0 {
            return Err(ECONNRESET);
        }
        if r.record_type == content::DATA {
            if record.is_some() {
                dev_err!(dev, "rnvme_tcp: queue {}: icresp: TLS data record inside a control record\n", qid);
                return Err(EPROTO);
            }
            got += r.n.min(buf.len() - got);
            continue;
        }
        let bytes = dst.get(..r.n).ok_or(EINVAL)?;
        let rec = record.get_or_insert_with(|| ControlRecord::new(r.record_type));
        rec.feed(bytes);
        if r.eor {
            rec.end();
        }
        if let Some(stop) = rec.stop() {
            dev_err!(dev, "rnvme_tcp: queue {}: icresp: {}\n", qid, Shown(stop));
            return Err(Error::from_errno(-stop.errno()));
        }
        if r.eor && !rec.continues() {
            record = None;
        }
    }
    Ok(())
}
