// SPDX-License-Identifier: GPL-2.0
//! A queue's kernel TCP socket.

use super::bindings as nb;
use kernel::{bindings as kb, error::to_result, prelude::*};

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
        let s = Self { sock };
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

    /// The raw socket, for the socket-layer calls in this module.
    pub(crate) fn as_raw(&self) -> *mut kb::socket {
        self.sock.as_ptr()
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

    /// Receives into `buf` with `flags`. `Ok(0)` means the peer closed;
    /// errors are negative errnos as the socket layer returns them.
    pub(crate) fn recv(&self, buf: &mut [u8], flags: c_int) -> core::result::Result<usize, c_int> {
        let mut iov = kb::kvec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut msg = kb::msghdr { msg_flags: flags as _, ..Default::default() };
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
        // SAFETY: by the invariant the socket is valid and released only here.
        unsafe {
            kb::kernel_sock_shutdown(self.as_raw(), kb::sock_shutdown_cmd_SHUT_RDWR);
            kb::sock_release(self.as_raw());
        }
    }
}
