// SPDX-License-Identifier: GPL-2.0
//! Controller life cycle on nvme-core.
//!
//! Today: the transport's connect options and `create_ctrl`, which refuses
//! with a clear error until the I/O path lands (nothing pretends to work).

use crate::sys::fabrics::{opt, CtrlHandle, CtrlOptions, Transport};
use kernel::{device::Device, prelude::*};

/// The NVMe/TCP transport.
pub(crate) struct TcpTransport;

impl Transport for TcpTransport {
    const NAME: &'static CStr = c"tcp";
    const REQUIRED_OPTS: u32 = opt::TRADDR;
    // Only options that are implemented are allowed; nvme-fabrics rejects
    // the others by name ("invalid parameter"). ctrl_loss_tmo is allowed
    // because nvme-cli always sends it, so a plain connect reaches us.
    const ALLOWED_OPTS: u32 = opt::TRSVCID | opt::CTRL_LOSS_TMO;

    fn create_ctrl(dev: &Device, opts: &CtrlOptions) -> Result<CtrlHandle> {
        dev_err!(
            dev,
            "rnvme_tcp: connect to {}:{} nqn {}: controller creation is not implemented yet (mask {:#x})\n",
            opts.traddr().unwrap_or(c"?"),
            opts.trsvcid().unwrap_or(c"?"),
            opts.subsysnqn().unwrap_or(c"?"),
            opts.mask(),
        );
        Err(EOPNOTSUPP)
    }
}
