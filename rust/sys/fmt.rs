// SPDX-License-Identifier: GPL-2.0
//! Printing `core::fmt::Display` values (the protocol core's errors) with
//! the kernel's `pr_*!`/`dev_*!` macros, which take `kernel::fmt::Display`.

/// Shows a `core::fmt::Display` value through the kernel's printing macros.
pub(crate) struct Shown<T>(pub(crate) T);

impl<T: core::fmt::Display> kernel::fmt::Display for Shown<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}
