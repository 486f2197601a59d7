// SPDX-License-Identifier: GPL-2.0
//! Controller life cycle on nvme-core: create, reset, error recovery,
//! delete, free; the blk-mq and nvme-core callbacks.
//!
//! Follows `drivers/nvme/host/tcp.c`: admin queue (ICReq/ICResp, Fabrics
//! Connect, enable, identify), then I/O queues with default/read maps.

use crate::proto::pdu::{self, DataPlacement, Digests, IcResp};
use crate::queue::{Queue, SendState, TcpRequest};
use crate::sys::bindings as nb;
use crate::sys::fabrics::{opt, CtrlHandle, CtrlOptions, Transport};
use crate::sys::fmt::Shown;
use crate::sys::socket::{SockAddr, TcpSocket};
use core::cell::UnsafeCell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use kernel::{bindings as kb, device::Device, prelude::*};

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
            | opt::FAIL_FAST_TMO;

    fn create_ctrl(dev: &Device, opts: &CtrlOptions) -> Result<CtrlHandle> {
        let traddr = opts.traddr().ok_or(EINVAL)?;
        let trsvcid = opts.trsvcid().unwrap_or(c"4420");
        let addr = SockAddr::parse(traddr, trsvcid).inspect_err(|e| {
            dev_err!(dev, "rnvme_tcp: malformed address {}:{}: {}\n", traddr, trsvcid, e.to_errno());
        })?;
        let src = match opts.host_traddr() {
            Some(h) => Some(SockAddr::parse_host(h).inspect_err(|e| {
                dev_err!(dev, "rnvme_tcp: malformed host_traddr {}: {}\n", h, e.to_errno());
            })?),
            None => None,
        };
        // SAFETY: the options are valid for the call.
        let dup_ok = unsafe { (*opts.as_raw()).duplicate_connect };
        if !dup_ok && existing_controller(opts) {
            dev_err!(dev, "rnvme_tcp: a controller for {} at {}:{} exists (duplicate_connect not set)\n",
                opts.subsysnqn().unwrap_or(c"?"), traddr, trsvcid);
            return Err(EALREADY);
        }
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
        unsafe { nb::nvmf_ip_options_match(c as *mut nb::nvme_ctrl, opts.as_raw()) }
    })
}

/// Writes the receive counters of every queue of every controller
/// (`/sys/kernel/debug/rnvme_tcp/queues`).
pub(crate) fn write_queue_stats(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let list = CTRLS.lock();
    for &n in list.iter() {
        // SAFETY: controllers stay on the list until free_ctrl removes them
        // under this lock, so `n` is a live controller of ours.
        let c = TcpCtrl::from_nctrl(n as *mut nb::nvme_ctrl);
        // SAFETY: nvme_init_ctrl() named the device before the controller
        // went on the list; the name lives as long as the controller.
        let name = unsafe { kernel::str::CStr::from_char_ptr(nb::rnvme_ctrl_name(n as *mut nb::nvme_ctrl)) };
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
/// and never grows, so queue addresses are stable.
#[repr(C)]
pub(crate) struct TcpCtrl {
    pub(crate) ctrl: nb::nvme_ctrl,
    admin_tag_set: kb::blk_mq_tag_set,
    tag_set: kb::blk_mq_tag_set,
    queues: KVec<Queue>,
    io_queues: [u32; kb::hctx_type_HCTX_MAX_TYPES as usize],
    addr: SockAddr,
    src_addr: Option<SockAddr>,
    digests: Digests,
    err_work: kb::work_struct,
    /// Delayed reconnect after an error (reconnect_delay, ctrl_loss_tmo).
    connect_work: kb::delayed_work,
    /// The AER command: sent on the admin queue outside blk-mq, with a
    /// command id past the admin tag space (`NVME_AQ_BLK_MQ_DEPTH`).
    async_req: TcpRequest,
    /// An AER is outstanding: only then may a response carry its command id.
    aer_outstanding: AtomicBool,
    /// True once creation succeeded: `free_ctrl` then owns the options.
    created: bool,
    /// io_work receives with `read_sock()` instead of `sock_recvmsg()`
    /// (module parameter `read_sock` when the controller was created).
    read_sock: bool,
}

/// `nvme_ctrl_ops`, filled in once at module load (it names the module).
struct CtrlOps(UnsafeCell<nb::nvme_ctrl_ops>);
// SAFETY: written once in `init_ops` before any controller exists, then
// only read by nvme-core.
unsafe impl Sync for CtrlOps {}

// SAFETY: an all-zero `nvme_ctrl_ops` is valid (NULL pointers, no callbacks).
static CTRL_OPS: CtrlOps = CtrlOps(UnsafeCell::new(unsafe { core::mem::zeroed() }));

/// Frees the controller list's storage when the module goes: statics are
/// never dropped, and the list's buffer would outlive the module (kmemleak
/// found it: t21).
pub(crate) struct CtrlList(());

impl Drop for CtrlList {
    fn drop(&mut self) {
        drop(core::mem::take(&mut *CTRLS.lock()));
    }
}

/// Fills in `CTRL_OPS`; called from module init before registration. The
/// module keeps the returned guard until the transport is unregistered.
pub(crate) fn init_ops(module: &'static ThisModule) -> CtrlList {
    // SAFETY: called exactly once, from module init.
    unsafe { CTRLS.init() };
    THIS_MODULE.store(module.as_ptr(), Ordering::Relaxed);
    let ops = nb::nvme_ctrl_ops {
        name: c"tcp".as_char_ptr(),
        module: module.as_ptr(),
        flags: nb::NVME_F_FABRICS | nb::NVME_F_BLOCKING,
        reg_read32: Some(nb::nvmf_reg_read32),
        reg_read64: Some(nb::nvmf_reg_read64),
        reg_write32: Some(nb::nvmf_reg_write32),
        subsystem_reset: Some(nb::nvmf_subsystem_reset),
        free_ctrl: Some(free_ctrl_cb),
        submit_async_event: Some(submit_async_event_cb),
        delete_ctrl: Some(delete_ctrl_cb),
        stop_ctrl: Some(stop_ctrl_cb),
        get_address: Some(nb::nvmf_get_address),
        get_virt_boundary: Some(get_virt_boundary_cb),
        ..Default::default()
    };
    // SAFETY: no controller exists yet, so nothing reads CTRL_OPS.
    unsafe { *CTRL_OPS.0.get() = ops };
    CtrlList(())
}

static ADMIN_MQ_OPS: kb::blk_mq_ops = kb::blk_mq_ops {
    queue_rq: Some(queue_rq_cb),
    complete: Some(complete_cb),
    init_request: Some(init_request_cb),
    exit_request: Some(exit_request_cb),
    init_hctx: Some(init_admin_hctx_cb),
    timeout: Some(timeout_cb),
    commit_rqs: Some(commit_rqs_cb),
    // SAFETY: the remaining members are optional callbacks; NULL is valid.
    ..unsafe { core::mem::zeroed() }
};

static MQ_OPS: kb::blk_mq_ops = kb::blk_mq_ops {
    queue_rq: Some(queue_rq_cb),
    complete: Some(complete_cb),
    init_request: Some(init_request_cb),
    exit_request: Some(exit_request_cb),
    init_hctx: Some(init_hctx_cb),
    timeout: Some(timeout_cb),
    map_queues: Some(map_queues_cb),
    commit_rqs: Some(commit_rqs_cb),
    poll: Some(poll_cb),
    // SAFETY: the remaining members are optional callbacks; NULL is valid.
    ..unsafe { core::mem::zeroed() }
};

/// `BLK_STS_IOERR` (a `__force` cast bindgen does not see).
const BLK_STS_IOERR: kb::blk_status_t = 10;

fn errno_of(e: c_int) -> Error {
    if e < 0 { Error::from_errno(e) } else { EIO }
}

impl TcpCtrl {
    /// The nvme device (`nvmeN`), for log lines.
    pub(crate) fn device(&self) -> &Device {
        // SAFETY: `ctrl.device` is set by nvme_init_ctrl() before any queue
        // runs and stays valid until free_ctrl.
        unsafe { Device::from_raw(nb::rnvme_ctrl_device((&raw const self.ctrl).cast_mut()).cast()) }
    }

    fn nctrl(&mut self) -> *mut nb::nvme_ctrl {
        &raw mut self.ctrl
    }

    fn from_nctrl<'a>(n: *mut nb::nvme_ctrl) -> &'a mut TcpCtrl {
        // SAFETY: every `nvme_ctrl` with our ops is the first field of a
        // `TcpCtrl` (`repr(C)`); callers pass such a controller.
        unsafe { &mut *n.cast::<TcpCtrl>() }
    }

    /// The blk-mq tag map of queue `qid`, if its tag set exists.
    pub(crate) fn tags_for(&self, qid: u16) -> Option<*mut kb::blk_mq_tags> {
        let set = if qid == 0 { &self.admin_tag_set } else { &self.tag_set };
        let idx = if qid == 0 { 0 } else { usize::from(qid) - 1 };
        if set.tags.is_null() || idx >= set.nr_hw_queues as usize {
            return None;
        }
        // SAFETY: `tags` has `nr_hw_queues` entries.
        let t = unsafe { *set.tags.add(idx) };
        if t.is_null() { None } else { Some(t) }
    }

    fn create(dev: &Device, opts: &CtrlOptions, addr: SockAddr, src: Option<SockAddr>) -> Result<CtrlHandle> {
        let raw_opts = opts.as_raw();
        // SAFETY: the options are valid for the call.
        let (nr_io, nr_write, nr_poll, queue_size, kato) = unsafe {
            ((*raw_opts).nr_io_queues, (*raw_opts).nr_write_queues, (*raw_opts).nr_poll_queues, (*raw_opts).queue_size, (*raw_opts).kato)
        };
        let nr_queues = (nr_io + nr_write + nr_poll + 1) as usize;
        let mut b = KBox::<TcpCtrl>::new_uninit(GFP_KERNEL)?;
        let me: *mut TcpCtrl = b.as_mut_ptr();
        let mut queues = KVec::with_capacity(nr_queues, GFP_KERNEL)?;
        for qid in 0..nr_queues {
            queues.push(Queue::new(me, qid as u16), GFP_KERNEL)?;
        }
        // SAFETY: `me` is the box's storage. All-zero is valid for the C
        // structs, pointers, integers, bools and atomics; every field for
        // which it is not (the vector, the addresses, the AER request) is
        // written right after, before `assume_init`.
        unsafe {
            core::ptr::write_bytes(me, 0, 1);
            core::ptr::write(&raw mut (*me).queues, queues);
            core::ptr::write(&raw mut (*me).addr, addr);
            core::ptr::write(&raw mut (*me).src_addr, src);
            core::ptr::write(&raw mut (*me).async_req, TcpRequest::new(null_mut(), &raw mut (*me).ctrl));
        }
        // SAFETY: every field is initialised (above).
        let mut b = unsafe { b.assume_init() };
        b.read_sock = crate::module_parameters::read_sock.value();
        b.async_req.bind_sqe();
        // SAFETY: the options are valid for the call.
        b.digests = unsafe { Digests { header: (*raw_opts).hdr_digest, data: (*raw_opts).data_digest } };
        b.ctrl.opts = raw_opts.cast();
        b.ctrl.sqsize = (queue_size - 1) as u16;
        b.ctrl.kato = kato;
        b.ctrl.queue_count = nr_queues as u32;
        // SAFETY: initialising our own work items.
        unsafe {
            nb::rnvme_init_work((&raw mut b.err_work).cast(), Some(err_work_fn));
            nb::rnvme_init_work((&raw mut b.ctrl.reset_work).cast(), Some(reset_work_fn));
            nb::rnvme_init_delayed_work((&raw mut b.connect_work).cast(), Some(connect_work_fn));
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
        let ret = unsafe { nb::nvme_init_ctrl(&raw mut (*ctrl).ctrl, (dev as *const Device).cast_mut().cast(), CTRL_OPS.0.get(), 0) };
        if ret != 0 {
            // SAFETY: nvme_init_ctrl failed, nothing else references `ctrl`.
            drop(unsafe { KBox::from_raw(ctrl) });
            // SAFETY: the reference taken above.
            unsafe { kb::module_put(module) };
            return Err(errno_of(ret));
        }
        // From here on nvme-core owns `ctrl`: errors go through
        // nvme_uninit_ctrl/nvme_put_ctrl, which end in free_ctrl.
        // SAFETY: `ctrl` is initialised and ours until returned.
        let c = unsafe { &mut *ctrl };
        let n = c.nctrl();
        let r = (|| -> Result {
            // SAFETY: `n` is an initialised controller.
            let ret = unsafe { nb::nvme_add_ctrl(n) };
            if ret != 0 {
                return Err(errno_of(ret));
            }
            // SAFETY: as above.
            if !unsafe { nb::nvme_change_ctrl_state(n, nb::nvme_ctrl_state_NVME_CTRL_CONNECTING) } {
                return Err(EINTR);
            }
            c.setup(true)
        })();
        match r {
            Ok(()) => {
                c.created = true;
                if CTRLS.lock().push(n as usize, GFP_KERNEL).is_err() {
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
                // SAFETY: `n` is non-null.
                Ok(unsafe { CtrlHandle::new(n) })
            }
            Err(e) => {
                // SAFETY: undo nvme_init_ctrl as the C driver does; the last
                // put calls free_ctrl, which frees `ctrl`.
                unsafe {
                    nb::nvme_uninit_ctrl(n);
                    nb::rnvme_put_ctrl(n);
                }
                Err(e)
            }
        }
    }

    /// Opens queue `qid`: socket, ICReq/ICResp (C: `nvme_tcp_alloc_queue`).
    fn alloc_queue(&mut self, qid: u16) -> Result {
        let dev: *const Device = self.device();
        // SAFETY: the device outlives this call.
        let dev = unsafe { &*dev };
        // SAFETY: the options live as long as the controller.
        let opts = unsafe { CtrlOptions::from_raw(self.ctrl.opts) };
        let (sock, icresp) = connect_queue(dev, qid, self, opts)?;
        let ccsz = if qid == 0 { pdu::SQE_LEN as u32 + ADMIN_CCSZ } else { self.ctrl.ioccsz * 16 };
        let read_sock = self.read_sock;
        let q = &mut self.queues[usize::from(qid)];
        q.cmnd_capsule_len = ccsz;
        q.alloc(sock, icresp, read_sock);
        Ok(())
    }

    /// Fabrics Connect on queue `qid` (C: `nvme_tcp_start_queue`).
    fn start_queue(&mut self, qid: u16) -> Result {
        let n = self.nctrl();
        self.queues[usize::from(qid)].start_io();
        if qid > 0 {
            let hctx_idx = c_uint::from(qid) - 1;
            if let Some(map) = mq_map_of(&self.tag_set, &self.io_queues, hctx_idx) {
                self.queues[usize::from(qid)].set_io_cpu(map, hctx_idx);
            }
        }
        // SAFETY: the controller is initialised and the queue allocated.
        let ret = unsafe {
            if qid == 0 { nb::nvmf_connect_admin_queue(n) } else { nb::nvmf_connect_io_queue(n, qid) }
        };
        if ret == 0 {
            self.queues[usize::from(qid)].live.store(true, Ordering::SeqCst);
            Ok(())
        } else {
            self.queues[usize::from(qid)].stop();
            dev_err!(self.device(), "failed to connect queue: {} ret={}\n", qid, ret);
            Err(errno_of(ret))
        }
    }

    fn stop_queue(&mut self, qid: usize) {
        self.queues[qid].stop();
    }

    fn free_queue(&mut self, qid: usize) {
        self.queues[qid].free();
    }

    fn configure_admin_queue(&mut self, new: bool) -> Result {
        let n = self.nctrl();
        self.alloc_queue(0)?;
        if new {
            // SAFETY: the tag set lives in the controller; the ops are static.
            let ret = unsafe {
                nb::nvme_alloc_admin_tag_set(n, &raw mut self.admin_tag_set, &ADMIN_MQ_OPS, core::mem::size_of::<TcpRequest>() as u32)
            };
            if ret != 0 {
                self.free_queue(0);
                return Err(errno_of(ret));
            }
        }
        let r = (|| -> Result {
            self.start_queue(0)?;
            // SAFETY: the admin queue is connected.
            let ret = unsafe { nb::nvme_enable_ctrl(n) };
            if ret != 0 {
                self.stop_queue(0);
                // SAFETY: as above.
                unsafe { nb::nvme_cancel_admin_tagset(n) };
                return Err(errno_of(ret));
            }
            // SAFETY: as above.
            unsafe { nb::nvme_unquiesce_admin_queue(n) };
            // SAFETY: as above.
            let ret = unsafe { nb::nvme_init_ctrl_finish(n, false) };
            if ret != 0 {
                // SAFETY: as above.
                unsafe {
                    nb::nvme_quiesce_admin_queue(n);
                    kb::blk_sync_queue(self.ctrl.admin_q.cast());
                }
                self.stop_queue(0);
                // SAFETY: as above.
                unsafe { nb::nvme_cancel_admin_tagset(n) };
                return Err(errno_of(ret));
            }
            Ok(())
        })();
        if r.is_err() {
            if new {
                // SAFETY: allocated above.
                unsafe { nb::nvme_remove_admin_tag_set(n) };
            }
            self.free_queue(0);
        }
        r
    }

    fn alloc_io_queues(&mut self) -> Result {
        let n = self.nctrl();
        // SAFETY: the options are valid while the controller lives.
        let mut nr: c_int = unsafe { nb::rnvme_nvmf_nr_io_queues(self.ctrl.opts) } as c_int;
        // SAFETY: the admin queue is live.
        let ret = unsafe { nb::nvme_set_queue_count(n, &mut nr) };
        if ret != 0 {
            return Err(errno_of(ret));
        }
        if nr <= 0 {
            dev_err!(self.device(), "unable to set any I/O queues\n");
            return Err(ENOMEM);
        }
        let nr = (nr as u32).min(self.queues.len() as u32 - 1);
        self.ctrl.queue_count = nr + 1;
        dev_info!(self.device(), "creating {} I/O queues (rnvme_tcp)\n", nr);
        // SAFETY: `io_queues` has HCTX_MAX_TYPES entries.
        unsafe { nb::nvmf_set_io_queues(self.ctrl.opts, nr, self.io_queues.as_mut_ptr()) };
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

    fn stop_io_queues(&mut self) {
        for q in 1..self.ctrl.queue_count as usize {
            self.stop_queue(q);
        }
    }

    fn free_io_queues(&mut self) {
        for q in 1..self.ctrl.queue_count as usize {
            self.free_queue(q);
        }
    }

    fn configure_io_queues(&mut self, new: bool) -> Result {
        let n = self.nctrl();
        self.alloc_io_queues()?;
        // SAFETY: the options live as long as the controller.
        let nr_maps = if unsafe { (*self.ctrl.opts).nr_poll_queues } > 0 { kb::hctx_type_HCTX_MAX_TYPES } else { 2 };
        if new {
            // SAFETY: the tag set lives in the controller; the ops are static.
            let ret = unsafe {
                nb::nvme_alloc_io_tag_set(n, &raw mut self.tag_set, &MQ_OPS, nr_maps, core::mem::size_of::<TcpRequest>() as u32)
            };
            if ret != 0 {
                self.free_io_queues();
                return Err(errno_of(ret));
            }
        }
        let nr_queues = (self.tag_set.nr_hw_queues + 1).min(self.ctrl.queue_count);
        let mut r = Ok(());
        for qid in 1..nr_queues as u16 {
            if let Err(e) = self.start_queue(qid) {
                for q in 1..qid {
                    self.stop_queue(usize::from(q));
                }
                r = Err(e);
                break;
            }
        }
        if r.is_ok() && !new {
            // SAFETY: the controller and its tag set are initialised.
            unsafe {
                nb::nvme_start_freeze(n);
                nb::nvme_unquiesce_io_queues(n);
                if nb::nvme_wait_freeze_timeout(n) == 0 {
                    nb::nvme_unfreeze(n);
                    r = Err(ENODEV);
                } else {
                    kb::blk_mq_update_nr_hw_queues(self.ctrl.tagset, self.ctrl.queue_count as c_int - 1);
                    nb::nvme_unfreeze(n);
                }
            }
            if r.is_err() {
                self.stop_io_queues();
            }
        }
        if r.is_err() {
            // SAFETY: as above.
            unsafe { nb::nvme_cancel_tagset(n) };
            if new {
                // SAFETY: allocated above.
                unsafe { nb::nvme_remove_io_tag_set(n) };
            }
            self.free_io_queues();
        }
        r
    }

    /// C: `nvme_tcp_setup_ctrl`.
    fn setup(&mut self, new: bool) -> Result {
        let n = self.nctrl();
        self.configure_admin_queue(new)?;
        let r = (|| -> Result {
            if self.ctrl.icdoff != 0 {
                dev_err!(self.device(), "icdoff is not supported!\n");
                return Err(EOPNOTSUPP);
            }
            if self.ctrl.sqsize as u32 + 1 > self.ctrl.maxcmd as u32 {
                dev_warn!(self.device(), "sqsize {} > ctrl maxcmd {}, clamping down\n", self.ctrl.sqsize + 1, self.ctrl.maxcmd);
                self.ctrl.sqsize = self.ctrl.maxcmd - 1;
            }
            if self.ctrl.queue_count > 1 {
                self.configure_io_queues(new)?;
            }
            // SAFETY: the controller is set up.
            if !unsafe { nb::nvme_change_ctrl_state(n, nb::nvme_ctrl_state_NVME_CTRL_LIVE) } {
                if self.ctrl.queue_count > 1 {
                    self.teardown_io_queues(new);
                }
                return Err(EINVAL);
            }
            // SAFETY: as above.
            unsafe { nb::nvme_start_ctrl(n) };
            Ok(())
        })();
        if r.is_err() {
            // SAFETY: as above.
            unsafe { nb::nvme_stop_keep_alive(n) };
            self.teardown_admin_queue(new);
        }
        r
    }

    fn teardown_io_queues(&mut self, remove: bool) {
        if self.ctrl.queue_count <= 1 || self.ctrl.tagset.is_null() {
            return;
        }
        let n = self.nctrl();
        // SAFETY: the controller and its I/O tag set are initialised.
        unsafe {
            nb::nvme_quiesce_io_queues(n);
            nb::nvme_sync_io_queues(n);
        }
        self.stop_io_queues();
        // SAFETY: as above.
        unsafe {
            nb::nvme_cancel_tagset(n);
            if remove {
                nb::nvme_unquiesce_io_queues(n);
            }
        }
        self.free_io_queues();
        if remove {
            // SAFETY: as above; removed once.
            unsafe { nb::nvme_remove_io_tag_set(n) };
        }
    }

    fn teardown_admin_queue(&mut self, remove: bool) {
        if self.ctrl.admin_q.is_null() {
            return;
        }
        let n = self.nctrl();
        // SAFETY: the admin tag set is initialised.
        unsafe {
            nb::nvme_quiesce_admin_queue(n);
            kb::blk_sync_queue(self.ctrl.admin_q.cast());
        }
        self.stop_queue(0);
        // SAFETY: as above.
        unsafe {
            nb::nvme_cancel_admin_tagset(n);
            if remove {
                nb::nvme_unquiesce_admin_queue(n);
            }
        }
        self.free_queue(0);
        if remove {
            // SAFETY: as above; removed once.
            unsafe { nb::nvme_remove_admin_tag_set(n) };
        }
    }

    /// C: `nvme_tcp_teardown_ctrl`.
    fn teardown(&mut self, shutdown: bool) {
        let n = self.nctrl();
        self.teardown_io_queues(shutdown);
        if !self.ctrl.admin_q.is_null() {
            // SAFETY: the admin tag set is initialised.
            unsafe {
                nb::nvme_quiesce_admin_queue(n);
                nb::nvme_disable_ctrl(n, shutdown);
            }
        }
        self.teardown_admin_queue(shutdown);
    }

    /// Starts error recovery (any context): the controller goes to
    /// RESETTING and `err_work` tears it down and reconnects once.
    pub(crate) fn error_recovery(&self) {
        let n = (&raw const self.ctrl).cast_mut();
        // SAFETY: `n` is our initialised controller.
        if !unsafe { nb::nvme_change_ctrl_state(n, nb::nvme_ctrl_state_NVME_CTRL_RESETTING) } {
            return;
        }
        dev_warn!(self.device(), "starting error recovery\n");
        // SAFETY: `err_work` was initialised at creation.
        unsafe { nb::rnvme_queue_work((&raw const self.err_work).cast_mut().cast(), kb::NR_CPUS as c_int) };
    }

    /// During set-up (CONNECTING), cancels the commands of queue `qid`'s
    /// tag set so the waiting set-up step fails at once.
    pub(crate) fn fail_setup_requests(&self, qid: u16) {
        if self.ctrl.state != nb::nvme_ctrl_state_NVME_CTRL_CONNECTING {
            return;
        }
        let n = (&raw const self.ctrl).cast_mut();
        // SAFETY: our initialised controller; only set-up commands are in
        // flight while connecting, and nvme_cancel_request() completes each
        // once.
        unsafe {
            if qid == 0 {
                nb::nvme_cancel_admin_tagset(n);
            } else if !self.ctrl.tagset.is_null() {
                nb::nvme_cancel_tagset(n);
            }
        }
    }

    /// After a failed connection (C: `nvme_tcp_reconnect_or_remove`):
    /// another attempt in `reconnect_delay` seconds while `ctrl_loss_tmo`
    /// allows, else the controller is removed.
    fn reconnect_or_remove(&mut self, status: c_int) {
        let n = self.nctrl();
        if self.ctrl.state != nb::nvme_ctrl_state_NVME_CTRL_CONNECTING {
            return;
        }
        // SAFETY: our initialised controller; the options live as long.
        let delay = unsafe { (*self.ctrl.opts).reconnect_delay };
        // SAFETY: as above.
        if unsafe { nb::nvmf_should_reconnect(n, status) } {
            dev_info!(self.device(), "Reconnecting in {} seconds...\n", delay);
            // SAFETY: `connect_work` was initialised at creation.
            unsafe { nb::rnvme_queue_delayed_work((&raw mut self.connect_work).cast(), delay) };
        } else {
            dev_info!(self.device(), "Removing controller ({})...\n", status);
            // SAFETY: as above.
            unsafe { nb::nvme_delete_ctrl(n) };
        }
    }
}

/// Opens queue `qid`'s TCP connection and runs the ICReq/ICResp exchange.
fn connect_queue(dev: &Device, qid: u16, c: &TcpCtrl, opts: &CtrlOptions) -> Result<(TcpSocket, IcResp)> {
    let digests = c.digests;
    let sock = TcpSocket::connect(&c.addr, c.src_addr.as_ref(), opts.host_iface(), opts.tos()).inspect_err(|e| {
        dev_err!(dev, "rnvme_tcp: queue {}: failed to connect socket: {}\n", qid, e.to_errno());
    })?;
    sock.send_all(&pdu::encode_icreq(digests)).inspect_err(|e| {
        dev_err!(dev, "rnvme_tcp: queue {}: failed to send icreq: {}\n", qid, e.to_errno());
    })?;
    let mut buf = [0u8; pdu::ICRESP_LEN];
    sock.recv_exact_setup(&mut buf).inspect_err(|e| {
        dev_err!(dev, "rnvme_tcp: queue {}: failed to receive icresp: {}\n", qid, e.to_errno());
    })?;
    let icresp = pdu::parse_icresp(&buf, digests).map_err(|e| {
        dev_err!(dev, "rnvme_tcp: queue {}: {}\n", qid, Shown(e));
        Error::from_errno(-e.errno())
    })?;
    Ok((sock, icresp))
}

// ---- nvme-core callbacks ---------------------------------------------------

/// # Safety
/// Called by nvme-core with one of our controllers, once, at the last put.
unsafe extern "C" fn free_ctrl_cb(n: *mut nb::nvme_ctrl) {
    let c = TcpCtrl::from_nctrl(n);
    if c.created {
        CTRLS.lock().retain(|p| *p != n as usize);
        // SAFETY: after a successful create the options are ours to free.
        unsafe { nb::nvmf_free_options(c.ctrl.opts) };
    }
    // SAFETY: allocated with KBox::into_raw in `create`; last reference.
    drop(unsafe { KBox::from_raw(c as *mut TcpCtrl) });
    // SAFETY: the reference taken in `create`.
    unsafe { kb::module_put(THIS_MODULE.load(Ordering::Relaxed)) };
}

/// `nvmf_get_virt_boundary()`: fabrics have no virtual boundary.
unsafe extern "C" fn get_virt_boundary_cb(_n: *mut nb::nvme_ctrl, _is_admin: bool) -> c_ulong {
    0
}

/// # Safety
/// Called by nvme-core's async event work with one of our controllers,
/// one AER at a time.
unsafe extern "C" fn submit_async_event_cb(n: *mut nb::nvme_ctrl) {
    let c = TcpCtrl::from_nctrl(n);
    let q: *mut Queue = &mut c.queues[0];
    // SAFETY: queue 0 lives as long as the controller.
    let digests = unsafe { (*q).digests };
    let req = &mut c.async_req;
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
    req.curr_bio = null_mut();
    req.send = SendState::Cmd { off: 0 };
    c.aer_outstanding.store(true, Ordering::Release);
    // SAFETY: `q` is queue 0 of this controller.
    unsafe { (*q).queue_request(&mut c.async_req, true) };
}

/// Hands an AER completion to nvme-core; false when no AER is outstanding
/// (the command id is then unknown).
pub(crate) fn complete_async_event(c: &TcpCtrl, status: u16, result: u64) -> bool {
    if !c.aer_outstanding.swap(false, Ordering::AcqRel) {
        return false;
    }
    // SAFETY: our initialised controller.
    unsafe { nb::rnvme_complete_async_event((&raw const c.ctrl).cast_mut(), status, result) };
    true
}

/// # Safety
/// Called by nvme-core's delete work with one of our controllers.
unsafe extern "C" fn delete_ctrl_cb(n: *mut nb::nvme_ctrl) {
    let c = TcpCtrl::from_nctrl(n);
    // SAFETY: `err_work` was initialised at creation.
    unsafe { kb::flush_work(&raw mut c.err_work) };
    c.teardown(true);
}

/// # Safety
/// Called by nvme-core with one of our controllers.
unsafe extern "C" fn stop_ctrl_cb(n: *mut nb::nvme_ctrl) {
    let c = TcpCtrl::from_nctrl(n);
    // SAFETY: both work items were initialised at creation.
    unsafe {
        kb::flush_work(&raw mut c.err_work);
        kb::cancel_delayed_work_sync(&raw mut c.connect_work);
    }
}

/// Error recovery (C: `nvme_tcp_error_recovery_work`).
unsafe extern "C" fn err_work_fn(w: *mut kb::work_struct) {
    let off = core::mem::offset_of!(TcpCtrl, err_work);
    // SAFETY: `w` is the `err_work` of a live controller.
    let c = unsafe { &mut *w.cast::<u8>().sub(off).cast::<TcpCtrl>() };
    let n = c.nctrl();
    // SAFETY: our initialised controller.
    unsafe {
        nb::nvme_stop_keep_alive(n);
        kb::flush_work(&raw mut c.ctrl.async_event_work);
    }
    c.teardown_io_queues(false);
    if !c.ctrl.tagset.is_null() {
        // SAFETY: fail pending requests fast.
        unsafe { nb::nvme_unquiesce_io_queues(n) };
    }
    c.teardown_admin_queue(false);
    // SAFETY: as above.
    unsafe { nb::nvme_unquiesce_admin_queue(n) };
    // SAFETY: as above.
    if !unsafe { nb::nvme_change_ctrl_state(n, nb::nvme_ctrl_state_NVME_CTRL_CONNECTING) } {
        return;
    }
    c.reconnect_or_remove(0);
}

/// A delayed reconnect attempt (C: `nvme_tcp_reconnect_ctrl_work`).
unsafe extern "C" fn connect_work_fn(w: *mut kb::work_struct) {
    let off = core::mem::offset_of!(TcpCtrl, connect_work) + core::mem::offset_of!(kb::delayed_work, work);
    // SAFETY: `w` is the work of `connect_work` of a live controller.
    let c = unsafe { &mut *w.cast::<u8>().sub(off).cast::<TcpCtrl>() };
    c.ctrl.nr_reconnects += 1;
    // SAFETY: the options live as long as the controller.
    let max = unsafe { (*c.ctrl.opts).max_reconnects };
    match c.setup(false) {
        Ok(()) => {
            dev_info!(c.device(), "Successfully reconnected (attempt {}/{})\n", c.ctrl.nr_reconnects, max);
            c.ctrl.nr_reconnects = 0;
        }
        Err(e) => {
            dev_info!(c.device(), "Failed reconnect attempt {}/{}\n", c.ctrl.nr_reconnects, max);
            c.reconnect_or_remove(e.to_errno());
        }
    }
}

/// `nvme reset` (C: `nvme_reset_ctrl_work`).
unsafe extern "C" fn reset_work_fn(w: *mut kb::work_struct) {
    let off = core::mem::offset_of!(TcpCtrl, ctrl) + core::mem::offset_of!(nb::nvme_ctrl, reset_work);
    // SAFETY: `w` is the `reset_work` of one of our live controllers.
    let c = unsafe { &mut *w.cast::<u8>().sub(off).cast::<TcpCtrl>() };
    let n = c.nctrl();
    // SAFETY: our initialised controller.
    unsafe { nb::nvme_stop_ctrl(n) };
    c.teardown(false);
    // SAFETY: as above.
    if !unsafe { nb::nvme_change_ctrl_state(n, nb::nvme_ctrl_state_NVME_CTRL_CONNECTING) } {
        return;
    }
    match c.setup(false) {
        Ok(()) => dev_info!(c.device(), "Successfully reconnected\n"),
        Err(e) => {
            c.ctrl.nr_reconnects += 1;
            dev_warn!(c.device(), "failed to reconnect after reset: {}\n", e.to_errno());
            c.reconnect_or_remove(e.to_errno());
        }
    }
}

/// The CPU-to-hw-context map of the map type hardware context
/// `hctx_idx` belongs to (default, then read, then poll queues), one
/// entry per CPU id; `None` before the tag set has maps.
fn mq_map_of<'a>(set: &'a kb::blk_mq_tag_set, io_queues: &[u32], hctx_idx: c_uint) -> Option<&'a [c_uint]> {
    let d = *io_queues.get(kb::hctx_type_HCTX_TYPE_DEFAULT as usize)?;
    let r = *io_queues.get(kb::hctx_type_HCTX_TYPE_READ as usize)?;
    let ty = if hctx_idx < d {
        kb::hctx_type_HCTX_TYPE_DEFAULT
    } else if hctx_idx < d + r {
        kb::hctx_type_HCTX_TYPE_READ
    } else {
        kb::hctx_type_HCTX_TYPE_POLL
    };
    if ty >= set.nr_maps {
        return None;
    }
    let map = set.map.get(ty as usize)?.mq_map;
    if map.is_null() {
        return None;
    }
    // SAFETY: blk-mq allocates `mq_map` with nr_cpu_ids entries for
    // every map of a tag set and keeps it while the tag set lives.
    Some(unsafe { core::slice::from_raw_parts(map, nb::rnvme_nr_cpu_ids() as usize) })
}

// ---- blk-mq callbacks ------------------------------------------------------

fn req_of(rq: *mut kb::request) -> &'static mut TcpRequest {
    // SAFETY: every request of our tag sets carries a `TcpRequest` PDU.
    unsafe { &mut *kb::blk_mq_rq_to_pdu(rq).cast::<TcpRequest>() }
}

/// # Safety
/// Called by blk-mq for a tag set of ours.
unsafe extern "C" fn init_request_cb(
    set: *mut kb::blk_mq_tag_set,
    rq: *mut kb::request,
    hctx_idx: c_uint,
    _numa_node: c_int,
) -> c_int {
    // SAFETY: nvme-core sets `driver_data` to the nvme_ctrl.
    let c = TcpCtrl::from_nctrl(unsafe { (*set).driver_data }.cast());
    let qidx = if core::ptr::eq(set, &raw mut c.tag_set) { hctx_idx as usize + 1 } else { 0 };
    let Some(q) = c.queues.get_mut(qidx) else { return -(kb::EINVAL as c_int) };
    let qp: *mut Queue = q;
    // SAFETY: blk-mq hands over the request's PDU (`cmd_size` bytes,
    // sized and aligned for a `TcpRequest`), which holds no value yet and
    // never moves.
    let req = unsafe {
        let pdu = kb::blk_mq_rq_to_pdu(rq).cast::<TcpRequest>();
        core::ptr::write(pdu, TcpRequest::new(qp, &raw mut c.ctrl));
        &mut *pdu
    };
    req.bind_sqe();
    0
}

/// # Safety
/// Called by blk-mq for a request of ours whose `init_request` succeeded,
/// when its tag set goes away.
unsafe extern "C" fn exit_request_cb(_set: *mut kb::blk_mq_tag_set, rq: *mut kb::request, _hctx_idx: c_uint) {
    // Ends the life of the value init_request wrote (as the kernel's Rust
    // blk-mq does for request data). Nothing is allocated per request: the
    // capsule and H2C header live in the PDU itself, where the C driver
    // page-frag-allocates them in init_request and frees them here.
    // SAFETY: the PDU holds the `TcpRequest` init_request wrote; blk-mq
    // never uses it again.
    unsafe { core::ptr::drop_in_place(kb::blk_mq_rq_to_pdu(rq).cast::<TcpRequest>()) };
}

/// # Safety
/// Called by blk-mq for the I/O tag set.
unsafe extern "C" fn init_hctx_cb(hctx: *mut kb::blk_mq_hw_ctx, data: *mut c_void, idx: c_uint) -> c_int {
    let c = TcpCtrl::from_nctrl(data.cast());
    let Some(q) = c.queues.get_mut(idx as usize + 1) else { return -(kb::EINVAL as c_int) };
    // SAFETY: `hctx` is being initialised by blk-mq.
    unsafe { (*hctx).driver_data = (q as *mut Queue).cast() };
    0
}

/// # Safety
/// Called by blk-mq for the admin tag set.
unsafe extern "C" fn init_admin_hctx_cb(hctx: *mut kb::blk_mq_hw_ctx, data: *mut c_void, _idx: c_uint) -> c_int {
    let c = TcpCtrl::from_nctrl(data.cast());
    // SAFETY: `hctx` is being initialised by blk-mq; queue 0 always exists.
    unsafe { (*hctx).driver_data = (&raw mut c.queues[0]).cast() };
    0
}

/// # Safety
/// Called by blk-mq with a started hw context of ours and a request.
unsafe extern "C" fn queue_rq_cb(hctx: *mut kb::blk_mq_hw_ctx, bd: *const kb::blk_mq_queue_data) -> kb::blk_status_t {
    // SAFETY: `driver_data` was set in init_hctx; `bd` is valid.
    let (q, rq) = unsafe { (&mut *(*hctx).driver_data.cast::<Queue>(), (*bd).rq) };
    let live = q.live.load(Ordering::Acquire);
    // SAFETY: `q.ctrl` is our controller; the request is valid.
    let ready = unsafe { nb::rnvme_nvme_check_ready(&raw mut (*q.ctrl).ctrl, rq.cast(), live) };
    if !ready {
        // SAFETY: as above.
        return unsafe { nb::nvme_fail_nonready_command(&raw mut (*q.ctrl).ctrl, rq.cast()) };
    }
    // SAFETY: as above; fills the SQE through `nvme_req(rq)->cmd`.
    let ret = unsafe { nb::rnvme_setup_cmd(hctx.cast(), rq.cast()) };
    if ret != 0 {
        return BLK_STS_IOERR;
    }
    let req = req_of(rq);
    let digests = q.digests;
    // SAFETY: the request is valid.
    let (len, write) = unsafe { (nb::rnvme_rq_payload_bytes(rq.cast()), nb::rnvme_rq_is_write(rq.cast())) };
    req.data_len = len;
    req.write = write;
    req.data_sent = 0;
    req.data_recvd = 0;
    req.status = 0;
    req.r2t_left = 0;
    req.h2c_left = 0;
    req.send = SendState::Cmd { off: 0 };
    // SAFETY: the request is valid.
    req.curr_bio = unsafe { (*rq).bio };
    if !req.curr_bio.is_null() && len > 0 {
        let dir = if write { kb::ITER_SOURCE } else { kb::ITER_DEST };
        // SAFETY: `curr_bio` is the request's first bio.
        unsafe { nb::rnvme_rq_init_iter((&raw mut req.iter).cast(), rq.cast(), req.curr_bio.cast(), dir) };
    }
    let inline_max = q.cmnd_capsule_len.saturating_sub(pdu::SQE_LEN as u32);
    req.inline_len = if write && len > 0 && len <= inline_max { len } else { 0 };
    let place = if len == 0 {
        DataPlacement::None
    } else if req.inline_len > 0 {
        // SAFETY: `q.ctrl` is our controller.
        DataPlacement::InCapsule { len, icdoff: unsafe { (*q.ctrl).ctrl.icdoff } as u32 }
    } else {
        DataPlacement::Transport { len }
    };
    let Some(sqe) = req.sqe() else { return BLK_STS_IOERR };
    pdu::set_sgl(sqe, place);
    let inline_len = req.inline_len;
    req.seal_cmd(digests, inline_len);
    // SAFETY: the request is valid and set up.
    unsafe { nb::rnvme_start_request(rq.cast()) };
    // SAFETY: `bd` is valid for the call.
    let last = unsafe { (*bd).last };
    q.queue_request(req, last);
    kb::BLK_STS_OK as kb::blk_status_t
}

/// # Safety
/// Called by blk-mq with a started hw context of ours, after a batch of
/// `queue_rq` calls whose last one did not see `last`.
unsafe extern "C" fn commit_rqs_cb(hctx: *mut kb::blk_mq_hw_ctx) {
    // SAFETY: `driver_data` was set in init_hctx to one of our queues.
    let q = unsafe { &mut *(*hctx).driver_data.cast::<Queue>() };
    q.kick();
}

/// # Safety
/// Called by blk-mq for a hw context of the poll map.
unsafe extern "C" fn poll_cb(hctx: *mut kb::blk_mq_hw_ctx, _iob: *mut kb::io_comp_batch) -> c_int {
    // SAFETY: `driver_data` was set in init_hctx to one of our queues.
    let q = unsafe { &mut *(*hctx).driver_data.cast::<Queue>() };
    q.poll()
}

/// # Safety
/// Called by blk-mq to complete a request of ours.
unsafe extern "C" fn complete_cb(rq: *mut kb::request) {
    // SAFETY: the request is being completed.
    unsafe { nb::nvme_complete_rq(rq.cast()) };
}

/// # Safety
/// Called by blk-mq for a timed-out request of ours.
unsafe extern "C" fn timeout_cb(rq: *mut kb::request) -> kb::blk_eh_timer_return {
    let req = req_of(rq);
    // SAFETY: `queue` was set in init_request.
    let q = unsafe { &mut *req.queue };
    // SAFETY: the queue's controller outlives its requests.
    let c = unsafe { &mut *q.ctrl };
    let opcode = req.cmd.0[pdu::HDR_LEN];
    dev_warn!(c.device(), "queue {}: request timeout, opcode {:#x}, state {}\n", q.qid, opcode, c.ctrl.state);
    if c.ctrl.state != nb::nvme_ctrl_state_NVME_CTRL_LIVE {
        // Not live (connecting, deleting): fail the request now so set-up
        // or teardown can go on.
        q.stop();
        // SAFETY: the request is in flight.
        unsafe { nb::rnvme_complete_timed_out_request(rq.cast()) };
        return kb::blk_eh_timer_return_BLK_EH_DONE;
    }
    c.error_recovery();
    kb::blk_eh_timer_return_BLK_EH_RESET_TIMER
}

/// # Safety
/// Called by blk-mq for the I/O tag set.
unsafe extern "C" fn map_queues_cb(set: *mut kb::blk_mq_tag_set) {
    // SAFETY: nvme-core sets `driver_data` to the nvme_ctrl.
    let c = TcpCtrl::from_nctrl(unsafe { (*set).driver_data }.cast());
    // SAFETY: `io_queues` was filled by nvmf_set_io_queues.
    unsafe { nb::nvmf_map_queues(set.cast(), &raw mut c.ctrl, c.io_queues.as_mut_ptr()) };
}

