// SPDX-License-Identifier: GPL-2.0
//! Controller life cycle on nvme-core.
//!
//! Today: `create_ctrl` parses the address, opens the admin queue's TCP
//! connection and runs the ICReq/ICResp exchange with full validation, then
//! refuses with a clear error: the controller itself (Fabrics Connect,
//! blk-mq, I/O queues) is not implemented yet, and nothing pretends.

use crate::proto::pdu::{self, Digests, IcResp};
use crate::sys::fabrics::{opt, CtrlHandle, CtrlOptions, Transport};
use crate::sys::fmt::Shown;
use crate::sys::socket::{SockAddr, TcpSocket};
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
        let traddr = opts.traddr().ok_or(EINVAL)?;
        let trsvcid = opts.trsvcid().unwrap_or(c"4420");
        let nqn = opts.subsysnqn().unwrap_or(c"?");
        let addr = SockAddr::parse(traddr, trsvcid).inspect_err(|e| {
            dev_err!(dev, "rnvme_tcp: malformed address {}:{}: {}\n", traddr, trsvcid, e.to_errno());
        })?;
        let digests = Digests::default();
        let (_sock, icresp) = connect_queue(dev, 0, &addr, digests)?;
        dev_info!(
            dev,
            "rnvme_tcp: queue 0 to {}:{}: ICResp ok, maxh2cdata {}, digests hdr {} data {}\n",
            traddr,
            trsvcid,
            icresp.maxh2cdata,
            icresp.digests.header,
            icresp.digests.data,
        );
        dev_err!(
            dev,
            "rnvme_tcp: connect to {}:{} nqn {}: controller creation is not implemented yet (mask {:#x})\n",
            traddr,
            trsvcid,
            nqn,
            opts.mask(),
        );
        Err(EOPNOTSUPP)
    }
}

/// Opens queue `qid`'s TCP connection and runs the ICReq/ICResp exchange.
fn connect_queue(dev: &Device, qid: u16, addr: &SockAddr, digests: Digests) -> Result<(TcpSocket, IcResp)> {
    let sock = TcpSocket::connect(addr, -1).inspect_err(|e| {
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
