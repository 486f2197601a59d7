// SPDX-License-Identifier: GPL-2.0
//! Controller life cycle on nvme-core: create, reset, error recovery,
//! delete, free, one function per C routine and in its order; the
//! nvme-core callbacks. The transport registration and controller list
//! are in `transport`, the blk-mq operations in `mq`, the nvme-core
//! callbacks in `core_ops`, error recovery and reconnect in `recovery`.
//!
//! Follows `drivers/nvme/host/tcp.c`: admin queue (ICReq/ICResp, Fabrics
//! Connect, enable, identify), then I/O queues with default/read maps.

mod core_ops;
mod mq;
mod recovery;
mod transport;

pub(crate) use core_ops::complete_async_event;
pub(crate) use mq::{AdminQueueOps, IoQueueOps};
pub(crate) use transport::{init_ops, write_queue_stats, ControllersAtExit, TcpTransport};

use crate::proto::pdu::{self, Digests, IcResp};
use crate::queue::{Queue, Rq};
use crate::request::{Kind, TcpRequest};
use crate::sys::bindings as nb;
use crate::sys::blk_mq::{Lookup, TagSet};
use crate::sys::fabrics::{CtrlHandle, CtrlOptions};
use crate::sys::fmt::Shown;
use crate::sys::nvme::{self, nvme_result, NvmeCtrl};
use crate::sys::socket::{NetNs, SockAddr, TcpSocket};
use crate::sys::workqueue::{DelayedWork, Work};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use kernel::{bindings as kb, device::Device, prelude::*, types::Opaque};
use recovery::{connect_work_fn, err_work_fn, reset_work_fn};
use transport::{CTRLS, CTRL_OPS, LIVE_CTRLS};

/// `NVME_TCP_ADMIN_CCSZ`: in-capsule data the admin queue accepts.
const ADMIN_CCSZ: u32 = 8192;

/// A controller: nvme-core's `nvme_ctrl` plus what the transport needs.
///
/// # Invariants
///
/// Allocated by `create` with `KBox` and freed only by `free_ctrl` (called
/// by nvme-core when its last reference goes); `queues` is allocated once
/// and never grows, and each queue is pinned in its own allocation, so
/// queue addresses are stable. Shared by every context
/// as `&TcpCtrl` once created: what changes afterwards is nvme-core's
/// (`ctrl`, `Opaque`), atomics, the tag sets (`Opaque`, changed by
/// nvme-core on set-up paths), the queues' own cells and locks, or
/// `async_req`'s cells (nvme-core's async event work, one AER at a time).
#[repr(C)]
pub(crate) struct TcpCtrl {
    /// nvme-core's controller, which nvme-core changes under its own locks.
    pub(crate) ctrl: Opaque<nb::nvme_ctrl>,
    admin_tag_set: TagSet<AdminQueueOps>,
    tag_set: TagSet<IoQueueOps>,
    queues: KVec<Pin<KBox<Queue>>>,
    /// I/O queues per map type (default, read, poll), as nvme-fabrics split
    /// them (`nvmf_set_io_queues()`).
    io_queues: IoQueueCounts,
    /// The namespace the controller was created in: every queue socket is
    /// created there, on the first connect as on a reset or reconnect
    /// (which run in kworkers, in init_net). Put when the controller is
    /// freed.
    net: NetNs,
    addr: SockAddr,
    src_addr: Option<SockAddr>,
    digests: Digests,
    err_work: Work,
    /// Delayed reconnect after an error (reconnect_delay, ctrl_loss_tmo).
    connect_work: DelayedWork,
    /// The AER command: sent on the admin queue outside blk-mq, with a
    /// command id past the admin tag space (`NVME_AQ_BLK_MQ_DEPTH`).
    /// nvme-core's async event work submits it, one at a time; the send
    /// and receive sides then use it as any request.
    async_req: TcpRequest,
    /// An AER is outstanding: only then may a response carry its command id.
    aer_outstanding: AtomicBool,
    /// True once creation succeeded: `free_ctrl` then owns the options.
    created: AtomicBool,
    /// io_work receives with `read_sock()` instead of `sock_recvmsg()`
    /// (module parameter `read_sock` when the controller was created).
    read_sock: bool,
}

/// I/O queue counts per map type (default, read, poll).
struct IoQueueCounts([AtomicU32; kb::hctx_type_HCTX_MAX_TYPES as usize]);

impl IoQueueCounts {
    fn get(&self) -> [u32; kb::hctx_type_HCTX_MAX_TYPES as usize] {
        core::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }

    fn set(&self, counts: [u32; kb::hctx_type_HCTX_MAX_TYPES as usize]) {
        for (a, c) in self.0.iter().zip(counts) {
            a.store(c, Ordering::Relaxed);
        }
    }
}

impl TcpCtrl {
    /// The nvme device (`nvmeN`), for log lines.
    pub(crate) fn device(&self) -> &Device {
        self.core().device()
    }

    /// nvme-core's side of this controller.
    fn core(&self) -> NvmeCtrl {
        // SAFETY: by the type invariant nvme_init_ctrl() ran on `ctrl`
        // before any method is called, and `ctrl` lives until free_ctrl.
        unsafe { NvmeCtrl::from_raw(self.ctrl.get()) }
    }

    /// # Safety
    ///
    /// `n` is one of our controllers (its `nvme_ctrl`, the first field of
    /// a `repr(C)` `TcpCtrl`), live for `'a`.
    unsafe fn from_nctrl<'a>(n: *mut nb::nvme_ctrl) -> &'a TcpCtrl {
        // SAFETY: by the caller's guarantee.
        unsafe { &*n.cast::<TcpCtrl>() }
    }

    /// The in-flight request of queue `qid` that command id `cid` names.
    pub(crate) fn find_request(&self, qid: u16, cid: u16) -> Result<Rq, Lookup> {
        if qid == 0 {
            nvme::find_request(&self.admin_tag_set.tags(0).ok_or(Lookup::Unknown)?, cid)
        } else {
            nvme::find_request(&self.tag_set.tags(usize::from(qid) - 1).ok_or(Lookup::Unknown)?, cid)
        }
    }

    /// The AER, if one is outstanding (only then may a response carry its
    /// command id).
    pub(crate) fn outstanding_aer(&self) -> Option<&TcpRequest> {
        self.aer_outstanding.load(Ordering::Acquire).then_some(&self.async_req)
    }

    fn create(dev: &Device, opts: &CtrlOptions, net: NetNs, addr: SockAddr, src: Option<SockAddr>) -> Result<CtrlHandle> {
        let nr_queues = (opts.nr_io_queues() + opts.nr_write_queues() + opts.nr_poll_queues() + 1) as usize;
        let mut b = KBox::<TcpCtrl>::new_uninit(GFP_KERNEL)?;
        let me: *mut TcpCtrl = b.as_mut_ptr();
        let mut queues = KVec::with_capacity(nr_queues, GFP_KERNEL)?;
        for qid in 0..nr_queues {
            queues.push(KBox::pin_init(Queue::new(me, qid as u16), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let admin_queue: *const Queue = &*queues[0];
        // All-zero is valid for the C structs, pointers, integers, bools and
        // atomics; the fields for which it is not are written right after.
        // SAFETY: `me` is the box's storage, initialised before `assume_init`.
        unsafe {
            core::ptr::write_bytes(me, 0, 1);
            core::ptr::write(&raw mut (*me).queues, queues);
            core::ptr::write(&raw mut (*me).net, net);
            core::ptr::write(&raw mut (*me).addr, addr);
            core::ptr::write(&raw mut (*me).src_addr, src);
            core::ptr::write(&raw mut (*me).async_req, TcpRequest::new(admin_queue, (*me).ctrl.get(), Kind::Aer));
        }
        // SAFETY: every field is initialised (above).
        let mut b = unsafe { b.assume_init() };
        b.read_sock = crate::module_parameters::read_sock.value();
        b.async_req.bind_sqe();
        b.digests = Digests { header: opts.hdr_digest(), data: opts.data_digest() };
        let n = b.ctrl.get();
        // SAFETY: the controller is ours alone until nvme_init_ctrl().
        unsafe {
            (*n).opts = opts.as_raw();
            (*n).sqsize = opts.queue_size().saturating_sub(1) as u16;
            (*n).kato = opts.kato();
            (*n).queue_count = nr_queues as u32;
        }
        // SAFETY: our own work items, not in use yet, in the box's heap
        // storage, which never moves.
        unsafe {
            b.err_work.init(err_work_fn, kernel::static_lock_class!());
            b.connect_work.init(connect_work_fn);
            // nvme-core's reset work (queued by `nvme reset`), ours to set up.
            kb::init_work_with_key(
                (&raw mut (*n).reset_work).cast(),
                Some(reset_work_fn),
                false,
                c"rnvme_tcp_reset_work".as_char_ptr(),
                kernel::static_lock_class!().as_ptr(),
            );
        }
        // Counted until free_ctrl: module exit waits for it.
        LIVE_CTRLS.fetch_add(1, Ordering::AcqRel);
        let ctrl = KBox::into_raw(b);
        // SAFETY: `ctrl` is ours; nvme_init_ctrl takes the ops pointer that
        // lives as long as the module.
        let ret = unsafe { nb::nvme_init_ctrl((*ctrl).ctrl.get(), core::ptr::from_ref(dev).cast_mut().cast(), CTRL_OPS.as_raw(), 0) };
        if let Err(e) = nvme_result(ret) {
            // SAFETY: nvme_init_ctrl failed, nothing else references `ctrl`.
            drop(unsafe { KBox::from_raw(ctrl) });
            LIVE_CTRLS.fetch_sub(1, Ordering::AcqRel);
            return Err(e);
        }
        // From here on nvme-core owns `ctrl`: errors go through
        // nvme_uninit_ctrl/nvme_put_ctrl, which end in free_ctrl.
        // SAFETY: `ctrl` is initialised and lives until free_ctrl.
        let c = unsafe { &*ctrl };
        let n = c.core();
        if let Err(e) = n.add() {
            // SAFETY: the creator's reference, on a controller nvme_add_ctrl()
            // did not add (it undid its own work); nothing uses `c` or `n`
            // after.
            unsafe { n.put_unadded() };
            return Err(e);
        }
        let r = (|| -> Result {
            if !n.change_state(nb::nvme_ctrl_state_NVME_CTRL_CONNECTING) {
                return Err(EINTR);
            }
            c.setup(true)
        })();
        match r {
            Ok(()) => {
                c.created.store(true, Ordering::Release);
                if CTRLS.lock().push(n.as_raw() as usize, GFP_KERNEL).is_err() {
                    // Only the duplicate check misses this controller.
                    dev_warn!(c.device(), "out of memory for the controller list\n");
                }
                dev_info!(
                    c.device(),
                    "new ctrl: NQN \"{}\", addr {}:{} (rnvme_tcp, {} receive path)\n",
                    opts.subsysnqn().unwrap_or(c"?"),
                    opts.traddr().unwrap_or(c"?"),
                    opts.trsvcid().unwrap_or(c"?"),
                    if c.read_sock { "read_sock" } else { "recvmsg" },
                );
                // SAFETY: an initialised controller, handed to nvme-fabrics.
                Ok(unsafe { CtrlHandle::new(n.as_raw()) })
            }
            Err(e) => {
                // SAFETY: undo nvme_init_ctrl as the C driver does, with
                // the creator's reference; the last put calls free_ctrl,
                // which frees `ctrl`. Nothing uses `c` or `n` after.
                unsafe { n.uninit_and_put() };
                Err(e)
            }
        }
    }

    /// Opens queue `qid`: socket, ICReq/ICResp (C: `nvme_tcp_alloc_queue`).
    fn alloc_queue(&self, qid: u16) -> Result {
        let n = self.core();
        let (sock, icresp) = connect_queue(n.device(), qid, self, n.opts())?;
        let ccsz = if qid == 0 { pdu::SQE_LEN as u32 + ADMIN_CCSZ } else { self.core().ioccsz() * 16 };
        // A queue is freed before it is allocated again (every set-up path
        // tears down first); `attach` refuses one that is not.
        self.queues[usize::from(qid)].attach(sock, icresp, ccsz, self.read_sock)
    }

    /// Fabrics Connect on queue `qid` (C: `nvme_tcp_start_queue`).
    fn start_queue(&self, qid: u16) -> Result {
        let n = self.core();
        self.queues[usize::from(qid)].start_io();
        if qid > 0 {
            let hctx_idx = c_uint::from(qid) - 1;
            if let Some(map) = self.tag_set.cpu_map(map_type_of(&self.io_queues.get(), hctx_idx)) {
                self.queues[usize::from(qid)].set_io_cpu(map, hctx_idx);
            }
        }
        let r = if qid == 0 { n.connect_admin_queue() } else { n.connect_io_queue(qid) };
        match r {
            Ok(()) => self.queues[usize::from(qid)].live.store(true, Ordering::SeqCst),
            Err(e) => {
                self.queues[usize::from(qid)].stop();
                dev_err!(self.device(), "failed to connect queue: {} ret={}\n", qid, e.to_errno());
            }
        }
        r
    }

    fn stop_queue(&self, qid: usize) {
        self.queues[qid].stop();
    }

    fn free_queue(&self, qid: usize) {
        self.queues[qid].detach();
    }

    fn configure_admin_queue(&self, new: bool) -> Result {
        let n = self.core();
        self.alloc_queue(0)?;
        if new {
            if let Err(e) = nvme::alloc_admin_tag_set::<AdminQueueOps>(self, &self.admin_tag_set) {
                self.free_queue(0);
                return Err(e);
            }
        }
        let r = (|| -> Result {
            self.start_queue(0)?;
            // Secure concatenation: this Connect authenticated and made the
            // PSK; setup() restarts the queue over TLS before enabling.
            if crate::tls::concat_first_pass(n) {
                return Ok(());
            }
            if let Err(e) = n.enable() {
                self.stop_queue(0);
                n.cancel_admin_tagset();
                return Err(e);
            }
            n.unquiesce_admin_queue();
            if let Err(e) = n.init_finish() {
                n.quiesce_admin_queue();
                n.sync_admin_queue();
                self.stop_queue(0);
                n.cancel_admin_tagset();
                return Err(e);
            }
            Ok(())
        })();
        if r.is_err() {
            if new {
                n.remove_admin_tag_set();
            }
            self.free_queue(0);
        }
        r
    }

    fn alloc_io_queues(&self) -> Result {
        let n = self.core();
        let nr = n.negotiate_queue_count(n.opts().nr_io_queues_total())?;
        if nr <= 0 {
            dev_err!(self.device(), "unable to set any I/O queues\n");
            return Err(ENOMEM);
        }
        let nr = (nr as u32).min(self.queues.len() as u32 - 1);
        n.set_queue_count(nr + 1);
        dev_info!(self.device(), "creating {} I/O queues (rnvme_tcp)\n", nr);
        let mut counts = [0; kb::hctx_type_HCTX_MAX_TYPES as usize];
        n.opts().set_io_queues(nr, &mut counts);
        self.io_queues.set(counts);
        for qid in 1..=nr as u16 {
            if let Err(e) = self.alloc_queue(qid) {
                for q in 1..qid {
                    self.free_queue(usize::from(q));
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Starts I/O queues `first..last` (C: `nvme_tcp_start_io_queues`);
    /// on a failure stops those it started.
    fn start_io_queues(&self, first: u32, last: u32) -> Result {
        for qid in first..last {
            if let Err(e) = self.start_queue(qid as u16) {
                for q in first..qid {
                    self.stop_queue(q as usize);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// C: `nvme_tcp_stop_io_queues`: stop all, then let them drain together.
    fn stop_io_queues(&self) {
        let n = self.core().queue_count() as usize;
        for q in 1..n {
            self.queues[q].stop_nowait();
        }
        for q in 1..n {
            self.queues[q].wait_sent();
        }
    }

    fn free_io_queues(&self) {
        for q in 1..self.core().queue_count() as usize {
            self.free_queue(q);
        }
    }

    fn configure_io_queues(&self, new: bool) -> Result {
        let n = self.core();
        self.alloc_io_queues()?;
        let nr_maps = if n.opts().nr_poll_queues() > 0 { kb::hctx_type_HCTX_MAX_TYPES } else { 2 };
        if new {
            if let Err(e) = nvme::alloc_io_tag_set::<IoQueueOps>(self, &self.tag_set, nr_maps) {
                self.free_io_queues();
                return Err(e);
            }
        }
        // Only the queues the tag set has hardware contexts for: on a
        // reconnect the controller may grant more or fewer than before.
        let nr_queues = (self.tag_set.nr_hw_queues() + 1).min(self.core().queue_count());
        let r = self.start_io_queues(1, nr_queues).and_then(|()| {
            let r = if new { Ok(()) } else { n.resize_io_queues(self.core().queue_count() as c_int - 1) };
            // More queues than before (reconnect): start the added ones,
            // now that the tag set has their hardware contexts.
            let r = r.and_then(|()| self.start_io_queues(nr_queues, self.tag_set.nr_hw_queues() + 1));
            if r.is_err() {
                // C: out_wait_freeze_timed_out. I/O may be running on the
                // started queues (unquiesced for the freeze): quiesce and
                // wait for queue_rq before stopping them.
                n.quiesce_io_queues();
                n.sync_io_queues();
                self.stop_io_queues();
            }
            r
        });
        if r.is_err() {
            n.cancel_tagset();
            if new {
                n.remove_io_tag_set();
            }
            self.free_io_queues();
        }
        r
    }

    /// C: `nvme_tcp_setup_ctrl`.
    fn setup(&self, new: bool) -> Result {
        let n = self.core();
        self.configure_admin_queue(new)?;
        let r = (|| -> Result {
            if crate::tls::concat_first_pass(n) {
                // C: "restart admin queue for secure concatenation", now
                // with the PSK DH-HMAC-CHAP generated.
                n.stop_keep_alive();
                self.teardown_admin_queue(false);
                self.configure_admin_queue(false)?;
            }
            if n.icdoff() != 0 {
                dev_err!(self.device(), "icdoff is not supported!\n");
                return Err(EOPNOTSUPP);
            }
            if !n.sgl_supported() {
                dev_err!(self.device(), "Mandatory sgls are not supported!\n");
                return Err(EOPNOTSUPP);
            }
            if u32::from(n.sqsize()) + 1 > u32::from(n.maxcmd()) {
                dev_warn!(self.device(), "sqsize {} > ctrl maxcmd {}, clamping down\n", u32::from(n.sqsize()) + 1, n.maxcmd());
                n.set_sqsize(n.maxcmd().saturating_sub(1));
            }
            if self.core().queue_count() > 1 {
                self.configure_io_queues(new)?;
            }
            if !n.change_state(nb::nvme_ctrl_state_NVME_CTRL_LIVE) {
                if self.core().queue_count() > 1 {
                    self.teardown_io_queues(new);
                }
                return Err(EINVAL);
            }
            n.start();
            Ok(())
        })();
        if r.is_err() {
            n.stop_keep_alive();
            self.teardown_admin_queue(new);
        }
        r
    }

    fn teardown_io_queues(&self, remove: bool) {
        if self.core().queue_count() <= 1 || !self.core().has_io_tagset() {
            return;
        }
        let n = self.core();
        n.quiesce_io_queues();
        n.sync_io_queues();
        self.stop_io_queues();
        n.cancel_tagset();
        if remove {
            n.unquiesce_io_queues();
        }
        self.free_io_queues();
        if remove {
            n.remove_io_tag_set();
        }
    }

    fn teardown_admin_queue(&self, remove: bool) {
        if !self.core().has_admin_queue() {
            return;
        }
        let n = self.core();
        n.quiesce_admin_queue();
        n.sync_admin_queue();
        self.stop_queue(0);
        n.cancel_admin_tagset();
        // The AER died with the connection (nvme-core submits a new one
        // once live again): a response carrying its command id before then
        // names nothing.
        self.aer_outstanding.store(false, Ordering::Release);
        if remove {
            n.unquiesce_admin_queue();
        }
        self.free_queue(0);
        if remove {
            n.remove_admin_tag_set();
        }
        // C: the negotiated PSK is wiped with the admin queue.
        n.set_tls_pskid(None);
    }

    /// C: `nvme_tcp_teardown_ctrl`.
    fn teardown(&self, shutdown: bool) {
        let n = self.core();
        self.teardown_io_queues(shutdown);
        if self.core().has_admin_queue() {
            n.quiesce_admin_queue();
            n.disable(shutdown);
        }
        self.teardown_admin_queue(shutdown);
    }
}

/// Opens queue `qid`'s TCP connection and runs the ICReq/ICResp exchange.
fn connect_queue(dev: &Device, qid: u16, c: &TcpCtrl, opts: &CtrlOptions) -> Result<(TcpSocket, IcResp)> {
    let digests = c.digests;
    let sock = TcpSocket::connect(&c.net, &c.addr, c.src_addr.as_ref(), opts.host_iface(), opts.tos()).inspect_err(|e| {
        dev_err!(dev, "rnvme_tcp: queue {}: failed to connect socket: {}\n", qid, e.to_errno());
    })?;
    // With `tls`: the handshake, before ICReq (C: nvme_tcp_alloc_queue).
    let sock = crate::tls::start(c.core(), qid, sock)?;
    sock.send_all(&pdu::encode_icreq(digests)).inspect_err(|e| {
        dev_err!(dev, "rnvme_tcp: queue {}: failed to send icreq: {}\n", qid, e.to_errno());
    })?;
    let mut buf = [0u8; pdu::ICRESP_LEN];
    crate::tls::recv_icresp(dev, qid, &sock, &mut buf).inspect_err(|e| {
        dev_err!(dev, "rnvme_tcp: queue {}: failed to receive icresp: {}\n", qid, e.to_errno());
    })?;
    let icresp = pdu::parse_icresp(&buf, digests).map_err(|e| {
        dev_err!(dev, "rnvme_tcp: queue {}: {}\n", qid, Shown(e));
        Error::from_errno(-e.errno())
    })?;
    Ok((sock, icresp))
}

/// The map type (default, read, poll) hardware context `hctx_idx`
/// belongs to, from the per-type I/O queue counts.
fn map_type_of(io_queues: &[u32; kb::hctx_type_HCTX_MAX_TYPES as usize], hctx_idx: c_uint) -> c_uint {
    let d = io_queues[kb::hctx_type_HCTX_TYPE_DEFAULT as usize];
    let r = io_queues[kb::hctx_type_HCTX_TYPE_READ as usize];
    if hctx_idx < d {
        kb::hctx_type_HCTX_TYPE_DEFAULT
    } else if hctx_idx < d + r {
        kb::hctx_type_HCTX_TYPE_READ
    } else {
        kb::hctx_type_HCTX_TYPE_POLL
    }
}
