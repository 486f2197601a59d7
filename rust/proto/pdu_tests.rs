// SPDX-License-Identifier: GPL-2.0
//! Tests of PDU parsing and encoding (`cargo test`).

use super::build;
use super::*;
use crate::proto::crc::SoftCrc32c;

const ALL: [Digests; 4] = [
    Digests { header: false, data: false },
    Digests { header: true, data: false },
    Digests { header: false, data: true },
    Digests { header: true, data: true },
];

fn hdr_of(v: &[u8], d: Digests) -> &[u8] {
    &v[..d.recv_hdr_len()]
}

#[test]
fn icreq_layout() {
    let b = encode_icreq(Digests { header: true, data: true });
    assert_eq!(&b[..8], &[0, 0, 128, 0, 128, 0, 0, 0]);
    assert_eq!(b[11], 3);
    assert!(b[12..].iter().all(|&x| x == 0));
}

fn icresp(pfv: u16, cpda: u8, digest: u8, maxdata: u32) -> [u8; ICRESP_LEN] {
    let mut b = [0u8; ICRESP_LEN];
    b[..8].copy_from_slice(&CommonHeader { pdu_type: 1, flags: 0, hlen: 128, pdo: 0, plen: 128 }.encode());
    b[8..10].copy_from_slice(&pfv.to_le_bytes());
    b[10] = cpda;
    b[11] = digest;
    b[12..16].copy_from_slice(&maxdata.to_le_bytes());
    b
}

#[test]
fn icresp_checks() {
    let d = Digests { header: true, data: false };
    assert_eq!(parse_icresp(&icresp(0, 0, 1, 131072), d), Ok(IcResp { maxh2cdata: 131072, digests: d }));
    assert_eq!(parse_icresp(&icresp(1, 0, 1, 131072), d), Err(ProtoError::IcRespPfv(1)));
    assert_eq!(parse_icresp(&icresp(0, 1, 1, 131072), d), Err(ProtoError::IcRespCpda(1)));
    assert!(matches!(parse_icresp(&icresp(0, 0, 3, 131072), d), Err(ProtoError::IcRespDigest { .. })));
    assert_eq!(parse_icresp(&icresp(0, 0, 1, 4094), d), Err(ProtoError::IcRespMaxH2CData(4094)));
    assert_eq!(parse_icresp(&icresp(0, 0, 1, 4098), d), Err(ProtoError::IcRespMaxH2CData(4098)));
    let mut bad = icresp(0, 0, 1, 8192);
    bad[4] = 127;
    assert!(matches!(parse_icresp(&bad, d), Err(ProtoError::BadPlen { .. })));
    bad = icresp(0, 0, 1, 8192);
    bad[0] = 5;
    assert_eq!(parse_icresp(&bad, d), Err(ProtoError::UnexpectedType(5)));
}

#[test]
fn rsp_round_trip_every_digest_mode() {
    let c = SoftCrc32c;
    let cqe = Cqe { result: 0x1122334455667788, sq_head: 3, sq_id: 1, command_id: 0x4007, status: 0x2 };
    for d in ALL {
        let v = build::rsp(&cqe, d, &c);
        assert_eq!(v.len(), d.recv_hdr_len());
        assert_eq!(parse_recv_header(&v, d, &c), Ok(RecvPdu::Rsp(cqe)));
    }
}

#[test]
fn c2h_data_checks() {
    let c = SoftCrc32c;
    for d in ALL {
        let v = build::c2h_data(7, 4096, &[1, 2, 3, 4], true, true, d, &c);
        let got = parse_recv_header(hdr_of(&v, d), d, &c);
        assert_eq!(
            got,
            Ok(RecvPdu::C2HData(C2HData { command_id: 7, data_offset: 4096, data_length: 4, last: true, success: true }))
        );
        // SUCCESS without LAST.
        let v = build::c2h_data(7, 0, &[1], false, true, d, &c);
        assert_eq!(parse_recv_header(hdr_of(&v, d), d, &c), Err(ProtoError::SuccessWithoutLast));
    }
    let d = Digests::default();
    let mut v = build::c2h_data(7, 0, &[1, 2], true, false, d, &c);
    v[4] = v[4].wrapping_add(1); // plen off by one
    assert!(matches!(parse_recv_header(hdr_of(&v, d), d, &c), Err(ProtoError::BadPlen { .. })));
    let mut v = build::c2h_data(7, 0, &[1, 2], true, false, d, &c);
    v[3] = 0; // pdo
    assert!(matches!(parse_recv_header(hdr_of(&v, d), d, &c), Err(ProtoError::BadPdo { .. })));
    let mut v = build::c2h_data(7, 0, &[1, 2], true, false, d, &c);
    v[16..20].copy_from_slice(&0u32.to_le_bytes());
    v[4..8].copy_from_slice(&24u32.to_le_bytes());
    assert_eq!(parse_recv_header(hdr_of(&v, d), d, &c), Err(ProtoError::ZeroDataLength));
    // Data digest negotiated but flag missing, and the other way round.
    let dd = Digests { header: false, data: true };
    let v = build::c2h_data(7, 0, &[1, 2], true, false, d, &c);
    assert_eq!(parse_recv_header(hdr_of(&v, dd), dd, &c), Err(ProtoError::DdgstFlag { set: false }));
    let v = build::c2h_data(7, 0, &[1, 2], true, false, dd, &c);
    assert_eq!(parse_recv_header(hdr_of(&v, d), d, &c), Err(ProtoError::DdgstFlag { set: true }));
}

#[test]
fn header_digest_mismatch_is_rejected() {
    let c = SoftCrc32c;
    let d = Digests { header: true, data: false };
    let cqe = Cqe { result: 0, sq_head: 0, sq_id: 0, command_id: 1, status: 0 };
    let mut v = build::rsp(&cqe, d, &c);
    v[20] ^= 0x40;
    assert!(matches!(parse_recv_header(&v, d, &c), Err(ProtoError::HeaderDigest { .. })));
    // Digest negotiated, flag missing.
    let v = build::rsp(&cqe, Digests::default(), &c);
    let mut w = v.clone();
    w.extend_from_slice(&[0; 4]);
    assert_eq!(parse_recv_header(&w, d, &c), Err(ProtoError::HdgstFlag { set: false }));
}

#[test]
fn unexpected_types_and_lengths() {
    let c = SoftCrc32c;
    let d = Digests::default();
    for t in [0u8, 1, 2, 4, 6, 8, 10, 0xff] {
        let mut v = [0u8; 24];
        v[0] = t;
        v[2] = 24;
        v[4] = 24;
        assert_eq!(parse_recv_header(&v, d, &c), Err(ProtoError::UnexpectedType(t)));
    }
    let mut v = [0u8; 24];
    v[0] = 5;
    v[2] = 72;
    v[4] = 24;
    assert!(matches!(parse_recv_header(&v, d, &c), Err(ProtoError::BadHlen { .. })));
    // C2HTermReq: plen bounds, no digest check.
    let mut t = [0u8; 28];
    t[0] = 3;
    t[2] = 24;
    t[4] = 24;
    t[8] = 1;
    let dh = Digests { header: true, data: false };
    assert_eq!(parse_recv_header(&t, dh, &c), Ok(RecvPdu::C2HTerm(TermReq { fes: 1, fei: 0 })));
    t[4] = 200;
    assert!(matches!(parse_recv_header(&t, dh, &c), Err(ProtoError::BadPlen { .. })));
}

#[test]
fn c2h_range_checks() {
    let d = |off, len, last| C2HData { command_id: 1, data_offset: off, data_length: len, last, success: false };
    assert_eq!(check_c2h_range(&d(0, 4096, true), 0, 4096), Ok(()));
    assert_eq!(check_c2h_range(&d(4096, 4096, false), 4096, 16384), Ok(()));
    assert!(check_c2h_range(&d(0, 4096, true), 0, 0).is_err());
    assert!(check_c2h_range(&d(0, 4097, true), 0, 4096).is_err());
    assert!(check_c2h_range(&d(8192, 4096, false), 4096, 16384).is_err()); // a hole
    assert!(check_c2h_range(&d(0, 4096, true), 0, 8192).is_err()); // last too early
    assert!(check_c2h_range(&d(u32::MAX, 2, false), u32::MAX, u32::MAX).is_err()); // wraps
    assert_eq!(check_c2h_data(&d(0, 4096, true), 0, 4096, false), Ok(()));
    assert_eq!(check_c2h_data(&d(0, 4096, true), 0, 4096, true), Err(ProtoError::DataAfterCompletion(1)));
}

#[test]
fn r2t_range_checks() {
    let r = |off, len| R2T { command_id: 1, ttag: 0, offset: off, length: len };
    assert_eq!(check_r2t(&r(0, 8192), 0, 8192), Ok(()));
    assert!(check_r2t(&r(0, 0), 0, 8192).is_err());
    assert!(check_r2t(&r(0, 4096), 4096, 8192).is_err());
    assert_eq!(check_r2t(&r(4096, 4096), 4096, 8192), Ok(()));
    // A gap: the send side would send the bytes at 0 as those at 4096.
    assert!(check_r2t(&r(4096, 4096), 0, 8192).is_err());
    assert!(check_r2t(&r(4096, 8192), 0, 8192).is_err());
    assert!(check_r2t(&r(u32::MAX, 2), 0, u32::MAX).is_err());
}

#[test]
fn sgl_and_capsule_headers() {
    let mut sqe = [0u8; SQE_LEN];
    set_sgl(&mut sqe, DataPlacement::InCapsule { len: 4096, icdoff: 0 });
    assert_eq!(sqe[1], CMD_SGL_METABUF);
    assert_eq!(&sqe[32..36], &4096u32.to_le_bytes());
    assert_eq!(sqe[39], 0x01);
    set_sgl(&mut sqe, DataPlacement::Transport { len: 65536 });
    assert_eq!(sqe[39], 0x50);
    assert_eq!(&sqe[24..32], &[0; 8]);
    set_sgl(&mut sqe, DataPlacement::None);
    assert_eq!(&sqe[32..36], &[0; 4]);
    let d = Digests { header: true, data: true };
    assert_eq!(cmd_header(d, 0), CommonHeader { pdu_type: 4, flags: 1, hlen: 72, pdo: 0, plen: 76 });
    assert_eq!(cmd_header(d, 512), CommonHeader { pdu_type: 4, flags: 3, hlen: 72, pdo: 76, plen: 76 + 512 + 4 });
    assert_eq!(cmd_header(Digests::default(), 8), CommonHeader { pdu_type: 4, flags: 0, hlen: 72, pdo: 72, plen: 80 });
    let h = encode_h2c_data(Digests::default(), 7, 3, 8192, 4096, true);
    assert_eq!(CommonHeader::parse(&[h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]),
        CommonHeader { pdu_type: 6, flags: flags::DATA_LAST, hlen: 24, pdo: 24, plen: 24 + 4096 });
    assert_eq!(&h[8..20], &[7, 0, 3, 0, 0, 0x20, 0, 0, 0, 0x10, 0, 0]);
}

#[test]
fn r2t_parses() {
    let c = SoftCrc32c;
    for d in ALL {
        let v = build::r2t(9, 2, 8192, 4096, d, &c);
        assert_eq!(
            parse_recv_header(&v, d, &c),
            Ok(RecvPdu::R2T(R2T { command_id: 9, ttag: 2, offset: 8192, length: 4096 }))
        );
    }
}
