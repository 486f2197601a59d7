// SPDX-License-Identifier: GPL-2.0
//! rnvme-tcp: an NVMe/TCP host transport in Rust.
//!
//! Registers the nvme-fabrics transport `tcp`, so `nvme connect -t tcp`
//! creates controllers served by this module. Only one `tcp` transport can
//! be registered at a time: the C `nvme_tcp` must not be loaded beside it.

mod ctrl;
mod queue;
mod request;
mod stats;
mod tls;
#[allow(unreachable_pub, dead_code)]
mod proto;
mod sys;

use kernel::prelude::*;

module! {
    type: RnvmeTcpModule,
    name: "rnvme_tcp",
    authors: ["rnvme-tcp developers"],
    description: "NVMe/TCP host transport in Rust (recvmsg receive path)",
    license: "GPL v2",
    alias: ["nvme-tcp"],
    params: {
        read_sock: bool {
            default: false,
            description: "io_work receives with read_sock() instead of sock_recvmsg(), through the same receive machine (for the A/B benchmark; applies to controllers created after loading)",
        },
        recv_batch: u32 {
            default: 1024,
            description: "batched header receive: bytes of the per-queue staging buffer one recvmsg at a PDU header fills (0: one recvmsg per header; at most 65536; applies to queues connected after it is set)",
        },
        recv_tail: u32 {
            default: 128,
            description: "batched header receive: bytes of the staging buffer the receive of a C2HData payload's end also fills with what follows it (the next headers), saving the receive that would read them (0: payloads are received alone; at most recv_batch; applies to queues connected after it is set)",
        },
        pass_after_completions: bool {
            default: false,
            description: "io_work tries another receive pass after one that completed commands even when it drained the socket, as C's io_work does (default false: after a drained pass data_ready or a new request runs io_work again, which saves a receive call per run; for the A/B benchmark)",
        },
        tls_handshake_timeout: u32 {
            default: 10,
            description: "nvme TLS handshake timeout in seconds (default 10)",
        },
    },
}

// Fields drop in order: the transport goes first (no new controller),
// then the controllers (deleted, and waited for until freed, as C's module
// exit), debugfs, and the workqueue (nothing is left to queue work).
#[pin_data]
struct RnvmeTcpModule {
    #[pin]
    transport: sys::fabrics::Registration<ctrl::TcpTransport>,
    _ctrls: ctrl::ControllersAtExit,
    _debugfs: stats::Debugfs,
    _wq: sys::workqueue::Workqueue,
}

impl kernel::InPlaceModule for RnvmeTcpModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let ctrls = ctrl::init_ops(module);
        let wq = sys::workqueue::Workqueue::new();
        let debugfs = stats::Debugfs::new();
        try_pin_init!(Self {
            _wq: wq?,
            _debugfs: debugfs?,
            _ctrls: ctrls,
            transport <- sys::fabrics::Registration::register(module),
        })
        .pin_chain(|_| {
            let mode = if module_parameters::read_sock.value() { "read_sock" } else { "recvmsg" };
            pr_info!("registered nvme-fabrics transport \"tcp\" (Rust, {} receive path)\n", mode);
            Ok(())
        })
    }
}
