// SPDX-License-Identifier: GPL-2.0
//! NVMe/TCP PDU layouts (`include/linux/nvme-tcp.h`) and header validation.
//!
//! Only byte slices cross this boundary: received headers are parsed into
//! plain values after every field a target controls has been checked, so the
//! kernel side never interprets unchecked bytes.

use crate::proto::crc::{self, Crc32c};

pub use crate::proto::error::ProtoError;

/// Size of the common header (`struct nvme_tcp_hdr`).
pub const HDR_LEN: usize = 8;
/// Size of a header or data digest.
pub const DIGEST_LEN: usize = 4;
/// `struct nvme_tcp_icreq_pdu` / `nvme_tcp_icresp_pdu`.
pub const ICREQ_LEN: usize = 128;
/// `struct nvme_tcp_icresp_pdu`.
pub const ICRESP_LEN: usize = 128;
/// `struct nvme_tcp_cmd_pdu`: common header plus a 64-byte SQE.
pub const CMD_PDU_LEN: usize = 72;
/// `struct nvme_tcp_rsp_pdu`: common header plus a 16-byte CQE.
pub const RSP_PDU_LEN: usize = 24;
/// `struct nvme_tcp_data_pdu` (C2HData and H2CData).
pub const DATA_PDU_LEN: usize = 24;
/// `struct nvme_tcp_r2t_pdu`.
pub const R2T_PDU_LEN: usize = 24;
/// `struct nvme_tcp_term_pdu`.
pub const TERM_PDU_LEN: usize = 24;
/// Size of an NVMe submission queue entry.
pub const SQE_LEN: usize = 64;
/// Size of an NVMe completion queue entry.
pub const CQE_LEN: usize = 16;
/// Smallest MAXH2CDATA a controller may announce (`NVME_TCP_MIN_MAXH2CDATA`).
pub const MIN_MAXH2CDATA: u32 = 4096;
/// Bounds of a C2HTermReq's PDU length.
pub const C2HTERM_MIN_PLEN: u32 = 24;
/// See [`C2HTERM_MIN_PLEN`].
pub const C2HTERM_MAX_PLEN: u32 = 152;
/// Every PDU a host receives after ICResp has a 24-byte header, so a queue
/// always reads this much (plus a header digest) before deciding anything.
pub const RECV_HDR_LEN: usize = 24;

// The sizes the C driver asserts with BUILD_BUG_ON in nvme_tcp_init_module().
const _: () = assert!(HDR_LEN == 8);
const _: () = assert!(CMD_PDU_LEN == HDR_LEN + SQE_LEN && CMD_PDU_LEN == 72);
const _: () = assert!(DATA_PDU_LEN == 24 && RSP_PDU_LEN == HDR_LEN + CQE_LEN);
const _: () = assert!(R2T_PDU_LEN == 24 && TERM_PDU_LEN == 24);
const _: () = assert!(ICREQ_LEN == 128 && ICRESP_LEN == 128);

/// PDU types (`enum nvme_tcp_pdu_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PduType {
    /// Initialize Connection Request (host to controller).
    IcReq = 0x0,
    /// Initialize Connection Response.
    IcResp = 0x1,
    /// Host to controller termination request.
    H2CTerm = 0x2,
    /// Controller to host termination request.
    C2HTerm = 0x3,
    /// Command capsule.
    Cmd = 0x4,
    /// Response capsule.
    Rsp = 0x5,
    /// Host to controller data.
    H2CData = 0x6,
    /// Controller to host data.
    C2HData = 0x7,
    /// Ready to transfer.
    R2T = 0x9,
}

impl PduType {
    /// The type for a wire value, if it is one.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x0 => Self::IcReq,
            0x1 => Self::IcResp,
            0x2 => Self::H2CTerm,
            0x3 => Self::C2HTerm,
            0x4 => Self::Cmd,
            0x5 => Self::Rsp,
            0x6 => Self::H2CData,
            0x7 => Self::C2HData,
            0x9 => Self::R2T,
            _ => return None,
        })
    }
}

/// PDU flags (`enum nvme_tcp_pdu_flags`).
pub mod flags {
    /// A header digest follows the header.
    pub const HDGST: u8 = 1 << 0;
    /// A data digest follows the data.
    pub const DDGST: u8 = 1 << 1;
    /// Last data PDU of a command.
    pub const DATA_LAST: u8 = 1 << 2;
    /// The command completed successfully; no response capsule follows.
    pub const DATA_SUCCESS: u8 = 1 << 3;
}

/// Digest bits of ICReq/ICResp (`enum nvme_tcp_digest_option`).
pub mod digest_option {
    /// Header digests.
    pub const HDR: u8 = 1 << 0;
    /// Data digests.
    pub const DATA: u8 = 1 << 1;
}

/// Which digests a queue negotiated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digests {
    /// Header digest on every PDU header.
    pub header: bool,
    /// Data digest after every data payload.
    pub data: bool,
}

impl Digests {
    /// Bytes a header digest adds to a header.
    pub fn hdgst_len(self) -> usize {
        if self.header { DIGEST_LEN } else { 0 }
    }
    /// Bytes a data digest adds after a payload.
    pub fn ddgst_len(self) -> usize {
        if self.data { DIGEST_LEN } else { 0 }
    }
    /// The ICReq/ICResp `digest` byte.
    pub fn option_byte(self) -> u8 {
        (if self.header { digest_option::HDR } else { 0 })
            | (if self.data { digest_option::DATA } else { 0 })
    }
    /// How many bytes a queue reads for every received PDU header.
    pub fn recv_hdr_len(self) -> usize {
        RECV_HDR_LEN + self.hdgst_len()
    }
}

/// The common header every PDU starts with (`struct nvme_tcp_hdr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommonHeader {
    /// PDU type (raw; see [`PduType`]).
    pub pdu_type: u8,
    /// PDU flags.
    pub flags: u8,
    /// Header length, without a header digest.
    pub hlen: u8,
    /// PDU data offset: where the data starts, 0 when there is none.
    pub pdo: u8,
    /// Total PDU length including header, digests, padding and data.
    pub plen: u32,
}

impl CommonHeader {
    /// Reads the first [`HDR_LEN`] bytes of `b`, which must hold them.
    pub fn parse(b: &[u8; HDR_LEN]) -> Self {
        Self {
            pdu_type: b[0],
            flags: b[1],
            hlen: b[2],
            pdo: b[3],
            plen: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; HDR_LEN] {
        let p = self.plen.to_le_bytes();
        [self.pdu_type, self.flags, self.hlen, self.pdo, p[0], p[1], p[2], p[3]]
    }
}

/// A completion queue entry (`struct nvme_completion`), from a response capsule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cqe {
    /// Command specific result (`result.u64`).
    pub result: u64,
    /// Submission queue head pointer.
    pub sq_head: u16,
    /// Submission queue identifier.
    pub sq_id: u16,
    /// The command identifier the host chose (untrusted: check it).
    pub command_id: u16,
    /// Status field, phase bit included.
    pub status: u16,
}

impl Cqe {
    /// Reads a CQE from its 16 wire bytes.
    pub fn parse(b: &[u8; CQE_LEN]) -> Self {
        Self {
            result: u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            sq_head: le16(b, 8),
            sq_id: le16(b, 10),
            command_id: le16(b, 12),
            status: le16(b, 14),
        }
    }
}

/// A C2HData header, checked against the PDU length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct C2HData {
    /// The command this data belongs to (untrusted: check it).
    pub command_id: u16,
    /// Byte offset of this payload in the command's data (untrusted).
    pub data_offset: u32,
    /// Payload length, non-zero and consistent with `plen`.
    pub data_length: u32,
    /// Last data PDU of the command.
    pub last: bool,
    /// The command succeeded and no response capsule follows.
    pub success: bool,
}

/// An R2T, as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct R2T {
    /// The command asking for data (untrusted: check it).
    pub command_id: u16,
    /// Transfer tag to echo in the H2CData PDUs.
    pub ttag: u16,
    /// Offset of the requested data (untrusted).
    pub offset: u32,
    /// Length of the requested data (untrusted).
    pub length: u32,
}

/// A C2HTermReq: the controller is closing the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TermReq {
    /// Fatal error status.
    pub fes: u16,
    /// Fatal error information (low and high halves).
    pub fei: u32,
}

impl TermReq {
    /// The name of a fatal error status, as the C driver prints it.
    pub fn fes_name(&self) -> &'static str {
        match self.fes {
            0x01 => "Invalid PDU Header Field",
            0x02 => "PDU Sequence Error",
            0x03 => "Header Digest Error",
            0x04 => "Data Transfer Out Of Range",
            0x05 => "Data Transfer Limit Exceeded",
            0x06 => "Unsupported Parameter",
            _ => "Unknown",
        }
    }
}

/// A received PDU header, fully checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvPdu {
    /// A response capsule.
    Rsp(Cqe),
    /// The header of controller-to-host data; the payload follows.
    C2HData(C2HData),
    /// Ready to transfer.
    R2T(R2T),
    /// Termination request.
    C2HTerm(TermReq),
}

/// The initialize connection response, checked against what the host asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcResp {
    /// Largest H2CData payload the controller accepts.
    pub maxh2cdata: u32,
    /// The digests now in force.
    pub digests: Digests,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Builds an ICReq (`struct nvme_tcp_icreq_pdu`): PFV 1.0, HPDA 0, the
/// digests wanted, MAXR2T 0 (one outstanding R2T per command).
pub fn encode_icreq(digests: Digests) -> [u8; ICREQ_LEN] {
    let mut b = [0u8; ICREQ_LEN];
    let hdr = CommonHeader {
        pdu_type: PduType::IcReq as u8,
        flags: 0,
        hlen: ICREQ_LEN as u8,
        pdo: 0,
        plen: ICREQ_LEN as u32,
    };
    b[..HDR_LEN].copy_from_slice(&hdr.encode());
    // pfv (le16) = 0, hpda = 0 at [10], digest at [11], maxr2t (le32) = 0.
    b[11] = digests.option_byte();
    b
}

/// Checks an ICResp against the ICReq that asked for `requested`.
pub fn parse_icresp(b: &[u8; ICRESP_LEN], requested: Digests) -> Result<IcResp, ProtoError> {
    let mut h = [0u8; HDR_LEN];
    h.copy_from_slice(&b[..HDR_LEN]);
    let hdr = CommonHeader::parse(&h);
    if hdr.pdu_type != PduType::IcResp as u8 {
        return Err(ProtoError::UnexpectedType(hdr.pdu_type));
    }
    if usize::from(hdr.hlen) != ICRESP_LEN {
        return Err(ProtoError::BadHlen { pdu_type: hdr.pdu_type, hlen: hdr.hlen });
    }
    if hdr.pdo != 0 {
        return Err(ProtoError::BadPdo { pdu_type: hdr.pdu_type, pdo: hdr.pdo });
    }
    if hdr.plen as usize != ICRESP_LEN {
        return Err(ProtoError::BadPlen { pdu_type: hdr.pdu_type, plen: hdr.plen });
    }
    let pfv = le16(b, 8);
    if pfv != 0 {
        return Err(ProtoError::IcRespPfv(pfv));
    }
    let cpda = b[10];
    if cpda != 0 {
        return Err(ProtoError::IcRespCpda(cpda));
    }
    let returned = b[11];
    if returned != requested.option_byte() {
        return Err(ProtoError::IcRespDigest { requested: requested.option_byte(), returned });
    }
    let maxh2cdata = le32(b, 12);
    if maxh2cdata % 4 != 0 || maxh2cdata < MIN_MAXH2CDATA {
        return Err(ProtoError::IcRespMaxH2CData(maxh2cdata));
    }
    Ok(IcResp { maxh2cdata, digests: requested })
}

/// Parses and checks a received PDU header.
///
/// `b` holds exactly [`Digests::recv_hdr_len`] bytes: the 24-byte header and,
/// with header digests, the digest. A C2HTermReq is accepted without a
/// digest check, as the specification says it never carries one.
pub fn parse_recv_header<C: Crc32c + ?Sized>(
    b: &[u8],
    digests: Digests,
    crc: &C,
) -> Result<RecvPdu, ProtoError> {
    debug_assert_eq!(b.len(), digests.recv_hdr_len());
    let mut h = [0u8; HDR_LEN];
    h.copy_from_slice(&b[..HDR_LEN]);
    let hdr = CommonHeader::parse(&h);
    let t = hdr.pdu_type;
    let ty = match PduType::from_u8(t) {
        Some(ty @ (PduType::Rsp | PduType::C2HData | PduType::R2T | PduType::C2HTerm)) => ty,
        _ => return Err(ProtoError::UnexpectedType(t)),
    };
    if usize::from(hdr.hlen) != RECV_HDR_LEN {
        return Err(ProtoError::BadHlen { pdu_type: t, hlen: hdr.hlen });
    }

    if ty == PduType::C2HTerm {
        if hdr.plen < C2HTERM_MIN_PLEN || hdr.plen > C2HTERM_MAX_PLEN {
            return Err(ProtoError::BadPlen { pdu_type: t, plen: hdr.plen });
        }
        return Ok(RecvPdu::C2HTerm(TermReq {
            fes: le16(b, 8),
            fei: u32::from(le16(b, 10)) | (u32::from(le16(b, 12)) << 16),
        }));
    }

    let hd = hdr.flags & flags::HDGST != 0;
    if hd != digests.header {
        return Err(ProtoError::HdgstFlag { set: hd });
    }
    if digests.header {
        let received = le32(b, RECV_HDR_LEN);
        let computed = u32::from_le_bytes(crc::digest(crc, &b[..RECV_HDR_LEN]));
        if received != computed {
            return Err(ProtoError::HeaderDigest { received, computed });
        }
    }
    let hdr_total = (RECV_HDR_LEN + digests.hdgst_len()) as u32;

    match ty {
        PduType::Rsp | PduType::R2T => {
            if hdr.flags & flags::DDGST != 0 {
                return Err(ProtoError::DdgstFlag { set: true });
            }
            if hdr.pdo != 0 {
                return Err(ProtoError::BadPdo { pdu_type: t, pdo: hdr.pdo });
            }
            if hdr.plen != hdr_total {
                return Err(ProtoError::BadPlen { pdu_type: t, plen: hdr.plen });
            }
            if ty == PduType::Rsp {
                let mut c = [0u8; CQE_LEN];
                c.copy_from_slice(&b[HDR_LEN..HDR_LEN + CQE_LEN]);
                Ok(RecvPdu::Rsp(Cqe::parse(&c)))
            } else {
                Ok(RecvPdu::R2T(R2T {
                    command_id: le16(b, 8),
                    ttag: le16(b, 10),
                    offset: le32(b, 12),
                    length: le32(b, 16),
                }))
            }
        }
        _ => {
            let dd = hdr.flags & flags::DDGST != 0;
            if dd != digests.data {
                return Err(ProtoError::DdgstFlag { set: dd });
            }
            // We send HPDA 0, so data starts right after the header.
            if u32::from(hdr.pdo) != hdr_total {
                return Err(ProtoError::BadPdo { pdu_type: t, pdo: hdr.pdo });
            }
            let data_length = le32(b, 16);
            if data_length == 0 {
                return Err(ProtoError::ZeroDataLength);
            }
            let expect = u64::from(hdr_total) + u64::from(data_length) + digests.ddgst_len() as u64;
            if u64::from(hdr.plen) != expect {
                return Err(ProtoError::BadPlen { pdu_type: t, plen: hdr.plen });
            }
            let last = hdr.flags & flags::DATA_LAST != 0;
            let success = hdr.flags & flags::DATA_SUCCESS != 0;
            if success && !last {
                return Err(ProtoError::SuccessWithoutLast);
            }
            Ok(RecvPdu::C2HData(C2HData {
                command_id: le16(b, 8),
                data_offset: le32(b, 12),
                data_length,
                last,
                success,
            }))
        }
    }
}

/// Checks a C2HData header against the command it names: `received` bytes
/// of `total` have arrived so far. Data must arrive in order and stay
/// within the command's data, so it can only ever land in that command's
/// pages.
pub fn check_c2h_range(d: &C2HData, received: u32, total: u32) -> Result<(), ProtoError> {
    if total == 0 {
        return Err(ProtoError::UnexpectedData(d.command_id));
    }
    let end = u64::from(d.data_offset) + u64::from(d.data_length);
    if d.data_offset != received || end > u64::from(total) || (d.last && end != u64::from(total)) {
        return Err(ProtoError::DataOutOfRange {
            command_id: d.command_id,
            offset: d.data_offset,
            length: d.data_length,
            expected: received,
            total,
        });
    }
    Ok(())
}

/// [`check_c2h_range`], and first that the command's completion has not
/// arrived yet (`completed`: the receive side holds one for the send side,
/// which may end the request at any moment): data after it would be placed
/// into pages the request no longer owns once the send side lets go.
pub fn check_c2h_data(d: &C2HData, received: u32, total: u32, completed: bool) -> Result<(), ProtoError> {
    if completed {
        return Err(ProtoError::DataAfterCompletion(d.command_id));
    }
    check_c2h_range(d, received, total)
}

/// Checks an R2T against a write command of `total` bytes of which `sent`
/// were sent (as `nvme_tcp_handle_r2t()` does), and more: it must ask for
/// the very next unsent byte. The send side sends a write's data in order
/// from where it stands (`sent`) and names the R2T's offset in its
/// H2CData, so an R2T past `sent` would make it send the bytes at `sent`
/// as if they were those at the offset asked for: the target would write
/// them to the wrong place.
pub fn check_r2t(r: &R2T, sent: u32, total: u32) -> Result<(), ProtoError> {
    let end = u64::from(r.offset) + u64::from(r.length);
    if r.length == 0 || r.offset != sent || end > u64::from(total) {
        return Err(ProtoError::R2TOutOfRange { command_id: r.command_id, offset: r.offset, length: r.length, sent, total });
    }
    Ok(())
}

/// How a command's data travels (the SGL descriptor of its SQE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPlacement {
    /// No data: a null transport SGL.
    None,
    /// In-capsule data of this many bytes, at offset `icdoff`.
    InCapsule { len: u32, icdoff: u32 },
    /// Data moved by C2HData/R2T+H2CData: a transport SGL of this length.
    Transport { len: u32 },
}

/// `NVME_CMD_SGL_METABUF`: the data pointer is an SGL.
pub const CMD_SGL_METABUF: u8 = 1 << 6;
const SGL_FMT_DATA_DESC: u8 = 0x00;
const SGL_FMT_OFFSET: u8 = 0x01;
const TRANSPORT_SGL_DATA_DESC: u8 = 0x5;

/// Writes the SGL of `place` into an SQE (`dptr` at bytes 24..40) and marks
/// the command as SGL-based, as `nvme_tcp_setup_cmd_pdu()` does.
pub fn set_sgl(sqe: &mut [u8; SQE_LEN], place: DataPlacement) {
    sqe[1] |= CMD_SGL_METABUF;
    let (addr, len, ty) = match place {
        DataPlacement::None => (0u64, 0u32, TRANSPORT_SGL_DATA_DESC << 4),
        DataPlacement::InCapsule { len, icdoff } => (u64::from(icdoff), len, (SGL_FMT_DATA_DESC << 4) | SGL_FMT_OFFSET),
        DataPlacement::Transport { len } => (0, len, TRANSPORT_SGL_DATA_DESC << 4),
    };
    sqe[24..32].copy_from_slice(&addr.to_le_bytes());
    sqe[32..36].copy_from_slice(&len.to_le_bytes());
    sqe[36..39].copy_from_slice(&[0; 3]);
    sqe[39] = ty;
}

/// The common header of a command capsule carrying `inline_len` bytes of
/// in-capsule data.
pub fn cmd_header(digests: Digests, inline_len: u32) -> CommonHeader {
    let hdr_total = (CMD_PDU_LEN + digests.hdgst_len()) as u32;
    let has_data = inline_len > 0;
    let ddgst = if has_data && digests.data { DIGEST_LEN as u32 } else { 0 };
    CommonHeader {
        pdu_type: PduType::Cmd as u8,
        flags: (if digests.header { flags::HDGST } else { 0 }) | (if has_data && digests.data { flags::DDGST } else { 0 }),
        hlen: CMD_PDU_LEN as u8,
        pdo: if has_data { hdr_total as u8 } else { 0 },
        plen: hdr_total + inline_len + ddgst,
    }
}

/// An H2CData header answering an R2T.
pub fn encode_h2c_data(
    digests: Digests,
    command_id: u16,
    ttag: u16,
    offset: u32,
    len: u32,
    last: bool,
) -> [u8; DATA_PDU_LEN] {
    let hdr_total = (DATA_PDU_LEN + digests.hdgst_len()) as u32;
    let hdr = CommonHeader {
        pdu_type: PduType::H2CData as u8,
        flags: (if digests.header { flags::HDGST } else { 0 })
            | (if digests.data { flags::DDGST } else { 0 })
            | (if last { flags::DATA_LAST } else { 0 }),
        hlen: DATA_PDU_LEN as u8,
        pdo: hdr_total as u8,
        plen: hdr_total + len + digests.ddgst_len() as u32,
    };
    let mut b = [0u8; DATA_PDU_LEN];
    b[..HDR_LEN].copy_from_slice(&hdr.encode());
    b[8..10].copy_from_slice(&command_id.to_le_bytes());
    b[10..12].copy_from_slice(&ttag.to_le_bytes());
    b[12..16].copy_from_slice(&offset.to_le_bytes());
    b[16..20].copy_from_slice(&len.to_le_bytes());
    b
}

/// Test and fuzz helpers that build target-side PDUs.
#[cfg(test)]
#[path = "pdu_build.rs"]
pub mod build;

#[cfg(test)]
#[path = "pdu_tests.rs"]
mod tests;
