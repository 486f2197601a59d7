// SPDX-License-Identifier: GPL-2.0
//! Controller life cycle on nvme-core: create, reset, error recovery,
//! delete, free; the blk-mq and nvme-core callbacks.
//!
//! Follows `drivers/nvme/host/tcp.c`: admin queue (ICReq/ICResp, Fabrics
//! Connect, enable, identify), then I/O queues with default/read maps.

use crate::proto::pdu::{self, DataPlacement, Digests, IcResp};
use crate::proto::r2t::Slot;
use crate::queue::{Queue, SendState, TcpRequest};
use crate::sys::bindings as nb;
use crate::sys::blk_mq::{self, HwCtx, Lookup, MqOperations, Request, SetBeingMapped, TagSet, BLK_STS_IOERR};
use crate::sys::fabrics::{opt, CtrlHandle, CtrlOptions, Transport};
use crate::sys::fmt::Shown;
use crate::sys::nvme::{nvme_result, CtrlOperations, CtrlOpsTable, NvmeCtrl};
use crate::sys::socket::{SockAddr, TcpSocket};
use crate::sys::workqueue::{DelayedWork, Work, WORK_CPU_UNBOUND};
use core::ptr::null_mut;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use kernel::{bindings as kb, device::Device, prelude::*, types::Opaque};

/// `NVME_TCP_ADMIN_CCSZ`: in-capsule data the admin queue accepts.
const ADMIN_CCSZ: u32 = 8192;

kernel::sync::global_lock! {
    // SAFETY: initialised by `init_ops()` in module init, before any use.
    unsafe(uninit) static CTRLS: Mutex<KVec<usize>> = KVec::new();
}

/// The module, for the references controllers hold on it.
pub(crate) static THIS_MODULE: AtomicPtr<kb::module> = AtomicPtr::new(null_mut());

/// The NVMe/TCP transport.
pub(crate) struct TcpTransport;

impl Transport for TcpTransport {
    const NAME: &'static CStr = c"tcp";
    const REQUIRED_OPTS: u32 = opt::TRADDR;
    // Only options that are implemented are allowed; nvme-fabrics rejects
    // the others by name ("invalid parameter").
    const ALLOWED_OPTS: u32 =
        opt::TRSVCID | opt::CTRL_LOSS_TMO | opt::HDR_DIGEST | opt::DATA_DIGEST | opt::NR_WRITE_QUEUES
            | opt::NR_POLL_QUEUES | opt::HOST_TRADDR | opt::HOST_IFACE | opt::TOS | opt::RECONNECT_DELAY
            | opt::FAIL_FAST_TMO | opt::TLS | opt::KEYRING | opt::TLS_KEY;

    /// `NVME_TCP_DISC_PORT`.
    const DEFAULT_TRSVCID: &'static CStr = c"4420";

    fn create_ctrl(dev: &Device, opts: &CtrlOptions) -> Result<CtrlHandle> {
        let traddr = opts.traddr().ok_or(EINVAL)?;
        // Never NULL: DEFAULT_TRSVCID is set when the connect gave none.
        let trsvcid = opts.trsvcid().ok_or(EINVAL)?;
        let addr = SockAddr::parse(traddr, trsvcid).inspect_err(|e| {
            dev_err!(dev, "rnvme_tcp: malformed address {}:{}: {}\n", traddr, trsvcid, e.to_errno());
        })?;
        let src = match opts.host_traddr() {
            Some(h) => Some(SockAddr::parse_host(h).inspect_err(|e| {
                dev_err!(dev, "rnvme_tcp: malformed host_traddr {}: {}\n", h, e.to_errno());
            })?),
            None => None,
        };
        if !opts.duplicate_connect() && existing_controller(opts) {
            dev_err!(dev, "rnvme_tcp: a controller for {} at {}:{} exists (duplicate_connect not set)\n",
                opts.subsysnqn().unwrap_or(c"?"), traddr, trsvcid);
            return Err(EALREADY);
        }
        crate::tls::check_options(dev, opts, crate::module_parameters::read_sock.value())?;
        TcpCtrl::create(dev, opts, addr, src)
    }
}

/// Whether a live controller already matches these options
/// (C: `nvme_tcp_existing_controller`).
fn existing_controller(opts: &CtrlOptions) -> bool {
    let list = CTRLS.lock();
    list.iter().any(|&c| {
        // SAFETY: controllers stay on the list until free_ctrl removes them
        // under this lock, so `c` is a live controller.
        unsafe { NvmeCtrl::from_raw(c as *mut nb::nvme_ctrl) }.ip_options_match(opts)
    })
}

/// Writes the receive counters of every queue of every controller
/// (`/sys/kernel/debug/rnvme_tcp/queues`).
pub(crate) fn write_queue_stats(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let list = CTRLS.lock();
    for &n in list.iter() {
        // SAFETY: controllers stay on the list until free_ctrl removes them
        // under this lock, so `n` is a live controller of ours.
        let c = unsafe { TcpCtrl::from_nctrl(n as *mut nb::nvme_ctrl) };
        let name = c.core().name();
        // Only queues that were ever allocated count; the rest are zero.
        for (qid, q) in c.queues.iter().enumerate() {
            let name = name.to_str().unwrap_or("?");
            match q.io_cpu() {
                Some(cpu) => writeln!(f, "{} qid {} cpu={} {}", name, qid, cpu, q.stats)?,
                None => writeln!(f, "{} qid {} cpu=any {}", name, qid, q.stats)?,
            }
        }
    }
    Ok(())
}

/// A controller: nvme-core's `nvme_ctrl` plus what the transport needs.
///
/// # Invariants
///
/// Allocated by `create` with `KBox` and freed only by `free_ctrl` (called
/// by nvme-core when its last reference goes); `queues` is allocated once
/// and never grows, so queue addresses are stable. Shared by every context
/// as `&TcpCtrl` once created: what changes afterwards is nvme-core's
/// (`ctrl`, `Opaque`), atomics, the tag sets (`Opaque`, changed by
/// nvme-core on set-up paths), the queues' own cells, or `async_req`
/// (nvme-core's async event work, one AER at a time).
#[repr(C)]
pub(crate) struct TcpCtrl {
    /// nvme-core's controller, which nvme-core changes under its own locks.
    pub(crate) ctrl: Opaque<nb::nvme_ctrl>,
    admin_tag_set: TagSet<AdminQueueOps>,
    tag_set: TagSet<IoQueueOps>,
    queues: KVec<Queue>,
    /// I/O queues per map type (default, read, poll), as nvme-fabrics split
    /// them (`nvmf_set_io_queues()`).
    io_queues: IoQueueCounts,
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
    async_req: UnsafeCell<TcpRequest>,
    /// An AER is outstanding: only then may a response carry its command id.
    aer_outstanding: AtomicBool,
    /// True once creation succeeded: `free_ctrl` then owns the options.
    created: AtomicBool,
    /// io_work receives with `read_sock()` instead of `sock_recvmsg()`
    /// (module parameter `read_sock` when the controller was created).
    read_sock: bool,
}

/// The controllers' `nvme_ctrl_ops`, filled in at module load.
static CTRL_OPS: CtrlOpsTable<TcpCtrl> = CtrlOpsTable::new();

/// Frees the controller list's storage when the module goes: statics are
/// never dropped, and the list's buffer would outlive the module (kmemleak
/// found it: t21).
pub(crate) struct CtrlList(());

impl Drop for CtrlList {
    fn drop(&mut self) {
        drop(core::mem::take(&mut *CTRLS.lock()));
    }
}

/// Proof of running on one of a controller's set-up paths: create, reset,
/// error recovery, reconnect or delete. nvme-core runs at most one of them
/// at a time for a controller (each starts only from the state the last
/// one left it in), and each stops a queue (and quiesces its blk-mq queue)
/// before it frees it or allocates it again. Only these paths change a
/// queue's set-up ([`Queue::alloc`], [`Queue::free`]).
pub(crate) struct SetupPath(());

impl SetupPath {
    /// # Safety
    ///
    /// The caller is one of the set-up paths above, and keeps the value to
    /// itself.
    unsafe fn enter() -> Self {
        Self(())
    }
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

/// Fills in `CTRL_OPS`; called from module init before registration. The
/// module keeps the returned guard until the transport is unregistered.
pub(crate) fn init_ops(module: &'static ThisModule) -> CtrlList {
    // SAFETY: called exactly once, from module init.
    unsafe { CTRLS.init() };
    THIS_MODULE.store(module.as_ptr(), Ordering::Relaxed);
    // SAFETY: called once, from module init, before the transport is
    // registered: no controller exists yet.
    unsafe { CTRL_OPS.init(module) };
    CtrlList(())
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
    pub(crate) fn find_request(&self, qid: u16, cid: u16) -> Result<(Request, &mut TcpRequest), Lookup> {
        if qid == 0 {
            self.admin_tag_set.tags(0).ok_or(Lookup::Unknown)?.find(cid)
        } else {
            self.tag_set.tags(usize::from(qid) - 1).ok_or(Lookup::Unknown)?.find(cid)
        }
    }

    fn create(dev: &Device, opts: &CtrlOptions, addr: SockAddr, src: Option<SockAddr>) -> Result<CtrlHandle> {
        let nr_queues = (opts.nr_io_queues() + opts.nr_write_queues() + opts.nr_poll_queues() + 1) as usize;
        let mut b = KBox::<TcpCtrl>::new_uninit(GFP_KERNEL)?;
        let me: *mut TcpCtrl = b.as_mut_ptr();
        let mut queues = KVec::with_capacity(nr_queues, GFP_KERNEL)?;
        for qid in 0..nr_queues {
            queues.push(Queue::new(me, qid as u16), GFP_KERNEL)?;
        }
        // All-zero is valid for the C structs, pointers, integers, bools and
        // atomics; the fields for which it is not are written right after.
        // SAFETY: `me` is the box's storage, initialised before `assume_init`.
        unsafe {
            core::ptr::write_bytes(me, 0, 1);
            core::ptr::write(&raw mut (*me).queues, queues);
            core::ptr::write(&raw mut (*me).addr, addr);
            core::ptr::write(&raw mut (*me).src_addr, src);
            core::ptr::write(&raw mut (*me).async_req, UnsafeCell::new(TcpRequest::new(null_mut(), (*me).ctrl.get())));
        }
        // SAFETY: every field is initialised (above).
        let mut b = unsafe { b.assume_init() };
        b.read_sock = crate::module_parameters::read_sock.value();
        b.async_req.get_mut().bind_sqe();
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
            nb::rnvme_init_work(
                (&raw mut (*n).reset_work).cast(),
                Some(reset_work_fn),
                kernel::static_lock_class!().as_ptr().cast(),
            );
        }
        let module = THIS_MODULE.load(Ordering::Relaxed);
        // SAFETY: holding a module reference per controller (dropped in
        // free_ctrl) keeps the ops alive while nvme-core may call them.
        if !unsafe { kb::try_module_get(module) } {
            return Err(ENODEV);
        }
        let ctrl = KBox::into_raw(b);
        // SAFETY: `ctrl` is ours; nvme_init_ctrl takes the ops pointer that
        // lives as long as the module.
        let ret = unsafe { nb::nvme_init_ctrl((*ctrl).ctrl.get(), core::ptr::from_ref(dev).cast_mut().cast(), CTRL_OPS.as_raw(), 0) };
        if let Err(e) = nvme_result(ret) {
            // SAFETY: nvme_init_ctrl failed, nothing else references `ctrl`.
            drop(unsafe { KBox::from_raw(ctrl) });
            // SAFETY: the reference taken above.
            unsafe { kb::module_put(module) };
            return Err(e);
        }
        // From here on nvme-core owns `ctrl`: errors go through
        // nvme_uninit_ctrl/nvme_put_ctrl, which end in free_ctrl.
        // SAFETY: `ctrl` is initialised and lives until free_ctrl.
        let c = unsafe { &*ctrl };
        let n = c.core();
        // SAFETY: creation is the controller's first set-up path; nvme-core
        // starts no other before the controller is CONNECTING and returned.
        let p = unsafe { SetupPath::enter() };
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
            c.setup(&p, true)
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
    fn alloc_queue(&self, p: &SetupPath, qid: u16) -> Result {
        let n = self.core();
        let (sock, icresp) = connect_queue(n.device(), qid, self, n.opts())?;
        let ccsz = if qid == 0 { pdu::SQE_LEN as u32 + ADMIN_CCSZ } else { self.core().ioccsz() * 16 };
        let _: &SetupPath = p;
        // SAFETY: `p`: a set-up path, which allocates a queue only while
        // it is stopped and quiesced (or before it ever started).
        unsafe { self.queues[usize::from(qid)].alloc(sock, icresp, ccsz, self.read_sock) };
        Ok(())
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

    fn free_queue(&self, p: &SetupPath, qid: usize) {
        let _: &SetupPath = p;
        // SAFETY: `p`: a set-up path, which frees a queue only after
        // stopping it.
        unsafe { self.queues[qid].free() };
    }

    fn configure_admin_queue(&self, p: &SetupPath, new: bool) -> Result {
        let n = self.core();
        self.alloc_queue(p, 0)?;
        if new {
            // SAFETY: the tag set lives in the controller; the ops are static.
            let ret = unsafe {
                nb::nvme_alloc_admin_tag_set(
                    n.as_raw(),
                    self.admin_tag_set.as_raw().cast(),
                    TagSet::<AdminQueueOps>::ops(),
                    TagSet::<AdminQueueOps>::cmd_size(),
                )
            };
            if let Err(e) = nvme_result(ret) {
                self.free_queue(p, 0);
                return Err(e);
            }
        }
        let r = (|| -> Result {
            self.start_queue(0)?;
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
            self.free_queue(p, 0);
        }
        r
    }

    fn alloc_io_queues(&self, p: &SetupPath) -> Result {
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
            if let Err(e) = self.alloc_queue(p, qid) {
                for q in 1..qid {
                    self.free_queue(p, usize::from(q));
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

    fn free_io_queues(&self, p: &SetupPath) {
        for q in 1..self.core().queue_count() as usize {
            self.free_queue(p, q);
        }
    }

    fn configure_io_queues(&self, p: &SetupPath, new: bool) -> Result {
        let n = self.core();
        self.alloc_io_queues(p)?;
        let nr_maps = if n.opts().nr_poll_queues() > 0 { kb::hctx_type_HCTX_MAX_TYPES } else { 2 };
        if new {
            // SAFETY: the tag set lives in the controller; the ops are static.
            let ret = unsafe {
                nb::nvme_alloc_io_tag_set(
                    n.as_raw(),
                    self.tag_set.as_raw().cast(),
                    TagSet::<IoQueueOps>::ops(),
                    nr_maps,
                    TagSet::<IoQueueOps>::cmd_size(),
                )
            };
            if let Err(e) = nvme_result(ret) {
                self.free_io_queues(p);
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
            self.free_io_queues(p);
        }
        r
    }

    /// C: `nvme_tcp_setup_ctrl`.
    fn setup(&self, p: &SetupPath, new: bool) -> Result {
        let n = self.core();
        self.configure_admin_queue(p, new)?;
        let r = (|| -> Result {
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
                self.configure_io_queues(p, new)?;
            }
            if !n.change_state(nb::nvme_ctrl_state_NVME_CTRL_LIVE) {
                if self.core().queue_count() > 1 {
                    self.teardown_io_queues(p, new);
                }
                return Err(EINVAL);
            }
            n.start();
            Ok(())
        })();
        if r.is_err() {
            n.stop_keep_alive();
            self.teardown_admin_queue(p, new);
        }
        r
    }

    fn teardown_io_queues(&self, p: &SetupPath, remove: bool) {
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
        self.free_io_queues(p);
        if remove {
            n.remove_io_tag_set();
        }
    }

    fn teardown_admin_queue(&self, p: &SetupPath, remove: bool) {
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
        self.free_queue(p, 0);
        if remove {
            n.remove_admin_tag_set();
        }
        // C: the negotiated PSK is wiped with the admin queue.
        n.set_tls_pskid(None);
    }

    /// C: `nvme_tcp_teardown_ctrl`.
    fn teardown(&self, p: &SetupPath, shutdown: bool) {
        let n = self.core();
        self.teardown_io_queues(p, shutdown);
        if self.core().has_admin_queue() {
            n.quiesce_admin_queue();
            n.disable(shutdown);
        }
        self.teardown_admin_queue(p, shutdown);
    }

    /// Starts error recovery (any context): the controller goes to
    /// RESETTING and `err_work` tears it down and reconnects once.
    pub(crate) fn error_recovery(&self) {
        if !self.core().change_state(nb::nvme_ctrl_state_NVME_CTRL_RESETTING) {
            return;
        }
        dev_warn!(self.device(), "starting error recovery\n");
        self.err_work.queue_on(WORK_CPU_UNBOUND);
    }

    /// Queue `qid` failed while connecting, where error recovery does
    /// nothing (C relies on the set-up command's timeout, 60 s for admin
    /// commands): its started commands time out now, so the waiting
    /// set-up step fails at once. Only this queue's requests, and nothing
    /// is completed here: the timeout handler stops the queue and
    /// completes them, as after any timeout while not live.
    pub(crate) fn expire_setup_requests(&self, qid: u16) {
        if self.core().state() != nb::nvme_ctrl_state_NVME_CTRL_CONNECTING {
            return;
        }
        if qid == 0 {
            self.admin_tag_set.expire_requests(0);
        } else {
            self.tag_set.expire_requests(u32::from(qid) - 1);
        }
    }

    /// After a failed connection (C: `nvme_tcp_reconnect_or_remove`):
    /// another attempt in `reconnect_delay` seconds while `ctrl_loss_tmo`
    /// allows, else the controller is removed.
    fn reconnect_or_remove(&self, status: c_int) {
        let n = self.core();
        if self.core().state() != nb::nvme_ctrl_state_NVME_CTRL_CONNECTING {
            return;
        }
        let delay = n.opts().reconnect_delay();
        if n.should_reconnect(status) {
            dev_info!(self.device(), "Reconnecting in {} seconds...\n", delay);
            self.connect_work.queue_in(delay);
        } else {
            dev_info!(self.device(), "Removing controller ({})...\n", status);
            n.delete();
        }
    }
}

/// Opens queue `qid`'s TCP connection and runs the ICReq/ICResp exchange.
fn connect_queue(dev: &Device, qid: u16, c: &TcpCtrl, opts: &CtrlOptions) -> Result<(TcpSocket, IcResp)> {
    let digests = c.digests;
    let sock = TcpSocket::connect(&c.addr, c.src_addr.as_ref(), opts.host_iface(), opts.tos()).inspect_err(|e| {
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

// ---- nvme-core callbacks ---------------------------------------------------

// SAFETY: `TcpCtrl` is `repr(C)` with its `nvme_ctrl` first; `create`
// allocates it with `KBox` and hands it to nvme-core with nvme_init_ctrl().
unsafe impl CtrlOperations for TcpCtrl {
    const NAME: &'static CStr = c"tcp";

    fn free_ctrl(c: KBox<Self>) {
        if c.created.load(Ordering::Acquire) {
            CTRLS.lock().retain(|p| *p != c.core().as_raw() as usize);
            // SAFETY: after a successful create the options are ours to
            // free, and nothing reads them after free_ctrl.
            unsafe { c.core().opts().free() };
        }
        drop(c);
        // SAFETY: the reference taken in `create`.
        unsafe { kb::module_put(THIS_MODULE.load(Ordering::Relaxed)) };
    }

    /// One AER at a time (nvme-core's async event work).
    fn submit_async_event(c: &Self) {
        let q = &c.queues[0];
        let digests = q.conf().digests;
        // SAFETY: nvme-core submits one AER at a time, after the previous
        // one completed, so neither side still uses it for the previous one
        // (as the C driver reuses `ctrl->async_req`).
        let req = unsafe { &mut *c.async_req.get() };
        req.cmd.0 = [0; pdu::CMD_PDU_LEN + pdu::DIGEST_LEN];
        let Some(sqe) = req.sqe() else { return };
        sqe[0] = nb::nvme_admin_opcode_nvme_admin_async_event as u8;
        sqe[2..4].copy_from_slice(&(nb::NVME_AQ_BLK_MQ_DEPTH as u16).to_le_bytes());
        pdu::set_sgl(sqe, DataPlacement::None);
        req.seal_cmd(digests, 0);
        req.queue = q;
        req.inline_len = 0;
        req.data_len = 0;
        req.write = false;
        req.r2t_left = 0;
        req.data.clear();
        req.send = SendState::Cmd { off: 0 };
        req.r2t_slot.store(Slot::Sending as u8, Ordering::Relaxed);
        c.aer_outstanding.store(true, Ordering::Release);
        q.queue_request(req, true);
    }

    fn delete_ctrl(c: &Self) {
        c.err_work.flush();
        // SAFETY: nvme-core's delete work, with the controller DELETING:
        // error recovery was flushed above and no reset or reconnect starts.
        let p = unsafe { SetupPath::enter() };
        c.teardown(&p, true);
    }

    fn stop_ctrl(c: &Self) {
        c.err_work.flush();
        c.connect_work.cancel_sync();
    }
}

/// Hands an AER completion to nvme-core; false when no AER is outstanding
/// (the command id is then unknown).
pub(crate) fn complete_async_event(c: &TcpCtrl, status: u16, result: u64) -> bool {
    if !c.aer_outstanding.swap(false, Ordering::AcqRel) {
        return false;
    }
    c.core().complete_async_event(status, result);
    true
}

/// Error recovery (C: `nvme_tcp_error_recovery_work`).
///
/// # Safety
///
/// Called by the workqueue with the `err_work` of a live controller.
unsafe extern "C" fn err_work_fn(w: *mut kb::work_struct) {
    let off = core::mem::offset_of!(TcpCtrl, err_work);
    // SAFETY: `w` is the `err_work` of a live controller.
    let c = unsafe { &*w.cast::<u8>().sub(off).cast::<TcpCtrl>() };
    // SAFETY: error recovery runs only after the move to RESETTING, which
    // nvme-core refuses while another reset, reconnect or delete runs.
    let p = unsafe { SetupPath::enter() };
    let n = c.core();
    n.stop_keep_alive();
    n.flush_async_event_work();
    c.teardown_io_queues(&p, false);
    if n.has_io_tagset() {
        // Fail pending requests fast.
        n.unquiesce_io_queues();
    }
    c.teardown_admin_queue(&p, false);
    n.unquiesce_admin_queue();
    n.auth_stop();
    if !n.change_state(nb::nvme_ctrl_state_NVME_CTRL_CONNECTING) {
        return;
    }
    c.reconnect_or_remove(0);
}

/// A delayed reconnect attempt (C: `nvme_tcp_reconnect_ctrl_work`).
///
/// # Safety
///
/// Called by the workqueue with the work of a live controller's
/// `connect_work`.
unsafe extern "C" fn connect_work_fn(w: *mut kb::work_struct) {
    let off = core::mem::offset_of!(TcpCtrl, connect_work) + DelayedWork::WORK_OFFSET;
    // SAFETY: `w` is the work of `connect_work` of a live controller.
    let c = unsafe { &*w.cast::<u8>().sub(off).cast::<TcpCtrl>() };
    // SAFETY: queued only by a set-up path that left the controller
    // CONNECTING, and cancelled before delete (stop_ctrl): nothing else
    // sets the controller up meanwhile.
    let p = unsafe { SetupPath::enter() };
    let n = c.core();
    n.set_nr_reconnects(n.nr_reconnects() + 1);
    let max = c.core().opts().max_reconnects();
    match c.setup(&p, false) {
        Ok(()) => {
            dev_info!(c.device(), "Successfully reconnected (attempt {}/{})\n", n.nr_reconnects(), max);
            n.set_nr_reconnects(0);
        }
        Err(e) => {
            dev_info!(c.device(), "Failed reconnect attempt {}/{}\n", n.nr_reconnects(), max);
            c.reconnect_or_remove(e.to_errno());
        }
    }
}

/// `nvme reset` (C: `nvme_reset_ctrl_work`).
///
/// # Safety
///
/// Called by nvme-core's workqueue with the `reset_work` of one of our
/// live controllers.
unsafe extern "C" fn reset_work_fn(w: *mut kb::work_struct) {
    let off = core::mem::offset_of!(TcpCtrl, ctrl) + core::mem::offset_of!(nb::nvme_ctrl, reset_work);
    // SAFETY: `w` is the `reset_work` of one of our live controllers.
    let c = unsafe { &*w.cast::<u8>().sub(off).cast::<TcpCtrl>() };
    // SAFETY: nvme-core queues reset work only after the move to
    // RESETTING, which it refuses while another set-up path runs.
    let p = unsafe { SetupPath::enter() };
    let n = c.core();
    n.stop();
    c.teardown(&p, false);
    if !n.change_state(nb::nvme_ctrl_state_NVME_CTRL_CONNECTING) {
        return;
    }
    match c.setup(&p, false) {
        Ok(()) => dev_info!(c.device(), "Successfully reconnected\n"),
        Err(e) => {
            n.set_nr_reconnects(n.nr_reconnects() + 1);
            dev_warn!(c.device(), "failed to reconnect after reset: {}\n", e.to_errno());
            c.reconnect_or_remove(e.to_errno());
        }
    }
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

// ---- blk-mq operations -----------------------------------------------------

/// The blk-mq operations of the admin queue (`IO = false`: tag set of one
/// hardware queue, queue 0) or of the I/O queues (`IO = true`: hardware
/// queue `i` is queue `i + 1`, with read and poll maps).
pub(crate) struct QueueOps<const IO: bool>;
/// The admin queue's blk-mq operations.
pub(crate) type AdminQueueOps = QueueOps<false>;
/// The I/O queues' blk-mq operations.
pub(crate) type IoQueueOps = QueueOps<true>;

impl<const IO: bool> QueueOps<IO> {
    /// The queue behind hardware queue `hctx_idx` of this tag set.
    fn queue_of(c: &TcpCtrl, hctx_idx: u32) -> Result<&Queue> {
        let qid = if IO { hctx_idx as usize + 1 } else { 0 };
        c.queues.get(qid).ok_or(EINVAL)
    }
}

/// Queues a request (C: `nvme_tcp_queue_rq`): builds its command capsule
/// and hands it to io_work.
fn queue_rq(q: &Queue, hctx: &HwCtx, rq: Request, req: &mut TcpRequest, last: bool) -> kb::blk_status_t {
    let live = q.live.load(Ordering::Acquire);
    let c = q.ctrl();
    if !c.core().check_ready(rq, live) {
        return c.core().fail_nonready_command(rq);
    }
    if let Err(st) = hctx.setup_cmd(rq) {
        return st;
    }
    let digests = q.conf().digests;
    let (len, write) = (rq.payload_bytes(), rq.is_write());
    let icdoff = u32::from(c.core().icdoff());
    req.data_len = len;
    req.write = write;
    req.data_sent = 0;
    req.data_recvd = 0;
    req.status = 0;
    req.r2t_left = 0;
    req.h2c_left = 0;
    req.send = SendState::Cmd { off: 0 };
    req.r2t_slot.store(Slot::Sending as u8, Ordering::Relaxed);
    // SAFETY: the request is started below and stays in flight until it
    // completes; the next queue_rq of this PDU starts the data over.
    unsafe { req.data.start(rq.as_raw(), write, len) };
    let inline_max = q.conf().cmnd_capsule_len.saturating_sub(pdu::SQE_LEN as u32);
    req.inline_len = if write && len > 0 && len <= inline_max { len } else { 0 };
    let place = if len == 0 {
        DataPlacement::None
    } else if req.inline_len > 0 {
        DataPlacement::InCapsule { len, icdoff }
    } else {
        DataPlacement::Transport { len }
    };
    let Some(sqe) = req.sqe() else {
        rq.cleanup_cmd();
        return BLK_STS_IOERR;
    };
    pdu::set_sgl(sqe, place);
    let inline_len = req.inline_len;
    req.seal_cmd(digests, inline_len);
    rq.start();
    q.queue_request(req, last);
    kb::BLK_STS_OK as kb::blk_status_t
}

/// A request timed out (C: `nvme_tcp_timeout`).
fn timeout(req: &mut TcpRequest, rq: Request) -> kb::blk_eh_timer_return {
    // SAFETY: `queue` was set in init_request to the queue of this
    // request, which outlives it.
    let q = unsafe { &*req.queue };
    let c = q.ctrl();
    let opcode = req.cmd.0[pdu::HDR_LEN];
    dev_warn!(c.device(), "queue {}: request timeout, opcode {:#x}, state {}\n", q.qid, opcode, c.core().state());
    if c.core().state() != nb::nvme_ctrl_state_NVME_CTRL_LIVE {
        // Not live (connecting, deleting): fail the request now so set-up
        // or teardown can go on.
        q.stop();
        rq.complete_timed_out();
        return kb::blk_eh_timer_return_BLK_EH_DONE;
    }
    c.error_recovery();
    kb::blk_eh_timer_return_BLK_EH_RESET_TIMER
}

// SAFETY: nvme-core sets both tag sets' `driver_data` to the controller's
// `nvme_ctrl`, the first field of the `repr(C)` `TcpCtrl`, which outlives
// them (removed in teardown before free_ctrl).
unsafe impl<const IO: bool> MqOperations for QueueOps<IO> {
    type Owner = TcpCtrl;
    type HwQueue = Queue;
    type RequestData = TcpRequest;
    const POLL: bool = IO;
    const MAP_QUEUES: bool = IO;

    fn init_request(c: &TcpCtrl, hctx_idx: u32) -> Result<TcpRequest> {
        let q: *const Queue = Self::queue_of(c, hctx_idx)?;
        Ok(TcpRequest::new(q, c.ctrl.get()))
    }
    fn request_placed(req: &mut TcpRequest) {
        req.bind_sqe();
    }
    fn init_hctx(c: &TcpCtrl, hctx_idx: u32) -> Result<&Queue> {
        Self::queue_of(c, hctx_idx)
    }
    fn queue_rq(q: &Queue, hctx: &HwCtx, rq: Request, req: &mut TcpRequest, last: bool) -> kb::blk_status_t {
        queue_rq(q, hctx, rq, req, last)
    }
    fn commit_rqs(q: &Queue) {
        q.commit();
    }
    fn poll(q: &Queue) -> c_int {
        q.poll()
    }
    fn complete(rq: Request, req: &mut TcpRequest) {
        // Whoever completed it (a response, a cancel, a timeout), its pages
        // go back to their owner: no data phase may point at them.
        req.data.clear();
        blk_mq::nvme_complete_rq(rq);
    }
    fn timeout(rq: Request, req: &mut TcpRequest) -> kb::blk_eh_timer_return {
        timeout(req, rq)
    }
    fn map_queues(c: &TcpCtrl, set: SetBeingMapped) {
        set.nvmf_map(c.core(), &c.io_queues.get());
    }
}
