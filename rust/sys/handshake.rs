// SPDX-License-Identifier: GPL-2.0
//! TLS set-up of a queue's socket: the PSK (nvme-keyring), the handshake
//! upcall (net/handshake, served by tlshd) and the socket file it needs.
//!
//! C side: `drivers/nvme/host/tcp.c` (`nvme_tcp_start_tls`,
//! `nvme_tcp_tls_done`, `nvme_tcp_alloc_admin_queue`),
//! `drivers/nvme/common/keyring.c`, `include/net/handshake.h`.

use super::bindings as nb;
use super::fabrics::CtrlOptions;
use super::nvme::NvmeCtrl;
use super::socket::TcpSocket;
use crate::proto::tls::Got;
use core::sync::atomic::{AtomicI32, Ordering};
use kernel::{bindings as kb, error::from_err_ptr, prelude::*, types::Opaque};

/// A key serial number (`key_serial_t`), never 0 (`TLS_NO_PEERID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeySerial(i32);

impl KeySerial {
    /// `None` for 0, the "no key" serial.
    pub(crate) fn new(id: i32) -> Option<Self> {
        (id != 0).then_some(Self(id))
    }

    /// The serial as the kernel spells it (sysfs shows it as `%08x`).
    pub(crate) fn get(self) -> i32 {
        self.0
    }
}

/// `key_serial(key)`: 0 for NULL.
///
/// # Safety
///
/// `key` is NULL or a key the caller holds a reference on.
unsafe fn key_serial(key: *mut kb::key) -> i32 {
    if key.is_null() {
        0
    } else {
        // SAFETY: a referenced key (caller); `serial` never changes.
        unsafe { (*key).serial }
    }
}

impl CtrlOptions {
    fn raw_opts(&self) -> &nb::nvmf_ctrl_options {
        // SAFETY: `CtrlOptions` wraps valid options, unchanged while
        // borrowed (its type invariant).
        unsafe { &*self.as_raw() }
    }

    /// `tls`: a TLS 1.3 session with a configured PSK on every queue.
    pub(crate) fn tls(&self) -> bool {
        self.raw_opts().tls
    }

    /// `concat`: secure channel concatenation, TLS with the PSK that
    /// DH-HMAC-CHAP generates on the admin queue.
    pub(crate) fn concat(&self) -> bool {
        self.raw_opts().concat
    }

    /// `tls_key=`: the PSK to offer, as nvme-fabrics looked it up; with
    /// `concat`, the one DH-HMAC-CHAP generated (nvme-core sets it during
    /// the admin queue's Connect, on the set-up path that reads it).
    pub(crate) fn tls_key(&self) -> Option<KeySerial> {
        // SAFETY: the options hold a reference on their key until freed.
        KeySerial::new(unsafe { key_serial(self.raw_opts().tls_key) })
    }

    /// `keyring=`, else the `.nvme` keyring (C: `nvme_keyring_id()`).
    pub(crate) fn keyring(&self) -> KeySerial {
        // SAFETY: the options hold a reference on their keyring until freed.
        let given = unsafe { key_serial(self.raw_opts().keyring) };
        // SAFETY: nvme-keyring (a dependency of nvme-fabrics) is loaded and
        // its keyring exists while it is.
        KeySerial::new(given).unwrap_or(KeySerial(unsafe { nb::nvme_keyring_id() }))
    }

    /// The host NQN (`hostnqn=` or the default one).
    pub(crate) fn hostnqn(&self) -> Option<&CStr> {
        let host = self.raw_opts().host;
        if host.is_null() {
            return None;
        }
        // SAFETY: the options reference their nvmf_host, whose `nqn` is a
        // NUL-terminated array that outlives the options.
        Some(unsafe { CStr::from_char_ptr((*host).nqn.as_ptr()) })
    }

    /// The retained PSK for (host NQN, subsystem NQN) in the connect's
    /// keyring (C: `nvme_tls_psk_default()`), `None` if there is none.
    pub(crate) fn default_psk(&self) -> Option<KeySerial> {
        let o = self.raw_opts();
        if o.host.is_null() || o.subsysnqn.is_null() {
            return None;
        }
        // SAFETY: `host` is the nvmf_host the options reference (non-NULL
        // checked), whose `nqn` is a NUL-terminated array; `subsysnqn` is
        // NUL-terminated; the keyring is NULL or referenced by the options.
        let id = unsafe { nb::nvme_tls_psk_default(o.keyring, (*o.host).nqn.as_ptr(), o.subsysnqn) };
        KeySerial::new(id)
    }
}

impl NvmeCtrl {
    /// `ctrl->tls_pskid`: the PSK the admin queue negotiated (sysfs
    /// `tls_key`), `None` when not set.
    pub(crate) fn tls_pskid(self) -> Option<KeySerial> {
        // SAFETY: a valid controller (type invariant); set-up paths, which
        // nvme-core runs one at a time, are the only writers.
        KeySerial::new(unsafe { (*self.as_raw()).tls_pskid })
    }

    /// `nvme_auth_revoke_tls_key()`: revokes and drops the PSK secure
    /// concatenation generated (`opts->tls_key`), so the next set-up
    /// authenticates and generates a new one.
    pub(crate) fn revoke_tls_key(self) {
        // SAFETY: a valid controller (type invariant), on a reset or
        // recovery path, which nvme-core runs one at a time with the
        // set-up paths that read `opts->tls_key`.
        unsafe { nb::nvme_auth_revoke_tls_key(self.as_raw()) };
    }

    /// Sets or wipes `ctrl->tls_pskid` (set-up paths only).
    pub(crate) fn set_tls_pskid(self, id: Option<KeySerial>) {
        // SAFETY: as above.
        unsafe { (*self.as_raw()).tls_pskid = id.map_or(0, KeySerial::get) };
    }
}

/// Whether `id` names a PSK that exists and is neither revoked nor
/// invalidated (C: `nvme_tls_key_lookup()` in `nvme_tcp_tls_done()`).
pub(crate) fn psk_usable(id: KeySerial) -> bool {
    // SAFETY: a plain lookup; the reference it returns is dropped at once.
    let key = unsafe { nb::nvme_tls_key_lookup(id.0) };
    match from_err_ptr(key) {
        Ok(key) => {
            // SAFETY: the reference the lookup took.
            unsafe { kb::key_put(key) };
            true
        }
        Err(_) => false,
    }
}

/// Gives a connected socket the file the handshake upcall passes to tlshd
/// (C: `sock_alloc_file()` in `nvme_tcp_alloc_queue()`). From here on the
/// file owns the socket: [`TcpSocket`]'s drop puts the file.
pub(crate) fn attach_file(sock: TcpSocket) -> Result<TcpSocket> {
    let raw = sock.as_raw();
    // SAFETY: a valid socket without a file (only this function adds one);
    // the name is NUL-terminated.
    if !unsafe { (*raw).file }.is_null() {
        return Ok(sock);
    }
    // SAFETY: as above.
    let file = unsafe { kb::sock_alloc_file(raw, kb::O_CLOEXEC as c_int, core::ptr::null()) };
    if let Err(e) = from_err_ptr(file) {
        // sock_alloc_file() released the socket on failure: it is gone,
        // and dropping the wrapper would release it again.
        core::mem::forget(sock);
        return Err(e);
    }
    Ok(sock)
}

/// Why a handshake did not give a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandshakeError {
    /// `tls_client_hello_psk()` refused to start (`-ESRCH`: no tlshd
    /// listening; `-EINVAL`, `-ENOMEM`…).
    Start(Error),
    /// No answer within the timeout (or a signal): the request was
    /// cancelled. The errno is `-ETIMEDOUT` or `-ERESTARTSYS`.
    Timeout(Error),
    /// tlshd answered with a failure (`-EACCES`: the peer refused,
    /// `-ENOKEY`: the negotiated key is not usable…).
    Failed(Error),
}

impl HandshakeError {
    /// The errno the connect fails with.
    pub(crate) fn error(self) -> Error {
        match self {
            Self::Start(e) | Self::Timeout(e) | Self::Failed(e) => e,
        }
    }
}

/// What the handshake's done callback fills in (C: the queue's
/// `tls_complete`, `tls_err` and the peer id).
///
/// # Invariants
///
/// `done` was initialised by `init_completion()`; the box holding this is
/// not freed while a done callback may still run (see [`client_hello_psk`]).
struct DoneState {
    done: Opaque<kb::completion>,
    status: AtomicI32,
    peerid: AtomicI32,
}

/// `ta_done`: tlshd finished (or the request was torn down). Runs in the
/// netlink handler of tlshd's DONE command, or where net/handshake fails
/// the request; exactly once for a submitted request unless it was
/// cancelled first.
///
/// # Safety
///
/// `data` is the `DoneState` [`client_hello_psk`] submitted, which stays
/// allocated until this has completed `done`.
unsafe extern "C" fn tls_done(data: *mut c_void, status: c_int, peerid: kb::key_serial_t) {
    // SAFETY: by the caller's guarantee.
    let st = unsafe { &*data.cast::<DoneState>() };
    st.status.store(status, Ordering::Relaxed);
    st.peerid.store(peerid, Ordering::Relaxed);
    // SAFETY: initialised (type invariant); `complete()` orders the stores
    // above before the waiter wakes.
    unsafe { kb::complete(st.done.get()) };
}

/// Runs the TLS 1.3 PSK client handshake on `sock` through the handshake
/// upcall (C: `nvme_tcp_start_tls()`), offering `psk` from `keyring`, and
/// waits up to `timeout_s` seconds. On success kTLS is set on the socket
/// and the PSK the session uses is returned.
///
/// On a timeout (or a signal) the request is cancelled with
/// `tls_handshake_cancel()`; if the done callback won that race, this
/// waits for it to finish before the state it writes is freed (the C
/// driver keeps that state in the queue and does not wait).
pub(crate) fn client_hello_psk(
    sock: &TcpSocket,
    psk: KeySerial,
    keyring: KeySerial,
    timeout_s: u32,
) -> core::result::Result<KeySerial, HandshakeError> {
    let st = KBox::new(
        DoneState { done: Opaque::uninit(), status: AtomicI32::new(-(kb::EOPNOTSUPP as i32)), peerid: AtomicI32::new(0) },
        GFP_KERNEL,
    )
    .map_err(|_| HandshakeError::Start(ENOMEM))?;
    // SAFETY: the completion is in the box, which does not move, and not
    // yet shared: nobody waits on or completes it before this returns
    // (`init_completion()`, the kernel crate's helper).
    unsafe { kb::init_completion(st.done.get()) };
    let timeout_ms = timeout_s.saturating_mul(1000);
    let mut args = nb::tls_handshake_args {
        ta_sock: sock.as_raw(),
        ta_done: Some(tls_done),
        ta_data: (&raw const *st).cast_mut().cast(),
        ta_timeout_ms: timeout_ms,
        ta_keyring: keyring.0,
        ta_num_peerids: 1,
        ..Default::default()
    };
    args.ta_my_peerids[0] = psk.0;
    // SAFETY: `args` is complete; the socket is connected and has a file
    // (`attach_file`), which the request pins; `ta_data` stays valid until
    // the done callback ran or the request was cancelled (below).
    let ret = unsafe { nb::tls_client_hello_psk(&args, kb::GFP_KERNEL) };
    if ret != 0 {
        // No callback will come (net/handshake's contract).
        return Err(HandshakeError::Start(Error::from_errno(ret)));
    }
    // SAFETY: `__msecs_to_jiffies` is a pure conversion.
    let tmo = unsafe { kb::__msecs_to_jiffies(timeout_ms) };
    // SAFETY: the completion is initialised and lives in the box.
    let left = unsafe { kb::wait_for_completion_interruptible_timeout(st.done.get(), tmo) };
    if left <= 0 {
        let e = if left < 0 { Error::from_errno(-(kb::ERESTARTSYS as i32)) } else { ETIMEDOUT };
        // SAFETY: the socket is valid; cancelling is allowed at any time.
        let cancelled = unsafe { nb::tls_handshake_cancel((*sock.as_raw()).sk) };
        if !cancelled {
            // The callback ran or is running: it completes `done`, and is
            // quick (no sleep in it), so wait before freeing the state.
            // SAFETY: as above.
            unsafe { kb::wait_for_completion(st.done.get()) };
        }
        return Err(HandshakeError::Timeout(e));
    }
    let status = st.status.load(Ordering::Relaxed);
    if status != 0 {
        return Err(HandshakeError::Failed(Error::from_errno(if status < 0 { status } else { -status })));
    }
    match KeySerial::new(st.peerid.load(Ordering::Relaxed)) {
        Some(id) if psk_usable(id) => Ok(id),
        _ => Err(HandshakeError::Failed(ENOKEY)),
    }
}

/// Room for one `SOL_TLS`/`TLS_GET_RECORD_TYPE` control message
/// (`CMSG_SPACE(1)`), aligned as a `cmsghdr`.
#[repr(C, align(8))]
struct RecordTypeCmsg([u8; 24]);

impl TcpSocket {
    /// `sock_recvmsg()` with `msg` (its iterator set up by the caller) and
    /// a control buffer for the TLS record type, set afresh for this call
    /// (`put_cmsg()` advances `msg_control` and shrinks `msg_controllen`)
    /// and cleared again before returning. Returns the bytes placed, the
    /// record type (0 when none was reported) and whether the record's
    /// end was consumed (`MSG_EOR`); errors as negative errnos.
    pub(crate) fn recvmsg_record(&self, msg: &mut kb::msghdr, flags: c_int) -> core::result::Result<Got, c_int> {
        let mut cbuf = RecordTypeCmsg([0; 24]);
        msg.__bindgen_anon_1.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = cbuf.0.len();
        msg.msg_flags = 0;
        // SAFETY: the socket is valid (its invariant); `msg`'s iterator is
        // the caller's destination and its control buffer lives on this
        // stack frame for the call.
        let n = unsafe { kb::sock_recvmsg(self.as_raw(), msg, flags) };
        let eor = msg.msg_flags & kb::MSG_EOR != 0;
        msg.__bindgen_anon_1.msg_control = core::ptr::null_mut();
        msg.msg_controllen = 0;
        if n < 0 {
            return Err(n);
        }
        // SAFETY: the socket is valid; the helper reads the cmsghdr at the
        // start of `cbuf`, zeroed unless kTLS wrote the record type there.
        let record_type = unsafe { nb::tls_get_record_type((*self.as_raw()).sk, cbuf.0.as_ptr().cast()) };
        Ok(Got { n: n as usize, record_type, eor })
    }

    /// [`Self::recvmsg_record`] into `buf` (a PDU header, a digest, the
    /// ICResp, the queue's record buffer).
    pub(crate) fn recv_record(&self, buf: &mut [u8], flags: c_int) -> core::result::Result<Got, c_int> {
        let mut msg = kb::msghdr::default();
        let mut iov = kb::kvec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: `iov` covers `buf`, writable for the call; the iterator
        // is used only by the receive below.
        unsafe { kb::iov_iter_kvec(&raw mut msg.msg_iter, kb::ITER_DEST, &raw mut iov, 1, buf.len()) };
        self.recvmsg_record(&mut msg, flags)
    }
}
