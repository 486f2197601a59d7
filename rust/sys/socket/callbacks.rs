// SPDX-License-Identifier: GPL-2.0
//! A queue's socket callbacks (softirq: data_ready, write_space,
//! state_change), installed on its socket and read through `sk_user_data`.

use super::TcpSocket;
use crate::sys::bindings::{self as nb, net};
use crate::sys::workqueue;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use kernel::{bindings as kb, ffi::c_ulong, prelude::*};

/// What the socket callbacks found installed, fixed from
/// [`SockCallbacks::install`] until [`SockCallbacks::restore`].
#[derive(Clone, Copy)]
struct Installed {
    io_work: *mut kb::work_struct,
    queue: *mut c_void,
    error: Option<unsafe extern "C" fn(*mut c_void)>,
    saved_data_ready: Option<unsafe extern "C" fn(*mut net::sock)>,
    saved_write_space: Option<unsafe extern "C" fn(*mut net::sock)>,
    saved_state_change: Option<unsafe extern "C" fn(*mut net::sock)>,
}

/// What a queue's socket callbacks (softirq, [`data_ready`],
/// [`write_space`], [`state_change`]) read through `sk_user_data`.
///
/// # Invariants
///
/// `inst` is written only by [`Self::install`], while this context is on
/// no socket (no callback can reach it). From `install` until
/// [`Self::restore`] takes it off under `sk_callback_lock`'s write side,
/// the callbacks may read it, shared, under the read side, and it does
/// not move; its `io_work` and `queue` stay valid meanwhile. The flags are
/// atomics, which the callbacks read at any time. All-zero bytes are a
/// valid context on no socket.
pub(crate) struct SockCallbacks {
    io_cpu: AtomicI32,
    rd_enabled: AtomicBool,
    /// A blk-mq poller is receiving: data_ready leaves the bytes to it.
    polling: AtomicBool,
    /// A TLS queue: write_space also runs kTLS's own (pending records).
    tls: AtomicBool,
    inst: UnsafeCell<Installed>,
}

// SAFETY: shared with softirq callbacks on any CPU: the flags are atomics,
// and `inst` is written only while no socket can reach it (invariant).
unsafe impl Sync for SockCallbacks {}
// SAFETY: as above; the raw pointers are not bound to a thread.
unsafe impl Send for SockCallbacks {}

/// `sk_callback_lock` held for reading (`read_lock_bh()`), as every socket
/// callback takes it; dropped, it unlocks.
///
/// # Invariants
///
/// `0` is a valid `sock` whose callback lock this guard holds for reading.
struct CbReadGuard(*mut net::sock);

impl CbReadGuard {
    /// # Safety
    ///
    /// `sk` is valid for the guard's life (a callback's own socket).
    unsafe fn lock(sk: *mut net::sock) -> Self {
        // SAFETY: a valid `sock` (caller), whose rwlock the socket layer
        // initialised.
        unsafe { kb::_raw_read_lock_bh(&raw mut (*sk).sk_callback_lock) };
        // INVARIANT: locked just now.
        Self(sk)
    }

    /// The queue's context installed on the socket, if any: valid while
    /// the lock is held ([`SockCallbacks`]: restored under the write side).
    fn ctx(&self) -> Option<&SockCallbacks> {
        // `sk_user_data` is written under the write side of the lock we
        // hold. Set, it is a `SockCallbacks` that stays put until `restore`
        // takes the write side (its invariant), which waits for this guard.
        // SAFETY: so, with a valid `sock` (invariant), the reference is good.
        unsafe { (*self.0).sk_user_data.cast::<SockCallbacks>().cast_const().as_ref() }
    }
}

impl Drop for CbReadGuard {
    fn drop(&mut self) {
        // SAFETY: locked for reading by this guard (invariant).
        unsafe { kb::_raw_read_unlock_bh(&raw mut (*self.0).sk_callback_lock) };
    }
}

/// `sk_callback_lock` held for writing (`write_lock_bh()`): no callback
/// runs on the socket meanwhile.
///
/// # Invariants
///
/// As [`CbReadGuard`], for writing.
struct CbWriteGuard(*mut net::sock);

impl CbWriteGuard {
    /// # Safety
    ///
    /// `sk` is valid for the guard's life.
    unsafe fn lock(sk: *mut net::sock) -> Self {
        // SAFETY: as for `CbReadGuard::lock`.
        unsafe { kb::_raw_write_lock_bh(&raw mut (*sk).sk_callback_lock) };
        // INVARIANT: locked just now.
        Self(sk)
    }
}

impl Drop for CbWriteGuard {
    fn drop(&mut self) {
        // SAFETY: locked for writing by this guard (invariant).
        unsafe { kb::_raw_write_unlock_bh(&raw mut (*self.0).sk_callback_lock) };
    }
}

/// `sk_data_ready`: bytes arrived. Kicks io_work unless receiving is
/// stopped or a poller is receiving (C: `NVME_TCP_Q_POLLING`).
///
/// # Safety
///
/// Called by the socket layer with its valid socket.
unsafe extern "C" fn data_ready(sk: *mut net::sock) {
    // SAFETY: the socket layer's socket (caller).
    let g = unsafe { CbReadGuard::lock(sk) };
    if let Some(ctx) = g.ctx() {
        if ctx.rd_enabled.load(Ordering::Relaxed) && !ctx.polling.load(Ordering::Relaxed) {
            ctx.kick();
        }
    }
}

/// `sk_write_space`: the socket has room again. Kicks io_work, which may
/// be waiting to send; on a TLS queue first runs kTLS's own (as
/// `nvme_tcp_write_space()`), which pushes records left half sent.
///
/// # Safety
///
/// As [`data_ready`].
unsafe extern "C" fn write_space(sk: *mut net::sock) {
    // SAFETY: the socket layer's socket (caller).
    let g = unsafe { CbReadGuard::lock(sk) };
    let Some(ctx) = g.ctx() else { return };
    // SAFETY: a valid `sock` (caller).
    if !unsafe { nb::rnvme_sk_stream_is_writeable(sk.cast()) } {
        return;
    }
    // SAFETY: a valid `sock`; its `sk_socket` is ours while the callbacks
    // are installed (restored before the socket is released).
    let socket = unsafe { (*sk).sk_socket };
    if !socket.is_null() {
        // SAFETY: a valid `socket`; `flags` is a bit field for atomic bitops.
        unsafe { kb::clear_bit(kb::socket_flags_SOCK_NOSPACE as c_ulong, &raw mut (*socket).flags) };
    }
    if ctx.tls.load(Ordering::Relaxed) {
        if let Some(f) = ctx.installed().saved_write_space {
            // SAFETY: the socket's own callback, saved by `install`, on
            // its socket, under the callback lock as the socket layer
            // would call it.
            unsafe { f(sk) };
        }
    }
    ctx.kick();
}

/// Whether a TCP state means the connection is going away, so error
/// recovery starts (as `nvme_tcp_state_change()`): closed, or closing
/// from either side.
fn closing(state: u32) -> bool {
    matches!(
        state,
        net::TCP_CLOSE | net::TCP_CLOSE_WAIT | net::TCP_LAST_ACK | net::TCP_FIN_WAIT1 | net::TCP_FIN_WAIT2
    )
}

/// `sk_state_change`: calls `error(queue)` when the connection closes,
/// then the socket's own callback.
///
/// # Safety
///
/// As [`data_ready`].
unsafe extern "C" fn state_change(sk: *mut net::sock) {
    // SAFETY: the socket layer's socket (caller).
    let g = unsafe { CbReadGuard::lock(sk) };
    let Some(ctx) = g.ctx() else { return };
    let inst = ctx.installed();
    // SAFETY: a valid `sock`; the state is a byte the TCP stack updates.
    let state = unsafe { core::ptr::read_volatile(&raw const (*sk).__sk_common.skc_state) };
    if closing(u32::from(state)) {
        if let Some(error) = inst.error {
            // SAFETY: `queue` stays valid for `error` while installed
            // (`install`'s contract).
            unsafe { error(inst.queue) };
        }
    }
    if let Some(f) = inst.saved_state_change {
        // SAFETY: as for `saved_write_space` in `write_space`.
        unsafe { f(sk) };
    }
}

impl SockCallbacks {
    /// Not installed anywhere.
    pub(crate) fn new() -> Self {
        Self {
            io_cpu: AtomicI32::new(0),
            rd_enabled: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            tls: AtomicBool::new(false),
            inst: UnsafeCell::new(Installed {
                io_work: core::ptr::null_mut(),
                queue: core::ptr::null_mut(),
                error: None,
                saved_data_ready: None,
                saved_write_space: None,
                saved_state_change: None,
            }),
        }
    }

    /// What `install` recorded; for the callbacks, which reach this
    /// context only while it is installed.
    fn installed(&self) -> Installed {
        // SAFETY: not written while installed (invariant), which it is
        // when a callback finds it; a copy, so no reference outlives this.
        unsafe { *self.inst.get() }
    }

    /// Queues io_work on its CPU.
    fn kick(&self) {
        let cpu = self.io_cpu.load(Ordering::Relaxed);
        // SAFETY: `io_work` is an initialised work item while installed
        // (`install`'s contract), which it is when a callback calls this.
        unsafe { workqueue::queue_raw(self.installed().io_work, cpu) };
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
        self.io_cpu.store(io_cpu, Ordering::Relaxed);
        self.rd_enabled.store(true, Ordering::Relaxed);
        self.polling.store(false, Ordering::Relaxed);
        let sk = sock.sk();
        // SAFETY: the socket's `sock` is valid while `sock` is.
        let _g = unsafe { CbWriteGuard::lock(sk) };
        // The socket's callback fields are written under the write lock as
        // the socket layer expects; the lock orders the write before any
        // callback's read. INVARIANT: `inst` is written before
        // `sk_user_data` makes it reachable.
        // SAFETY: a valid `sock`; this context is on no socket (caller), so
        // nothing reads `inst` while it is written.
        unsafe {
            *self.inst.get() = Installed {
                io_work,
                queue,
                error: Some(error),
                saved_data_ready: (*sk).sk_data_ready,
                saved_write_space: (*sk).sk_write_space,
                saved_state_change: (*sk).sk_state_change,
            };
            (*sk).sk_user_data = core::ptr::from_ref(self).cast_mut().cast();
            (*sk).sk_data_ready = Some(data_ready);
            (*sk).sk_write_space = Some(write_space);
            (*sk).sk_state_change = Some(state_change);
        }
    }

    /// Puts the socket's own callbacks back (idempotent; under
    /// sk_callback_lock, so no callback runs on this context afterwards).
    pub(crate) fn restore(&self, sock: &TcpSocket) {
        let sk = sock.sk();
        // SAFETY: the socket's `sock` is valid while `sock` is.
        let _g = unsafe { CbWriteGuard::lock(sk) };
        let me: *mut c_void = core::ptr::from_ref(self).cast_mut().cast();
        // SAFETY: a valid `sock` under its callback write lock; if this
        // context is the one installed, `inst` holds what it replaced.
        unsafe {
            if (*sk).sk_user_data == me {
                let inst = self.installed();
                (*sk).sk_user_data = core::ptr::null_mut();
                (*sk).sk_data_ready = inst.saved_data_ready;
                (*sk).sk_write_space = inst.saved_write_space;
                (*sk).sk_state_change = inst.saved_state_change;
            }
        }
    }

    /// The CPU io_work is queued on.
    pub(crate) fn io_cpu(&self) -> c_int {
        self.io_cpu.load(Ordering::Relaxed)
    }

    /// Sets the CPU io_work is queued on.
    pub(crate) fn set_io_cpu(&self, cpu: c_int) {
        self.io_cpu.store(cpu, Ordering::Relaxed);
    }

    /// Receiving is enabled (the callbacks kick io_work).
    pub(crate) fn rd_enabled(&self) -> bool {
        self.rd_enabled.load(Ordering::Relaxed)
    }

    /// Enables or stops receiving.
    pub(crate) fn set_rd_enabled(&self, on: bool) {
        self.rd_enabled.store(on, Ordering::Relaxed);
    }

    /// A blk-mq poller is receiving: data_ready leaves the bytes to it
    /// (C: `NVME_TCP_Q_POLLING`).
    pub(crate) fn set_polling(&self, on: bool) {
        self.polling.store(on, Ordering::Relaxed);
    }

    /// Marks the queue as TLS (C: `nvme_tcp_queue_tls()`): write_space then
    /// also runs kTLS's own, which pushes records left half sent.
    pub(crate) fn set_tls(&self, on: bool) {
        self.tls.store(on, Ordering::Relaxed);
    }

    /// `sk_stream_is_writeable()`: the socket has room again.
    pub(crate) fn writeable(sock: &TcpSocket) -> bool {
        // SAFETY: the socket's `sock` is valid while `sock` is.
        unsafe { nb::rnvme_sk_stream_is_writeable(sock.sk().cast()) }
    }
}
