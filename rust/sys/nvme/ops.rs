// SPDX-License-Identifier: GPL-2.0
//! The `nvme_ctrl_ops` nvme-core calls a transport's controllers through:
//! a safe trait ([`CtrlOperations`]) and its private table of
//! `unsafe extern "C"` callbacks ([`CtrlOpsTable`]).

use crate::sys::bindings as nb;
use core::marker::PhantomData;
use kernel::{bindings as kb, prelude::*};

/// What a fabrics transport provides to nvme-core for its controllers
/// (`struct nvme_ctrl_ops`; the register accessors are nvme-fabrics').
///
/// # Safety
///
/// Every `nvme_ctrl` initialised with [`CtrlOpsTable<Self>`]'s ops is the
/// first field of a `repr(C)` `Self` allocated with `KBox`, whose
/// ownership passes to nvme-core with `nvme_init_ctrl()`.
pub(crate) unsafe trait CtrlOperations: Sized {
    /// The transport name, as `-t` gives it.
    const NAME: &'static CStr;
    /// nvme-core dropped its last reference: the controller goes.
    fn free_ctrl(this: KBox<Self>);
    /// Sends an Asynchronous Event Request (one at a time).
    fn submit_async_event(this: &Self);
    /// Tears the controller down for deletion.
    fn delete_ctrl(this: &Self);
    /// Stops the controller's transport work before nvme-core stops it.
    fn stop_ctrl(this: &Self);
    /// The local address of the controller's admin connection, while it is
    /// live, for sysfs `address` (`src_addr=`).
    fn source_address(this: &Self) -> Option<kb::__kernel_sockaddr_storage>;
}

/// The `nvme_ctrl_ops` of `T`, filled in once at module load (they name
/// the module).
///
/// # Invariants
///
/// Written only by [`Self::init`], before any controller uses it.
pub(crate) struct CtrlOpsTable<T: CtrlOperations>(core::cell::UnsafeCell<nb::nvme_ctrl_ops>, PhantomData<T>);

// SAFETY: written once before any controller exists (invariant), then only
// read, by nvme-core.
unsafe impl<T: CtrlOperations> Sync for CtrlOpsTable<T> {}

impl<T: CtrlOperations> CtrlOpsTable<T> {
    /// Empty until [`Self::init`].
    pub(crate) const fn new() -> Self {
        // SAFETY: an all-zero `nvme_ctrl_ops` is valid (NULL pointers, no
        // callbacks).
        Self(core::cell::UnsafeCell::new(unsafe { core::mem::zeroed() }), PhantomData)
    }

    /// Fills in the ops for `module`.
    ///
    /// # Safety
    ///
    /// Called once, before any controller is created with these ops.
    pub(crate) unsafe fn init(&self, module: &'static ThisModule) {
        let ops = nb::nvme_ctrl_ops {
            name: T::NAME.as_char_ptr(),
            module: module.as_ptr(),
            flags: nb::NVME_F_FABRICS | nb::NVME_F_BLOCKING,
            reg_read32: Some(nb::nvmf_reg_read32),
            reg_read64: Some(nb::nvmf_reg_read64),
            reg_write32: Some(nb::nvmf_reg_write32),
            subsystem_reset: Some(nb::nvmf_subsystem_reset),
            free_ctrl: Some(Self::free_ctrl),
            submit_async_event: Some(Self::submit_async_event),
            delete_ctrl: Some(Self::delete_ctrl),
            stop_ctrl: Some(Self::stop_ctrl),
            get_address: Some(Self::get_address),
            get_virt_boundary: Some(Self::get_virt_boundary),
            ..Default::default()
        };
        // SAFETY: no controller exists yet (caller), so nothing reads it.
        unsafe { *self.0.get() = ops };
    }

    /// The ops, for `nvme_init_ctrl()`.
    pub(crate) fn as_raw(&self) -> *const nb::nvme_ctrl_ops {
        self.0.get()
    }

    /// # Safety
    ///
    /// `n` is a controller using these ops (trait contract) and `'a` ends
    /// before its `free_ctrl`.
    unsafe fn this<'a>(n: *mut nb::nvme_ctrl) -> &'a T {
        // SAFETY: `n` is the first field of a `repr(C)` `T`.
        unsafe { &*n.cast::<T>() }
    }

    /// # Safety
    ///
    /// Called by nvme-core once, at the last put of a controller of ours.
    unsafe extern "C" fn free_ctrl(n: *mut nb::nvme_ctrl) {
        // SAFETY: allocated with KBox (trait contract); nvme-core's last
        // reference just went, so this is the only owner.
        T::free_ctrl(unsafe { KBox::from_raw(n.cast::<T>()) });
    }

    /// # Safety
    ///
    /// Called by nvme-core's async event work with a controller of ours.
    unsafe extern "C" fn submit_async_event(n: *mut nb::nvme_ctrl) {
        // SAFETY: a live controller of ours.
        T::submit_async_event(unsafe { Self::this(n) });
    }

    /// # Safety
    ///
    /// Called by nvme-core's delete work with a controller of ours.
    unsafe extern "C" fn delete_ctrl(n: *mut nb::nvme_ctrl) {
        // SAFETY: a live controller of ours.
        T::delete_ctrl(unsafe { Self::this(n) });
    }

    /// # Safety
    ///
    /// Called by nvme-core with a controller of ours.
    unsafe extern "C" fn stop_ctrl(n: *mut nb::nvme_ctrl) {
        // SAFETY: a live controller of ours.
        T::stop_ctrl(unsafe { Self::this(n) });
    }

    /// sysfs `address` (C: `nvme_tcp_get_address`): nvme-fabrics' line,
    /// plus `src_addr=` while the admin queue is connected.
    ///
    /// # Safety
    ///
    /// Called by nvme-core with a controller of ours and a buffer of
    /// `size` bytes.
    unsafe extern "C" fn get_address(n: *mut nb::nvme_ctrl, buf: *mut c_char, size: c_int) -> c_int {
        // SAFETY: a controller of ours and its buffer (caller).
        let mut len = unsafe { nb::nvmf_get_address(n, buf, size) };
        // SAFETY: a live controller of ours.
        let Some(src) = T::source_address(unsafe { Self::this(n) }) else { return len };
        if len <= 0 || len >= size {
            return len;
        }
        // Strip nvmf_get_address()'s trailing newline.
        len -= 1;
        // SAFETY: `buf` has `size` bytes and `len < size` are used; the
        // format takes a string and a sockaddr, which `src` is.
        len += unsafe {
            kb::scnprintf(
                buf.add(len as usize),
                (size - len) as usize,
                c",src_addr=%pISc\n".as_char_ptr(),
                core::ptr::from_ref(&src).cast::<c_void>(),
            )
        };
        len
    }

    /// `nvmf_get_virt_boundary()`: fabrics have no virtual boundary.
    ///
    /// # Safety
    ///
    /// None needed: the arguments are not used.
    unsafe extern "C" fn get_virt_boundary(_n: *mut nb::nvme_ctrl, _is_admin: bool) -> c_ulong {
        0
    }
}
