// SPDX-License-Identifier: GPL-2.0
//! The transport nvme-fabrics knows as `tcp`: option checks and
//! controller creation, the list of our controllers (duplicate check,
//! debugfs, module exit), and the controllers' nvme-core ops.

use super::TcpCtrl;
use crate::sys::bindings as nb;
use crate::sys::fabrics::{opt, CtrlHandle, CtrlOptions, Transport};
use crate::sys::nvme::{self, CtrlOpsTable, NvmeCtrl};
use crate::sys::socket::{NetNs, SockAddr};
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::{bindings as kb, device::Device, prelude::*};

kernel::sync::global_lock! {
    // SAFETY: initialised by `init_ops()` in module init, before any use.
    pub(super) unsafe(uninit) static CTRLS: Mutex<KVec<usize>> = KVec::new();
}

/// Controllers allocated and not yet freed (`free_ctrl`): module exit
/// waits for none to be left, since nvme-core calls back into this module
/// until a controller's last reference goes.
pub(super) static LIVE_CTRLS: AtomicUsize = AtomicUsize::new(0);

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
            | opt::FAIL_FAST_TMO | opt::TLS | opt::KEYRING | opt::TLS_KEY | opt::CONCAT;

    /// `NVME_TCP_DISC_PORT`.
    const DEFAULT_TRSVCID: &'static CStr = c"4420";

    fn create_ctrl(dev: &Device, opts: &CtrlOptions) -> Result<CtrlHandle> {
        let traddr = opts.traddr().ok_or(EINVAL)?;
        // Never NULL: DEFAULT_TRSVCID is set when the connect gave none.
        let trsvcid = opts.trsvcid().ok_or(EINVAL)?;
        // The caller's namespace, for every socket of the controller's life
        // (C: nvme_tcp_alloc_queue creates each in current's, which for a
        // reset or reconnect is a kworker's, init_net).
        let net = NetNs::current()?;
        // host_iface is checked once, here, in that namespace (C:
        // nvme_tcp_alloc_ctrl); each socket then binds to it.
        if let Some(iface) = opts.host_iface() {
            if !net.has_device(iface) {
                dev_err!(dev, "rnvme_tcp: invalid interface passed: {}\n", iface);
                return Err(ENODEV);
            }
        }
        let addr = SockAddr::parse(&net, traddr, trsvcid).inspect_err(|e| {
            dev_err!(dev, "rnvme_tcp: malformed address {}:{}: {}\n", traddr, trsvcid, e.to_errno());
        })?;
        let src = match opts.host_traddr() {
            Some(h) => Some(SockAddr::parse_host(&net, h).inspect_err(|e| {
                dev_err!(dev, "rnvme_tcp: malformed host_traddr {}: {}\n", h, e.to_errno());
            })?),
            None => None,
        };
        if !opts.duplicate_connect() && existing_controller(opts) {
            dev_err!(dev, "rnvme_tcp: a controller for {} at {}:{} exists (duplicate_connect not set)\n",
                opts.subsysnqn().unwrap_or(c"?"), traddr, trsvcid);
            return Err(EALREADY);
        }
        TcpCtrl::create(dev, opts, net, addr, src)
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
    // Every controller allocated and not yet freed, half-built ones too: a
    // test can tell nothing is left behind.
    writeln!(f, "live_ctrls {}", LIVE_CTRLS.load(Ordering::Relaxed))
}


/// The controllers' `nvme_ctrl_ops`, filled in at module load.
pub(super) static CTRL_OPS: CtrlOpsTable<TcpCtrl> = CtrlOpsTable::new();

/// The controllers of the module, as it goes (C: `nvme_tcp_cleanup_module`):
/// dropped after the transport is unregistered (no new controller can be
/// created), it deletes every controller left, waits for nvme-core's
/// deletions and for the last of them to be freed, then frees the list's
/// storage (statics are never dropped, and the buffer would outlive the
/// module: kmemleak found it, t21). Controllers do not pin the module: as
/// in C, unloading deletes them.
pub(crate) struct ControllersAtExit(());

impl Drop for ControllersAtExit {
    fn drop(&mut self) {
        {
            let list = CTRLS.lock();
            for &c in list.iter() {
                // SAFETY: controllers stay on the list until free_ctrl
                // removes them under this lock, so `c` is live; deleting
                // only queues nvme-core's delete work.
                unsafe { NvmeCtrl::from_raw(c as *mut nb::nvme_ctrl) }.delete();
            }
        }
        nvme::flush_deletions();
        // The last reference may be dropped a little later than the delete
        // work (an open sysfs file, a racing reset): the callbacks must find
        // the module until then.
        let mut waited = 0u32;
        while LIVE_CTRLS.load(Ordering::Acquire) != 0 {
            if waited % 10_000 == 9_999 {
                pr_warn!("rnvme_tcp: waiting for {} controllers to be freed\n", LIVE_CTRLS.load(Ordering::Relaxed));
            }
            // SAFETY: plain sleep in process context (module exit).
            unsafe { kb::msleep(1) };
            waited = waited.wrapping_add(1);
        }
        drop(core::mem::take(&mut *CTRLS.lock()));
    }
}

/// Fills in `CTRL_OPS`; called from module init before registration. The
/// module keeps the returned guard until the transport is unregistered.
pub(crate) fn init_ops(module: &'static ThisModule) -> ControllersAtExit {
    // SAFETY: called exactly once, from module init.
    unsafe { CTRLS.init() };
    // SAFETY: called once, from module init, before the transport is
    // registered: no controller exists yet.
    unsafe { CTRL_OPS.init(module) };
    ControllersAtExit(())
}
