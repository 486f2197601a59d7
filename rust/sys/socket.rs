// SPDX-License-Identifier: GPL-2.0
//! A queue's kernel TCP socket.

use super::bindings::{self as nb, net};
use kernel::{bindings as kb, error::to_result, prelude::*};

mod callbacks;
pub(crate) use callbacks::SockCallbacks;

/// A reference on a network namespace, taken with `get_net()` and put
/// when dropped: the namespace a controller was created in, where every
/// socket of the controller is created (first connect, reset, reconnect)
/// and its `host_iface` looked up.
///
/// # Invariants
///
/// `net` is a live namespace on which this value holds one reference.
pub(crate) struct NetNs {
    net: core::ptr::NonNull<kb::net>,
}

// SAFETY: a namespace reference may be used and put from any task.
unsafe impl Send for NetNs {}
// SAFETY: only read through `&self` (socket creation, device lookup),
// which the namespace allows from any task.
unsafe impl Sync for NetNs {}

impl NetNs {
    /// The calling task's namespace (`current->nsproxy->net_ns`).
    pub(crate) fn current() -> Result<Self> {
        // SAFETY: called from a task (the connect's write to
        // /dev/nvme-fabrics), whose nsproxy is set while it runs; the
        // helper takes a reference, which `Self` owns.
        let net = core::ptr::NonNull::new(unsafe { nb::rnvme_get_current_net() }.cast::<kb::net>()).ok_or(EINVAL)?;
        // INVARIANT: `net` is referenced by get_net() just now.
        Ok(Self { net })
    }

    fn as_raw(&self) -> *mut kb::net {
        self.net.as_ptr()
    }

    /// Whether a network device named `name` exists in this namespace.
    pub(crate) fn has_device(&self, name: &CStr) -> bool {
        let _rcu = kernel::sync::rcu::read_lock();
        // SAFETY: under the RCU read lock, as the function requires; the
        // namespace is live (invariant), `name` is NUL-terminated. The
        // device is only tested for, never dereferenced.
        !unsafe { net::dev_get_by_name_rcu(self.as_raw(), name.as_char_ptr()) }.is_null()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // SAFETY: the reference this value holds (invariant), put once.
        unsafe { nb::rnvme_put_net(self.as_raw().cast()) };
    }
}

/// `TLS_RX_EXPECT_NO_PAD` (`include/uapi/linux/tls.h`).
const TLS_RX_EXPECT_NO_PAD: c_int = 4;

/// A transport address parsed by `inet_pton_with_scope()`.
pub(crate) struct SockAddr(kb::__kernel_sockaddr_storage);

impl SockAddr {
    /// Parses `addr`/`port` as nvme-fabrics gives them (IPv4 or IPv6; an
    /// IPv6 scope names an interface of `net`).
    pub(crate) fn parse(net: &NetNs, addr: &CStr, port: &CStr) -> Result<Self> {
        let mut s = SockAddr(Default::default());
        // SAFETY: the namespace is live (`NetNs`), both strings are
        // NUL-terminated and `s.0` is writable storage of the size the
        // function expects.
        to_result(unsafe {
            nb::rnvme_parse_addr(net.as_raw().cast(), addr.as_char_ptr(), port.as_char_ptr(), (&raw mut s.0).cast())
        })?;
        Ok(s)
    }

    /// Parses a host address without a port (`host_traddr`).
    pub(crate) fn parse_host(net: &NetNs, addr: &CStr) -> Result<Self> {
        let mut s = SockAddr(Default::default());
        // SAFETY: the namespace is live (`NetNs`), `addr` is NUL-terminated,
        // a NULL port means "any", and `s.0` is writable storage of the
        // expected size.
        to_result(unsafe {
            nb::rnvme_parse_addr(net.as_raw().cast(), addr.as_char_ptr(), core::ptr::null(), (&raw mut s.0).cast())
        })?;
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
    /// kTLS expects TLS 1.3 records without padding
    /// (`TLS_RX_EXPECT_NO_PAD` accepted), so it decrypts a data record
    /// straight into a receive's (non-kvec) iterator when it fits.
    rx_no_pad: bool,
}

// SAFETY: a kernel socket may be used and released from any task; the
// socket layer does its own locking.
unsafe impl Send for TcpSocket {}
// SAFETY: as for `Send`: every method goes through the socket layer's locking.
unsafe impl Sync for TcpSocket {}

impl TcpSocket {
    /// Creates a TCP socket in `net` with the NVMe/TCP queue options,
    /// binds it to `src` and/or the interface `iface` when given, and
    /// connects it (blocking, one SYN retry).
    ///
    /// `net` is the controller's namespace, not the calling task's: a
    /// reset or reconnect runs in a kworker, whose namespace is init_net
    /// (the C driver's `current->nsproxy->net_ns` in nvme_tcp_alloc_queue
    /// has that hole).
    pub(crate) fn connect(
        net: &NetNs,
        addr: &SockAddr,
        src: Option<&SockAddr>,
        iface: Option<&CStr>,
        tos: c_int,
    ) -> Result<Self> {
        let mut raw: *mut kb::socket = core::ptr::null_mut();
        // SAFETY: the namespace is live (`NetNs`); `raw` receives the new
        // socket.
        to_result(unsafe {
            kb::sock_create_kern(
                net.as_raw(),
                addr.family(),
                kb::sock_type_SOCK_STREAM as c_int,
                kb::IPPROTO_TCP as c_int,
                &mut raw,
            )
        })?;
        let sock = core::ptr::NonNull::new(raw).ok_or(ENOMEM)?;
        // INVARIANT: created by sock_create_kern just now.
        let s = Self { sock, tls: false, rx_no_pad: false };
        // A kernel socket does not pin its namespace; the queue's socket
        // must, as long as it lives (C: `nvme_tcp_alloc_queue`).
        // SAFETY: a new socket of sock_create_kern(), whose `sk` is set and
        // holds no namespace reference yet.
        unsafe { net::sk_net_refcnt_upgrade(s.sk()) };
        // SAFETY: a new socket, not yet shared (no callbacks installed).
        unsafe { s.setup(tos) };
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
            s.bind_iface(iface)
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

    /// The socket's `struct sock`, as the `net` bindings lay it out.
    fn sk(&self) -> *mut net::sock {
        // SAFETY: the socket is valid (invariant); sock_create_kern() set
        // `sk`, which stays until the socket is released.
        unsafe { (*self.as_raw()).sk.cast() }
    }

    /// Socket options of an NVMe/TCP queue, exactly as
    /// `nvme_tcp_alloc_queue()` sets them: one SYN retry, TCP_NODELAY, no
    /// linger, TOS if `tos >= 0`, a 10 s receive timeout (the ICResp is
    /// received blocking), atomic allocations and no task frags (sends run
    /// in io_work, which may run during memory reclaim), memalloc (the
    /// socket may dip into reserves to write back pages), and the NVMe/TCP
    /// lockdep classes.
    ///
    /// # Safety
    ///
    /// The socket is new and not shared: no callbacks are installed and
    /// nobody else holds it, so its fields may be written without its lock.
    unsafe fn setup(&self, tos: c_int) {
        let sk = self.sk();
        let rcvtimeo = c_long::try_from(kernel::time::msecs_to_jiffies(10_000)).unwrap_or(c_long::MAX);
        // SAFETY: a valid `sock` (`Self::sk`), ours alone (caller). The
        // option setters lock the socket themselves; syncnt 1 is in range,
        // so it cannot fail.
        unsafe {
            net::tcp_sock_set_syncnt(sk, 1);
            net::tcp_sock_set_nodelay(sk);
            net::sock_no_linger(sk);
            if tos >= 0 {
                net::ip_sock_set_tos(sk, tos);
            }
            (*sk).sk_rcvtimeo = rcvtimeo;
            (*sk).sk_allocation = kb::GFP_ATOMIC;
            (*sk).sk_use_task_frag = false;
            net::sk_set_memalloc(sk);
            reclassify(sk);
        }
    }

    /// `SO_BINDTODEVICE` to `iface`, in the socket's namespace (the
    /// controller's, where create_ctrl checked it exists; -ENODEV if it
    /// has gone since).
    fn bind_iface(&self, iface: &CStr) -> Result {
        let len = c_uint::try_from(iface.to_bytes().len()).map_err(|_| EINVAL)?;
        // SAFETY: `sockptr_t` is a pointer union and a flag: all-zero is a
        // null user pointer.
        let mut opt: kb::sockptr_t = unsafe { core::mem::zeroed() };
        // KERNEL_SOCKPTR(iface): setsockopt copies `len` bytes from it.
        opt.__bindgen_anon_1.kernel = iface.as_char_ptr().cast_mut().cast();
        opt.set_is_kernel(true);
        // SAFETY: the socket is valid (invariant); `opt` points at `len`
        // readable bytes of `iface`, alive for the call.
        to_result(unsafe {
            net::sock_setsockopt(self.as_raw(), kb::SOL_SOCKET as c_int, kb::SO_BINDTODEVICE as c_int, opt, len)
        })
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

    /// Records that the handshake put kTLS on the socket (its keys are
    /// installed), and asks kTLS to expect TLS 1.3 records without padding
    /// (`TLS_RX_EXPECT_NO_PAD`): only then does `tls_sw_recvmsg()` decrypt
    /// a data record that fits in what a receive asks for straight into
    /// the receive's iterator (zero-copy: `zc_capable`), which for a
    /// C2HData payload is the request's pages. A peer that pads anyway
    /// costs a second decryption of that record (`TlsDecryptRetry`,
    /// `TlsRxNoPadViolation` in /proc/net/tls_stat), never wrong data.
    /// Refused (TLS 1.2, offloaded RX) the socket decrypts as before.
    pub(crate) fn set_tls(&mut self) {
        self.tls = true;
        self.rx_no_pad = self.set_tls_option(TLS_RX_EXPECT_NO_PAD, 1).is_ok();
    }

    /// Whether `TLS_RX_EXPECT_NO_PAD` is on (see [`Self::set_tls`]).
    pub(crate) fn rx_no_pad(&self) -> bool {
        self.rx_no_pad
    }

    /// `setsockopt(SOL_TLS, opt, &val)` on the kTLS socket.
    fn set_tls_option(&self, opt: c_int, val: c_int) -> Result {
        // SAFETY: `sockptr_t` is a pointer union and a flag: all-zero is a
        // null user pointer.
        let mut optval: kb::sockptr_t = unsafe { core::mem::zeroed() };
        // KERNEL_SOCKPTR(&val): setsockopt copies `optlen` bytes from it.
        optval.__bindgen_anon_1.kernel = (&raw const val).cast_mut().cast();
        optval.set_is_kernel(true);
        let len = core::mem::size_of::<c_int>() as c_int;
        // SAFETY: the socket is valid (invariant); `optval` points at `val`,
        // `len` readable bytes alive for the call; kTLS's setsockopt takes
        // the socket lock itself.
        to_result(unsafe { net::do_sock_setsockopt(self.as_raw(), false, kb::SOL_TLS as c_int, opt, optval, len) })
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
        let push = Push { ctx, actor };
        let mut desc = kb::read_descriptor_t {
            written: 0,
            // Non-zero: read on; `push_actor` clears it to stop.
            count: 1,
            arg: kb::read_descriptor_t__bindgen_ty_1 { data: (&raw const push).cast_mut().cast() },
            error: 0,
        };
        let sk = self.sk();
        if may_sleep {
            // As the C driver's nvme_tcp_try_recv(): the socket lock, so the
            // softirq receive path queues to the backlog meanwhile.
            // SAFETY: a valid `sock`; `lock_sock()` may sleep, which the
            // caller allows.
            unsafe { net::lock_sock_nested(sk, 0) };
            // SAFETY: the socket is locked; `desc` carries `push`, alive
            // for the call, and the caller's `actor`/`ctx` contract.
            let mut ret = unsafe { self.read_desc(&mut desc) };
            // Once everything queued is consumed, say what recvmsg() would:
            // the socket's error, or -ESHUTDOWN where it returns 0 for the
            // peer's FIN. Stable here: under lock_sock() the softirq path
            // only adds to the backlog, which release_sock() processes.
            // SAFETY: a valid `sock`, locked by us.
            if ret >= 0 && unsafe { receive_queue_empty(sk) } {
                // SAFETY: as above; sock_error() takes the error atomically.
                let err = unsafe { nb::rnvme_sock_error(sk.cast()) };
                // SAFETY: as above; a byte the FIN handling sets.
                let shut = unsafe { core::ptr::read_volatile(&raw const (*sk).sk_shutdown) };
                if err != 0 {
                    ret = err;
                } else if u32::from(shut) & net::RCV_SHUTDOWN != 0 {
                    ret = -(kb::ESHUTDOWN as c_int);
                }
            }
            // SAFETY: locked above, by this task.
            unsafe { net::release_sock(sk) };
            ret
        } else {
            // Push mode for pollers, which must not sleep: as the softirq
            // receive path would, under the socket spinlock with bottom
            // halves off (`bh_lock_sock()`), unless a task owns the socket
            // (`sock_owned_by_user()`): that task is receiving, -EBUSY.
            // SAFETY: a valid `sock`.
            let so = unsafe { slock_owned(sk) };
            // SAFETY: `slock` is the socket's initialised spinlock
            // (`slock_owned`); bottom halves stay off while it is held, so
            // the softirq path on this CPU cannot spin on it.
            unsafe {
                nb::rnvme_local_bh_disable();
                kb::spin_lock(&raw mut (*so).slock);
            }
            // SAFETY: `owned` is written under `slock`, which we hold.
            let ret = if unsafe { (*so).owned } != 0 {
                -(kb::EBUSY as c_int)
            } else {
                // SAFETY: the socket spinlock is held and no task owns the
                // socket; `desc` as above; `actor` does not sleep (caller).
                unsafe { self.read_desc(&mut desc) }
            };
            // SAFETY: taken above, on this CPU.
            unsafe {
                kb::spin_unlock(&raw mut (*so).slock);
                nb::rnvme_local_bh_enable();
            }
            ret
        }
    }

    /// `sock->ops->read_sock()` with [`push_actor`] over `desc`.
    ///
    /// # Safety
    ///
    /// The socket is locked as `read_sock()` requires (`lock_sock()`, or
    /// its spinlock with no owner); `desc.arg.data` is a [`Push`] valid for
    /// the call, whose `actor` may be called with its `ctx`.
    unsafe fn read_desc(&self, desc: &mut kb::read_descriptor_t) -> c_int {
        let sock = self.as_raw();
        // SAFETY: a valid socket (invariant), whose `ops` the socket layer
        // set at creation (TCP's, or kTLS's once a TLS session is on it).
        let Some(read_sock) = (unsafe { (*(*sock).ops).read_sock }) else {
            return -(kb::EOPNOTSUPP as c_int);
        };
        // SAFETY: the socket is valid and locked (caller); `desc` is a
        // live descriptor whose `arg` `push_actor` expects (caller).
        unsafe { read_sock((*sock).sk, desc, Some(push_actor)) }
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

/// What `read_sock()`'s descriptor carries to [`push_actor`]: the caller's
/// actor and its context (C: `desc->arg.data`).
struct Push {
    ctx: *mut c_void,
    actor: unsafe extern "C" fn(*mut c_void, *mut kb::sk_buff, c_uint, usize) -> c_int,
}

/// `read_sock()`'s actor: hands the skb range to the caller's actor and
/// stops the read once that errs or takes less than it was given.
///
/// # Safety
///
/// Called by `read_sock()` from [`TcpSocket::read_desc`], with the
/// descriptor built there (its `arg.data` a live [`Push`]) and an skb
/// holding `len` bytes from `off`.
unsafe extern "C" fn push_actor(desc: *mut kb::read_descriptor_t, skb: *mut kb::sk_buff, off: c_uint, len: usize) -> c_int {
    // SAFETY: `desc` is the descriptor of `read_desc`, whose `arg.data` is
    // a `Push` on its caller's stack, only read here (caller).
    let push = unsafe { &*(*desc).arg.data.cast::<Push>() };
    // SAFETY: `actor` may be called with `ctx` during `read_sock` (its
    // caller's contract), and the skb range is held by read_sock().
    let used = unsafe { (push.actor)(push.ctx, skb, off, len) };
    // An error, or a queue that stopped short: read no further.
    if !matches!(usize::try_from(used), Ok(u) if u >= len) {
        // SAFETY: the descriptor is read_sock()'s, alive during the call
        // and touched by nobody else meanwhile (read_sock() is synchronous).
        unsafe { (*desc).count = 0 };
    }
    used
}

/// Whether the socket's receive queue holds no skb (`skb_queue_empty()`).
///
/// # Safety
///
/// `sk` is valid; the caller holds the socket lock.
unsafe fn receive_queue_empty(sk: *mut net::sock) -> bool {
    // SAFETY: a valid `sock` (caller). An empty `sk_buff_head` points at
    // itself; `next` is the first member of either view of its union.
    unsafe {
        let q = &raw mut (*sk).sk_receive_queue;
        (*q).__bindgen_anon_1.__bindgen_anon_1.next == q.cast()
    }
}

/// The socket spinlock and its owner flag: C's `sk->sk_lock.slock` and
/// `.owned`, which `bh_lock_sock()` and `sock_owned_by_user()` use.
///
/// `socket_lock_t` is opaque in the `net` bindings (see
/// `gen-bindings.sh`); `struct slock_owned` is its union's first member
/// and the union its first member, so both start at `sk_lock`.
///
/// # Safety
///
/// `sk` is valid.
unsafe fn slock_owned(sk: *mut net::sock) -> *mut net::socket_lock_t__bindgen_ty_1_slock_owned {
    // SAFETY: a valid `sock` (caller); only the address is taken.
    unsafe { (&raw mut (*sk).sk_lock).cast() }
}
const _: () = assert!(
    core::mem::size_of::<net::socket_lock_t__bindgen_ty_1_slock_owned>() <= core::mem::size_of::<net::socket_lock_t>()
);

/// lockdep classes of NVMe/TCP sockets (C: `nvme_tcp_reclassify_socket`),
/// one pair per address family, with the C driver's names but "RNVME".
#[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
mod lock_classes {
    use kernel::sync::LockClassKey;

    // SAFETY: in static memory, so pinned and never dropped.
    pub(super) static SK_INET: LockClassKey = unsafe { LockClassKey::new_static() };
    // SAFETY: as above.
    pub(super) static SLOCK_INET: LockClassKey = unsafe { LockClassKey::new_static() };
    // SAFETY: as above.
    pub(super) static SK_INET6: LockClassKey = unsafe { LockClassKey::new_static() };
    // SAFETY: as above.
    pub(super) static SLOCK_INET6: LockClassKey = unsafe { LockClassKey::new_static() };
}

/// Gives a new NVMe/TCP socket its own lockdep classes, as the C driver
/// does: its lock is taken on the block layer's I/O path (memory reclaim
/// included), other TCP sockets' under locks that allocate, so in one
/// class lockdep would report dependencies that cannot deadlock.
///
/// # Safety
///
/// `sk` is valid, new and not locked by anyone.
#[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
unsafe fn reclassify(sk: *mut net::sock) {
    use lock_classes::*;
    // SAFETY: a valid `sock` (caller).
    if !unsafe { nb::rnvme_sock_allow_reclassification(sk.cast()) } {
        kernel::pr_warn_once!("socket locked at set-up, lockdep class not changed\n");
        return;
    }
    // SAFETY: a valid `sock`; the family is set at creation.
    let family = u32::from(unsafe { (*sk).__sk_common.skc_family });
    let (sname, skey, name, key) = match family {
        kb::AF_INET => (c"slock-AF_INET-RNVME", &SLOCK_INET, c"sk_lock-AF_INET-RNVME", &SK_INET),
        kb::AF_INET6 => (c"slock-AF_INET6-RNVME", &SLOCK_INET6, c"sk_lock-AF_INET6-RNVME", &SK_INET6),
        _ => return,
    };
    // SAFETY: a valid, unlocked `sock` (checked above); names and keys are
    // static, as lockdep keeps them.
    unsafe {
        nb::rnvme_sock_lock_init_class_and_name(sk.cast(), sname.as_char_ptr(), skey.as_ptr(), name.as_char_ptr(), key.as_ptr())
    };
}

/// Without lockdep there are no classes to set.
///
/// # Safety
///
/// As with lockdep (nothing to uphold here).
#[cfg(not(CONFIG_DEBUG_LOCK_ALLOC))]
unsafe fn reclassify(_sk: *mut net::sock) {}
