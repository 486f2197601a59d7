// SPDX-License-Identifier: GPL-2.0
//! nvme-fabrics transport registration and connect options.
//!
//! C side: `drivers/nvme/host/fabrics.h` (`struct nvmf_transport_ops`,
//! `struct nvmf_ctrl_options`, `nvmf_register_transport()`).

use super::bindings as nb;
use core::marker::PhantomData;
use kernel::{device::Device, error::to_result, prelude::*, types::Opaque};

/// An nvme-fabrics transport: what `nvme connect -t NAME` reaches.
pub(crate) trait Transport {
    /// The transport name (`-t`).
    const NAME: &'static CStr;
    /// Options a connect must give (`NVMF_OPT_*` bits).
    const REQUIRED_OPTS: u32;
    /// Options a connect may give; nvme-fabrics rejects the others by name.
    const ALLOWED_OPTS: u32;
    /// The port a connect without `trsvcid=` goes to. It is written into
    /// the options before `create_ctrl` sees them, as the C transports do,
    /// so nvme-fabrics' option matching (`nvmf_ip_options_match()`, which
    /// compares `trsvcid` with `strcmp`) never meets a NULL port.
    const DEFAULT_TRSVCID: &'static CStr;
    /// Creates a controller for a connect request.
    fn create_ctrl(dev: &Device, opts: &CtrlOptions) -> Result<CtrlHandle>;
}

/// A controller handed to nvme-fabrics by a successful `create_ctrl`.
///
/// # Invariants
///
/// `0` points to an `nvme_ctrl` that nvme-core has initialised and owns.
pub(crate) struct CtrlHandle(core::ptr::NonNull<nb::nvme_ctrl>);

impl CtrlHandle {
    /// # Safety
    ///
    /// `ctrl` is non-null and points to a controller nvme-core initialised
    /// (`nvme_init_ctrl()` succeeded) and that is now handed to nvme-fabrics.
    pub(crate) unsafe fn new(ctrl: *mut nb::nvme_ctrl) -> Self {
        // SAFETY: non-null by the caller's guarantee.
        Self(unsafe { core::ptr::NonNull::new_unchecked(ctrl) })
    }
}

/// The `NVMF_OPT_*` bits, as `u32`.
pub(crate) mod opt {
    use super::nb;
    pub(crate) const TRADDR: u32 = nb::NVMF_OPT_TRADDR;
    pub(crate) const TRSVCID: u32 = nb::NVMF_OPT_TRSVCID;
    pub(crate) const CTRL_LOSS_TMO: u32 = nb::NVMF_OPT_CTRL_LOSS_TMO;
    pub(crate) const HDR_DIGEST: u32 = nb::NVMF_OPT_HDR_DIGEST;
    pub(crate) const DATA_DIGEST: u32 = nb::NVMF_OPT_DATA_DIGEST;
    pub(crate) const NR_WRITE_QUEUES: u32 = nb::NVMF_OPT_NR_WRITE_QUEUES;
    pub(crate) const NR_POLL_QUEUES: u32 = nb::NVMF_OPT_NR_POLL_QUEUES;
    pub(crate) const HOST_IFACE: u32 = nb::NVMF_OPT_HOST_IFACE;
    pub(crate) const HOST_TRADDR: u32 = nb::NVMF_OPT_HOST_TRADDR;
    pub(crate) const TOS: u32 = nb::NVMF_OPT_TOS;
    pub(crate) const RECONNECT_DELAY: u32 = nb::NVMF_OPT_RECONNECT_DELAY;
    pub(crate) const FAIL_FAST_TMO: u32 = nb::NVMF_OPT_FAIL_FAST_TMO;
    pub(crate) const TLS: u32 = nb::NVMF_OPT_TLS;
    pub(crate) const KEYRING: u32 = nb::NVMF_OPT_KEYRING;
    pub(crate) const TLS_KEY: u32 = nb::NVMF_OPT_TLS_KEY;
    pub(crate) const CONCAT: u32 = nb::NVMF_OPT_CONCAT;
}

/// Connect options nvme-fabrics parsed (`struct nvmf_ctrl_options`).
///
/// # Invariants
///
/// Wraps a valid `nvmf_ctrl_options` whose string fields are NULL or
/// NUL-terminated, alive and unchanged for as long as it is borrowed.
#[repr(transparent)]
pub(crate) struct CtrlOptions(Opaque<nb::nvmf_ctrl_options>);

impl CtrlOptions {
    /// # Safety
    ///
    /// `ptr` points to a valid `nvmf_ctrl_options` that outlives `'a` and
    /// is not changed during `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut nb::nvmf_ctrl_options) -> &'a Self {
        // SAFETY: `CtrlOptions` is `repr(transparent)` over the C struct, and
        // the caller guarantees validity for `'a`.
        unsafe { &*ptr.cast::<Self>() }
    }

    fn raw(&self) -> &nb::nvmf_ctrl_options {
        // SAFETY: by the type invariant the struct is valid and unchanged
        // while `self` is borrowed.
        unsafe { &*self.0.get() }
    }

    fn string(p: *mut c_char) -> Option<&'static CStr> {
        if p.is_null() {
            return None;
        }
        // SAFETY: by the type invariant non-NULL option strings are
        // NUL-terminated. The 'static is narrowed by the callers, which only
        // hand it out tied to `&self`.
        Some(unsafe { CStr::from_char_ptr(p) })
    }

    /// `nvmf_free_options()`.
    ///
    /// # Safety
    ///
    /// The caller owns the options (a controller's, in its `free_ctrl`,
    /// after a successful create); nothing uses them afterwards.
    pub(crate) unsafe fn free(&self) {
        // SAFETY: owned by the caller, freed once.
        unsafe { nb::nvmf_free_options(self.as_raw()) };
    }

    /// The C struct, for nvme-core calls that take it.
    pub(crate) fn as_raw(&self) -> *mut nb::nvmf_ctrl_options {
        self.0.get()
    }

    /// `traddr=`.
    pub(crate) fn traddr(&self) -> Option<&CStr> {
        Self::string(self.raw().traddr)
    }
    /// `trsvcid=`.
    pub(crate) fn trsvcid(&self) -> Option<&CStr> {
        Self::string(self.raw().trsvcid)
    }
    /// `host_traddr=`.
    pub(crate) fn host_traddr(&self) -> Option<&CStr> {
        Self::string(self.raw().host_traddr)
    }
    /// `host_iface=`.
    pub(crate) fn host_iface(&self) -> Option<&CStr> {
        Self::string(self.raw().host_iface)
    }
    /// `tos=`, -1 when not given.
    pub(crate) fn tos(&self) -> c_int {
        self.raw().tos
    }
    /// `nqn=`: the subsystem NQN.
    pub(crate) fn subsysnqn(&self) -> Option<&CStr> {
        Self::string(self.raw().subsysnqn)
    }
    /// `nr_io_queues=` (default: one per online CPU).
    pub(crate) fn nr_io_queues(&self) -> u32 {
        self.raw().nr_io_queues
    }
    /// `nr_write_queues=`.
    pub(crate) fn nr_write_queues(&self) -> u32 {
        self.raw().nr_write_queues
    }
    /// `nr_poll_queues=`.
    pub(crate) fn nr_poll_queues(&self) -> u32 {
        self.raw().nr_poll_queues
    }
    /// `queue_size=` (entries of each I/O queue).
    pub(crate) fn queue_size(&self) -> usize {
        self.raw().queue_size
    }
    /// `keep_alive_tmo=` in seconds.
    pub(crate) fn kato(&self) -> u32 {
        self.raw().kato
    }
    /// `hdr_digest`.
    pub(crate) fn hdr_digest(&self) -> bool {
        self.raw().hdr_digest
    }
    /// `data_digest`.
    pub(crate) fn data_digest(&self) -> bool {
        self.raw().data_digest
    }
    /// `duplicate_connect`.
    pub(crate) fn duplicate_connect(&self) -> bool {
        self.raw().duplicate_connect
    }
    /// `reconnect_delay=` in seconds.
    pub(crate) fn reconnect_delay(&self) -> u32 {
        self.raw().reconnect_delay
    }
    /// Reconnect attempts `ctrl_loss_tmo` allows (-1: forever).
    pub(crate) fn max_reconnects(&self) -> c_int {
        self.raw().max_reconnects
    }
    /// `nvmf_nr_io_queues()`: all I/O queues asked for (default, write
    /// and poll), capped by the CPUs.
    pub(crate) fn nr_io_queues_total(&self) -> c_int {
        // SAFETY: valid options (type invariant); the helper only reads.
        unsafe { nb::rnvme_nvmf_nr_io_queues(self.as_raw()) as c_int }
    }
    /// `nvmf_set_io_queues()`: splits `nr` granted I/O queues into the
    /// per-type counts of `io_queues`.
    pub(crate) fn set_io_queues(&self, nr: u32, io_queues: &mut [u32; kernel::bindings::hctx_type_HCTX_MAX_TYPES as usize]) {
        // SAFETY: valid options (type invariant), only read; `io_queues`
        // has the HCTX_MAX_TYPES entries the function writes.
        unsafe { nb::nvmf_set_io_queues(self.as_raw(), nr, io_queues.as_mut_ptr()) };
    }
}

/// A registered nvme-fabrics transport; unregistered when dropped.
///
/// # Invariants
///
/// `ops` is registered with nvme-fabrics from the end of `register()` until
/// `drop()`; it is pinned, so its address does not change meanwhile.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: Transport> {
    #[pin]
    ops: Opaque<nb::nvmf_transport_ops>,
    _t: PhantomData<T>,
}

// SAFETY: once registered, `ops` is only read by nvme-fabrics under its own
// lock; Rust code never touches it again until `drop()`.
unsafe impl<T: Transport> Sync for Registration<T> {}
// SAFETY: as for `Sync`; nothing in it is bound to a thread.
unsafe impl<T: Transport> Send for Registration<T> {}

impl<T: Transport> Registration<T> {
    /// Registers transport `T`, owned by `module`.
    pub(crate) fn register(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            ops <- Opaque::try_ffi_init(move |slot: *mut nb::nvmf_transport_ops| {
                let ops = nb::nvmf_transport_ops {
                    module: module.as_ptr(),
                    name: T::NAME.as_char_ptr(),
                    required_opts: T::REQUIRED_OPTS as c_int,
                    allowed_opts: T::ALLOWED_OPTS as c_int,
                    create_ctrl: Some(create_ctrl_callback::<T>),
                    ..Default::default()
                };
                // SAFETY: `slot` is valid for writes (pin-init contract).
                unsafe { slot.write(ops) };
                // SAFETY: `slot` is initialised and pinned; `drop()`
                // unregisters it before the memory goes away.
                to_result(unsafe { nb::nvmf_register_transport(slot) })
            }),
            _t: PhantomData,
        })
    }
}

#[pinned_drop]
impl<T: Transport> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: by the type invariant `ops` is registered.
        unsafe { nb::nvmf_unregister_transport(self.ops.get()) };
    }
}

/// `nvmf_transport_ops.create_ctrl`.
///
/// # Safety
///
/// Called by `nvmf_create_ctrl()` with the fabrics device and the options it
/// parsed, both valid for the duration of the call.
unsafe extern "C" fn create_ctrl_callback<T: Transport>(
    dev: *mut kernel::bindings::device,
    opts: *mut nb::nvmf_ctrl_options,
) -> *mut nb::nvme_ctrl {
    // SAFETY: the caller passes a valid device for the call's duration.
    let dev: &Device = unsafe { Device::from_raw(dev) };
    // SAFETY: the caller passes parsed options, which are ours to change
    // for the call's duration (nothing else reads them meanwhile).
    if let Err(e) = unsafe { set_default_trsvcid(opts, T::DEFAULT_TRSVCID) } {
        return e.to_ptr();
    }
    // SAFETY: the caller passes parsed options, unchanged from here on
    // during the call.
    let opts = unsafe { CtrlOptions::from_raw(opts) };
    match T::create_ctrl(dev, opts) {
        Ok(ctrl) => ctrl.0.as_ptr(),
        Err(e) => e.to_ptr(),
    }
}

/// Gives options without `trsvcid=` the transport's default port (C:
/// `nvme_tcp_alloc_ctrl()`): a copy nvme-fabrics frees with the options
/// (`nvmf_free_options()`), and the `TRSVCID` bit in the mask, as if the
/// user had given it.
///
/// # Safety
///
/// `opts` points to valid options that nobody else reads or changes
/// during the call.
unsafe fn set_default_trsvcid(opts: *mut nb::nvmf_ctrl_options, port: &CStr) -> Result {
    // SAFETY: valid and ours for the call (caller).
    let o = unsafe { &mut *opts };
    if o.mask & opt::TRSVCID != 0 && !o.trsvcid.is_null() {
        return Ok(());
    }
    // SAFETY: `port` is NUL-terminated.
    let copy = unsafe { kernel::bindings::kstrdup(port.as_char_ptr(), kernel::bindings::GFP_KERNEL) };
    if copy.is_null() {
        return Err(ENOMEM);
    }
    // A NULL `trsvcid` with the bit clear: nothing to free.
    o.trsvcid = copy;
    o.mask |= opt::TRSVCID;
    Ok(())
}
