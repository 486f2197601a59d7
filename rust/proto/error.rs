// SPDX-License-Identifier: GPL-2.0
//! What is wrong with what a target sent: one variant per field checked,
//! each shown with the values, for the `dev_err!` line that names it.

use crate::proto::errno;
use core::fmt;

/// What is wrong with a PDU a target sent. Each variant names the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// A PDU type a host never receives at this point.
    UnexpectedType(u8),
    /// `hlen` does not match the type.
    BadHlen { pdu_type: u8, hlen: u8 },
    /// `pdo` does not match the type, the header and the digests.
    BadPdo { pdu_type: u8, pdo: u8 },
    /// `plen` is inconsistent with the header, data and digests.
    BadPlen { pdu_type: u8, plen: u32 },
    /// The HDGST flag does not match the negotiated header digest.
    HdgstFlag { set: bool },
    /// The DDGST flag does not match the negotiated data digest.
    DdgstFlag { set: bool },
    /// The header digest does not match the header.
    HeaderDigest { received: u32, computed: u32 },
    /// C2HData with zero length.
    ZeroDataLength,
    /// C2HData with SUCCESS but without LAST.
    SuccessWithoutLast,
    /// ICResp: wrong PDU format version.
    IcRespPfv(u16),
    /// ICResp: digests differ from those requested.
    IcRespDigest { requested: u8, returned: u8 },
    /// ICResp: controller PDU data alignment we do not support.
    IcRespCpda(u8),
    /// ICResp: MAXH2CDATA too small or not a multiple of 4.
    IcRespMaxH2CData(u32),
    /// The target closed the connection.
    ConnectionClosed,
    /// Data or R2T for a command id that is not outstanding on this queue.
    UnknownCommand(u16),
    /// C2HData for a command that transfers no data to the host.
    UnexpectedData(u16),
    /// C2HData for a command whose completion (a Response, or C2HData with
    /// SUCCESS) already arrived.
    DataAfterCompletion(u16),
    /// C2HData out of order or beyond the command's data length.
    DataOutOfRange { command_id: u16, offset: u32, length: u32, expected: u32, total: u32 },
    /// R2T asking for nothing, out of order or beyond the command's data.
    R2TOutOfRange { command_id: u16, offset: u32, length: u32, sent: u32, total: u32 },
    /// R2T for a command that has no data left to send (a read, an
    /// in-capsule write, or a write already sent).
    UnexpectedR2T(u16),
    /// R2T while the command's previous R2T is still being served.
    DuplicateR2T(u16),
    /// A second completion (Response, or C2HData with SUCCESS) for a
    /// command whose first one is held until the send side is done.
    DuplicateResponse(u16),
}

impl ProtoError {
    /// The errno this error maps to (positive).
    pub fn errno(&self) -> i32 {
        match self {
            Self::HeaderDigest { .. } => errno::EBADMSG,
            Self::ConnectionClosed => errno::ECONNRESET,
            Self::IcRespPfv(_)
            | Self::IcRespDigest { .. }
            | Self::IcRespCpda(_)
            | Self::IcRespMaxH2CData(_) => errno::EINVAL,
            _ => errno::EPROTO,
        }
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnexpectedType(t) => write!(f, "unexpected pdu type {t:#x}"),
            Self::BadHlen { pdu_type, hlen } => write!(f, "pdu type {pdu_type:#x}: bad hlen {hlen}"),
            Self::BadPdo { pdu_type, pdo } => write!(f, "pdu type {pdu_type:#x}: bad pdo {pdo}"),
            Self::BadPlen { pdu_type, plen } => write!(f, "pdu type {pdu_type:#x}: bad plen {plen}"),
            Self::HdgstFlag { set } => write!(f, "header digest flag {}", if set { "set but not negotiated" } else { "cleared" }),
            Self::DdgstFlag { set } => write!(f, "data digest flag {}", if set { "set but not negotiated" } else { "cleared" }),
            Self::HeaderDigest { received, computed } => {
                write!(f, "header digest error: recv {received:#x} expected {computed:#x}")
            }
            Self::ZeroDataLength => write!(f, "c2h data pdu with zero data length"),
            Self::SuccessWithoutLast => write!(f, "c2h success flag without data last"),
            Self::IcRespPfv(v) => write!(f, "icresp: bad pfv {v:#x}"),
            Self::IcRespDigest { requested, returned } => {
                write!(f, "icresp: digests requested {requested:#x}, returned {returned:#x}")
            }
            Self::IcRespCpda(v) => write!(f, "icresp: unsupported cpda {v}"),
            Self::IcRespMaxH2CData(v) => write!(f, "icresp: invalid maxh2cdata {v}"),
            Self::ConnectionClosed => write!(f, "connection closed by target"),
            Self::UnknownCommand(cid) => write!(f, "command id {cid:#x} is not outstanding"),
            Self::UnexpectedData(cid) => write!(f, "tag {cid:#x} unexpected data"),
            Self::DataAfterCompletion(cid) => write!(f, "request {cid:#x}: c2h data after its completion"),
            Self::DataOutOfRange { command_id, offset, length, expected, total } => write!(
                f,
                "request {command_id:#x}: c2h data offset {offset} length {length}, expected offset {expected} of {total}"
            ),
            Self::R2TOutOfRange { command_id, offset, length, sent, total } => write!(
                f,
                "request {command_id:#x}: r2t offset {offset} length {length}, {sent} of {total} sent"
            ),
            Self::UnexpectedR2T(cid) => write!(f, "request {cid:#x}: r2t but no data is due"),
            Self::DuplicateR2T(cid) => write!(f, "request {cid:#x}: r2t while the previous one is outstanding"),
            Self::DuplicateResponse(cid) => write!(f, "request {cid:#x}: second response while the first is held"),
        }
    }
}
