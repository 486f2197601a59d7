// SPDX-License-Identifier: GPL-2.0
//! Builders of target-side PDUs for the host tests and fuzzers (`cargo test`).

use super::*;
use std::vec::Vec;

fn finish_hdr<C: Crc32c>(mut h: Vec<u8>, digests: Digests, c: &C) -> Vec<u8> {
    if digests.header {
        let d = crc::digest(c, &h[..RECV_HDR_LEN]);
        h.extend_from_slice(&d);
    }
    h
}

/// A response capsule.
pub fn rsp<C: Crc32c>(cqe: &Cqe, digests: Digests, c: &C) -> Vec<u8> {
    let plen = (RECV_HDR_LEN + digests.hdgst_len()) as u32;
    let fl = if digests.header { flags::HDGST } else { 0 };
    let mut h = CommonHeader { pdu_type: 5, flags: fl, hlen: 24, pdo: 0, plen }.encode().to_vec();
    h.extend_from_slice(&cqe.result.to_le_bytes());
    h.extend_from_slice(&cqe.sq_head.to_le_bytes());
    h.extend_from_slice(&cqe.sq_id.to_le_bytes());
    h.extend_from_slice(&cqe.command_id.to_le_bytes());
    h.extend_from_slice(&cqe.status.to_le_bytes());
    finish_hdr(h, digests, c)
}

/// A C2HData PDU with its payload and, if negotiated, data digest.
pub fn c2h_data<C: Crc32c>(
    cid: u16,
    offset: u32,
    payload: &[u8],
    last: bool,
    success: bool,
    digests: Digests,
    c: &C,
) -> Vec<u8> {
    let hdr_total = RECV_HDR_LEN + digests.hdgst_len();
    let plen = (hdr_total + payload.len() + digests.ddgst_len()) as u32;
    let fl = (if digests.header { flags::HDGST } else { 0 })
        | (if digests.data { flags::DDGST } else { 0 })
        | (if last { flags::DATA_LAST } else { 0 })
        | (if success { flags::DATA_SUCCESS } else { 0 });
    let mut h = CommonHeader { pdu_type: 7, flags: fl, hlen: 24, pdo: hdr_total as u8, plen }
        .encode()
        .to_vec();
    h.extend_from_slice(&cid.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&offset.to_le_bytes());
    h.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    let mut v = finish_hdr(h, digests, c);
    v.extend_from_slice(payload);
    if digests.data {
        v.extend_from_slice(&crc::digest(c, payload));
    }
    v
}

/// An R2T.
pub fn r2t<C: Crc32c>(cid: u16, ttag: u16, offset: u32, length: u32, digests: Digests, c: &C) -> Vec<u8> {
    let plen = (RECV_HDR_LEN + digests.hdgst_len()) as u32;
    let fl = if digests.header { flags::HDGST } else { 0 };
    let mut h = CommonHeader { pdu_type: 9, flags: fl, hlen: 24, pdo: 0, plen }.encode().to_vec();
    h.extend_from_slice(&cid.to_le_bytes());
    h.extend_from_slice(&ttag.to_le_bytes());
    h.extend_from_slice(&offset.to_le_bytes());
    h.extend_from_slice(&length.to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    finish_hdr(h, digests, c)
}
