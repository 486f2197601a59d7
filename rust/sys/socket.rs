// SPDX-License-Identifier: GPL-2.0
//! A queue's kernel TCP socket.

use super::bindings::{self as nb, net};
use kernel::{bindings as kb, error::to_result, prelude::*, types::Opaque};

/// A transport address parsed by `inet_pton_with_scope()`.
pub(crate) struct SockAddr(kb::__kernel_sockaddr_storage);

impl SockAddr {
    /// Parses `addr`/`port` as nvme-fabrics gives them (IPv4 or IPv6).
    pub(crate) fn parse(addr: &CStr, port: &CStr) -> Result<Self> {
        let mut s = SockAddr(Default::default());
        // SAFETY: both strings are NUL-terminated and `s.0` is writable
        // storage of the size the function expects.
        to_result(unsafe {
            nb::rnvme_parse_addr(addr.as_char_ptr(), port.as_char_ptr(), (&raw mut s.0).cast())
        })?;
        Ok(s)
    }

    /// Parses a host address without a port (`host_traddr`).
    pub(crate) fn parse_host(addr: &CStr) -> Result<Self> {
        let mut s = SockAddr(Default::default());
        // SAFETY: `addr` is NUL-terminated, a NULL port means "any", and
        // `s.0` is writable storage of the expected size.
        to_result(unsafe { nb::rnvme_parse_addr(addr.as_char_ptr(), core::ptr::null(), (&raw mut s.0).cast()) })?;
        Ok(s)
    }

    fn family(&self) -> c_int {
        // SAFETY: every variant of the storage union starts with the family.
        c_int::from(unsafe { self.0.__bindgen_anon_1.__bindgen_anon_1.ss_family })
    }
}

/// A connected kernel TCP socket; shut down and released when dropped.
///
/// # Invariants
///
/// `sock` was created by `sock_create_kern()` and is released only by `drop`.
pub(crate) struct TcpSocket {
    sock: core::ptr::NonNull<kb::socket>,
    /// A TLS session is set on it (kTLS after the handshake upcall).
    tls: bool,
}

// SAFETY: a kernel socket may be used and released from any task; the
// socket layer does its own locking.
unsafe impl Send for TcpSocket {}
// SAFETY: as for `Send`: every method goes through the socket layer's locking.
unsafe impl Sync for TcpSocket {}

impl TcpSocket {
    /// Creates a TCP socket with the NVMe/TCP queue options, binds it to
    /// `src` and/or the interface `iface` when given, and connects it
    /// (blocking, one SYN retry).
    pub(crate) fn connect(addr: &SockAddr, src: Option<&SockAddr>, iface: Option<&CStr>, tos: c_int) -> Result<Self> {
        let mut raw: *mut kb::socket = core::ptr::null_mut();
        // SAFETY: `rnvme_current_net()` is the caller's namespace; `raw`
        // receives the new socket.
        to_result(unsafe {
            kb::sock_create_kern(
                nb::rnvme_current_net().cast(),
                addr.family(),
                kb::sock_type_SOCK_STREAM as c_int,
                kb::IPPROTO_TCP as c_int,
                &mut raw,
            )
        })?;
        let sock = core::ptr::NonNull::new(raw).ok_or(ENOMEM)?;
        // INVARIANT: created by sock_create_kern just now.
        let s = Self { sock, tls: false };
        // A kernel socket does not pin its namespace; the queue's socket
        // must, as long as it lives (C: `nvme_tcp_alloc_queue`).
        // SAFETY: a new socket of sock_create_kern(), whose `sk` is set and
        // holds no namespace reference yet.
        unsafe { net::sk_net_refcnt_upgrade((*s.as_raw()).sk.cast()) };
        // SAFETY: `sock` is a valid new socket, not yet shared.
        unsafe { nb::rnvme_tcp_sock_setup(s.as_raw().cast(), tos) };
        if let Some(src) = src {
            // SAFETY: the address storage is valid for its full size.
            to_result(unsafe {
                kb::kernel_bind(
                    s.as_raw(),
                    (&raw const src.0).cast_mut().cast(),
                    core::mem::size_of::<kb::__kernel_sockaddr_storage>() as c_int,
                )
            })
            .inspect_err(|e| pr_err!("failed to bind to host_traddr: {}\n", e.to_errno()))?;
        }
        if let Some(iface) = iface {
            // SAFETY: the socket is valid and `iface` NUL-terminated.
            to_result(unsafe { nb::rnvme_sock_bind_iface(s.as_raw().cast(), iface.as_char_ptr().cast_mut()) })
                .inspect_err(|e| pr_err!("failed to bind to interface {}: {}\n", iface, e.to_errno()))?;
        }
        // SAFETY: the address storage is valid for its full size.
        to_result(unsafe {
            kb::kernel_connect(
                s.as_raw(),
                (&raw const addr.0).cast_mut().cast(),
                core::mem::size_of::<kb::__kernel_sockaddr_storage>() as c_int,
                0,
            )
        })?;
        Ok(s)
    }

    /// Whether the socket still holds sent data (`sk_wmem_alloc_get()`):
    /// skbs not yet acknowledged or freed, which may reference request
    /// pages sent with `MSG_SPLICE_PAGES`.
    pub(crate) fn send_queued(&self) -> bool {
        // SAFETY: the socket is valid (invariant).
        unsafe { nb::rnvme_sock_wmem_alloc(self.as_raw().cast()) > 0 }
    }

    /// Whether kTLS carries this socket (set once its handshake is done).
    pub(crate) fn tls(&self) -> bool {
        self.tls
    }

    /// Records that the handshake put kTLS on the socket.
    pub(crate) fn set_tls(&mut self) {
        self.tls = true;
    }

    /// The raw socket, for the socket-layer calls in this module.
    pub(crate) fn as_raw(&self) -> *mut kb::socket {
        self.sock.as_ptr()
    }

    /// `kernel_sock_shutdown(SHUT_RDWR)`: both directions end; the socket
    /// stays allocated until dropped.
    pub(crate) fn shutdown(&self) {
        // SAFETY: the socket is valid (invariant); shutting down twice is
        // harmless.
        unsafe { kb::kernel_sock_shutdown(self.as_raw(), kb::sock_shutdown_cmd_SHUT_RDWR) };
    }

    /// Sends all of `buf` (blocking); for connection set-up only.
    pub(crate) fn send_all(&self, buf: &[u8]) -> Result {
        let mut off = 0;
        while off < buf.len() {
            let mut iov = kb::kvec { iov_base: buf[off..].as_ptr().cast_mut().cast(), iov_len: buf.len() - off };
            let mut msg = kb::msghdr::default();
            // SAFETY: `iov` covers initialised bytes of `buf`, which
            // outlives the call; the socket is valid by the invariant.
            let n = unsafe { kb::kernel_sendmsg(self.as_raw(), &mut msg, &mut iov, 1, iov.iov_len) };
            if n <= 0 {
                return Err(if n < 0 { Error::from_errno(n) } else { EPIPE });
            }
            off += n as usize;
        }
        Ok(())
    }

    /// Sends what it can of `buf` without blocking (`more`: MSG_MORE, else
    /// MSG_EOR). Returns the bytes sent or a negative errno (`-EAGAIN`:
    /// the socket is full).
    pub(crate) fn send_nonblocking(&self, buf: &[u8], more: bool) -> core::result::Result<usize, c_int> {
        let mut iov = kb::kvec { iov_base: buf.as_ptr().cast_mut().cast(), iov_len: buf.len() };
        let flags = kb::MSG_DONTWAIT | if more { kb::MSG_MORE } else { kb::MSG_EOR };
        let mut msg = kb::msghdr { msg_flags: flags, ..Default::default() };
        // SAFETY: `iov` covers `buf`, alive for the call; the socket is
        // valid by the invariant.
        let n = unsafe { kb::kernel_sendmsg(self.as_raw(), &mut msg, &mut iov, 1, buf.len()) };
        if n < 0 { Err(n) } else { Ok(n as usize) }
    }

    /// Runs `sock->ops->read_sock()` with `actor` over what the socket
    /// holds: under `lock_sock()` when `may_sleep` (and then a drained
    /// socket's error or FIN is returned, as `-errno` / `-ESHUTDOWN`), else
    /// under the socket spinlock, `-EBUSY` when a task owns the socket.
    /// Returns the bytes consumed or a negative errno.
    ///
    /// # Safety
    ///
    /// `actor` may be called with `ctx`, during this call only; `ctx` must
    /// be what it expects. Without `may_sleep`, `actor` must not sleep.
    pub(crate) unsafe fn read_sock(
        &self,
        may_sleep: bool,
        ctx: *mut c_void,
        actor: unsafe extern "C" fn(*mut c_void, *mut kb::sk_buff, c_uint, usize) -> c_int,
    ) -> c_int {
        // SAFETY: the socket is valid (invariant); `ctx` and `actor` by the
        // caller.
        unsafe {
            if may_sleep {
                nb::rnvme_sock_read_locked(self.as_raw().cast(), ctx, Some(actor))
            } else {
                nb::rnvme_sock_read_push(self.as_raw().cast(), ctx, Some(actor))
            }
        }
    }

    /// Receives into `buf` with `flags`. `Ok(0)` means the peer closed;
    /// errors are negative errnos as the socket layer returns them.
    pub(crate) fn recv(&self, buf: &mut [u8], flags: c_int) -> core::result::Result<usize, c_int> {
        let mut iov = kb::kvec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut msg = kb::msghdr { msg_flags: flags as c_uint, ..Default::default() };
        // SAFETY: `iov` covers `buf`, writable and alive for the call; the
        // socket is valid by the invariant.
        let n = unsafe { kb::kernel_recvmsg(self.as_raw(), &mut msg, &mut iov, 1, buf.len(), flags) };
        if n < 0 { Err(n) } else { Ok(n as usize) }
    }

    /// Receives exactly `buf.len()` bytes, blocking up to the socket's
    /// receive timeout (10 s); for the ICResp only, never the I/O path.
    pub(crate) fn recv_exact_setup(&self, buf: &mut [u8]) -> Result {
        match self.recv(buf, kb::MSG_WAITALL as c_int) {
            Ok(n) if n == buf.len() => Ok(()),
            Ok(_) => Err(ECONNRESET),
            Err(e) => Err(Error::from_errno(e)),
        }
    }
}

impl Drop for TcpSocket {
    fn drop(&mut self) {
        // No I/O from reclaim while the socket goes (C:
        // `nvme_tcp_free_queue`): teardown may run under block-layer locks
        // (del_gendisk) that the completion path of such I/O needs.
        // SAFETY: plain flag save on the current task, restored below.
        let noio = unsafe { nb::rnvme_memalloc_noio_save() };
        // SAFETY: by the invariant the socket is valid and released only here.
        unsafe {
            kb::kernel_sock_shutdown(self.as_raw(), kb::sock_shutdown_cmd_SHUT_RDWR);
            // A TLS queue's socket has a file (`handshake::attach_file`),
            // which owns it: the last fput releases it (C:
            // `nvme_tcp_free_queue`'s `__fput_sync`).
            let file = (*self.as_raw()).file;
            if file.is_null() {
                kb::sock_release(self.as_raw());
            } else {
                kb::__fput_sync(file);
            }
        }
        // SAFETY: the flags saved above, on the same task.
        unsafe { nb::rnvme_memalloc_noio_restore(noio) };
    }
}

/// What a queue's socket callbacks (softirq, `helpers.c`) read through
/// `sk_user_data`: C `struct rnvme_sk_ctx`.
///
/// # Invariants
///
/// While installed on a socket (from [`Self::install`] until
/// [`Self::restore`]) the callbacks may read it at any time: every field
/// they read is written with a volatile store (they read with
/// `READ_ONCE`), it does not move, and its `io_work` and `queue` stay valid.
/// The fields the callbacks do not read are written only while it is not
/// installed.
pub(crate) struct SockCallbacks(Opaque<nb::rnvme_sk_ctx>);

// SAFETY: the context is shared with softirq callbacks on any CPU; every
// concurrent access is a volatile load/store of a plain field (invariant).
unsafe impl Sync for SockCallbacks {}
// SAFETY: as above; nothing in it is bound to a thread.
unsafe impl Send for SockCallbacks {}

impl SockCallbacks {
    /// Not installed anywhere.
    pub(crate) fn new() -> Self {
        Self(Opaque::new(Default::default()))
    }

    /// Installs the queue's callbacks on `sock`: data_ready and
    /// write_space kick `io_work` on `io_cpu` while receiving is enabled;
    /// a closing socket calls `error(queue)`.
    ///
    /// # Safety
    ///
    /// Not installed now; `io_work` is an initialised work item and `queue`
    /// valid for `error` until [`Self::restore`]; `self` does not move
    /// meanwhile.
    pub(crate) unsafe fn install(
        &self,
        sock: &TcpSocket,
        io_work: *mut kb::work_struct,
        io_cpu: c_int,
        queue: *mut c_void,
        error: unsafe extern "C" fn(*mut c_void),
    ) {
        let c = self.0.get();
        // SAFETY: not installed (caller), so nothing else reads it now.
        unsafe {
            (*c).io_work = io_work.cast();
            (*c).io_cpu = io_cpu;
            (*c).rd_enabled = true;
            (*c).polling = false;
            (*c).queue = queue;
            (*c).error = Some(error);
        }
        // SAFETY: the socket is valid (its invariant); the caller keeps
        // this context and what it names valid until `restore`.
        unsafe { nb::rnvme_sock_install(sock.as_raw().cast(), c) };
    }

    /// Puts the socket's own callbacks back (idempotent; under
    /// sk_callback_lock, so no callback runs on this context afterwards).
    pub(crate) fn restore(&self, sock: &TcpSocket) {
        // SAFETY: the socket is valid; restoring only touches callbacks
        // this context saved, if it is the one installed.
        unsafe { nb::rnvme_sock_restore(sock.as_raw().cast(), self.0.get()) };
    }

    /// The CPU io_work is queued on.
    pub(crate) fn io_cpu(&self) -> c_int {
        // SAFETY: a plain read of a plain field.
        unsafe { core::ptr::read_volatile(&raw const (*self.0.get()).io_cpu) }
    }

    /// Sets the CPU io_work is queued on.
    pub(crate) fn set_io_cpu(&self, cpu: c_int) {
        // SAFETY: a plain store to a field the callbacks read with READ_ONCE.
        unsafe { core::ptr::write_volatile(&raw mut (*self.0.get()).io_cpu, cpu) };
    }

    /// Receiving is enabled (the callbacks kick io_work).
    pub(crate) fn rd_enabled(&self) -> bool {
        // SAFETY: a plain read of a plain field.
        unsafe { core::ptr::read_volatile(&raw const (*self.0.get()).rd_enabled) }
    }

    /// Enables or stops receiving.
    pub(crate) fn set_rd_enabled(&self, on: bool) {
        // SAFETY: as for `set_io_cpu`.
        unsafe { core::ptr::write_volatile(&raw mut (*self.0.get()).rd_enabled, on) };
    }

    /// A blk-mq poller is receiving: data_ready leaves the bytes to it
    /// (C: `NVME_TCP_Q_POLLING`).
    pub(crate) fn set_polling(&self, on: bool) {
        // SAFETY: as for `set_io_cpu`.
        unsafe { core::ptr::write_volatile(&raw mut (*self.0.get()).polling, on) };
    }

    /// Marks the queue as TLS (C: `nvme_tcp_queue_tls()`): write_space then
    /// also runs kTLS's own, which pushes records left half sent.
    pub(crate) fn set_tls(&self, on: bool) {
        // SAFETY: as for `set_io_cpu`.
        unsafe { core::ptr::write_volatile(&raw mut (*self.0.get()).tls, on) };
    }

    /// `sk_stream_is_writeable()`: the socket has room again.
    pub(crate) fn writeable(sock: &TcpSocket) -> bool {
        // SAFETY: the socket is valid.
        unsafe { nb::rnvme_sock_writeable(sock.as_raw().cast()) }
    }
}
