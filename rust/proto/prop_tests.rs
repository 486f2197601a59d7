// SPDX-License-Identifier: GPL-2.0
//! Property tests (proptest) of the receive side's pure decisions: whatever
//! a target sends, the bytes the host accepts land only inside the
//! request's declared range, each once, and a header the parser accepts is
//! consistent with its length fields.

use crate::proto::crc::SoftCrc32c;
use crate::proto::pdu::{check_c2h_range, check_r2t, parse_recv_header, C2HData, Digests, RecvPdu, R2T};
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

/// A C2HData PDU as a target might send it: offsets near the interesting
/// values (the expected one, the end) as often as anywhere.
fn c2h_pdu(total: u32) -> impl Strategy<Value = (u32, u32, bool, bool)> {
    let t = total.max(1);
    (
        prop_oneof![0..=t, Just(0u32), Just(t), any::<u32>()],
        prop_oneof![1..=t, Just(512u32), Just(u32::MAX)],
        any::<bool>(),
        any::<bool>(),
    )
}

proptest! {
    /// The host's receive side (as `queue.rs` drives it): each C2HData is
    /// checked against the bytes received so far, and on success written at
    /// its offset. No accepted byte lies outside [0, total), none is written
    /// twice, the accepted bytes are always the prefix [0, received), and an
    /// accepted LAST PDU means the whole buffer arrived.
    #[test]
    fn c2h_data_lands_inside_the_request(total in 0u32..65536, pdus in prop::collection::vec(c2h_pdu(65536), 1..12)) {
        let mut written = vec![0u8; total as usize];
        let mut received = 0u32;
        for (off, len, last, success) in pdus {
            let d = C2HData { command_id: 1, data_offset: off, data_length: len, last, success };
            if check_c2h_range(&d, received, total).is_err() {
                break; // the queue stops: nothing after it is received
            }
            let end = u64::from(off) + u64::from(len);
            prop_assert!(end <= u64::from(total), "accepted [{off}, {end}) outside {total}");
            for b in &mut written[off as usize..end as usize] {
                prop_assert_eq!(*b, 0, "byte written twice");
                *b = 1;
            }
            received += len;
            prop_assert!(written[..received as usize].iter().all(|&b| b == 1));
            prop_assert!(written[received as usize..].iter().all(|&b| b == 0));
            if last {
                prop_assert_eq!(received, total);
                break;
            }
        }
    }

    /// A read split anywhere into contiguous C2HData, LAST on the final one,
    /// is accepted whole: the checks refuse nothing a good target sends.
    #[test]
    fn contiguous_c2h_data_is_accepted(total in 1u32..1_000_000, cuts in prop::collection::vec(any::<u32>(), 0..8)) {
        let mut points: Vec<u32> = cuts.iter().map(|c| 1 + c % total).filter(|&p| p < total).collect();
        points.push(0);
        points.push(total);
        points.sort_unstable();
        points.dedup();
        let mut received = 0;
        for w in points.windows(2) {
            let last = w[1] == total;
            let d = C2HData { command_id: 1, data_offset: w[0], data_length: w[1] - w[0], last, success: false };
            prop_assert!(check_c2h_range(&d, received, total).is_ok(), "refused {:?} at {}", d, received);
            received = w[1];
        }
        prop_assert_eq!(received, total);
    }

    /// An accepted R2T asks only for data of the write not sent yet:
    /// non-empty, starting at the next unsent byte, inside the write.
    #[test]
    fn r2t_asks_only_for_unsent_data(total in 0u32..1_048_576, sent in 0u32..1_048_576, offset in any::<u32>(), length in any::<u32>()) {
        let sent = sent.min(total);
        let r = R2T { command_id: 1, ttag: 1, offset, length };
        if check_r2t(&r, sent, total).is_ok() {
            prop_assert!(length > 0);
            prop_assert_eq!(offset, sent);
            prop_assert!(u64::from(offset) + u64::from(length) <= u64::from(total));
        }
    }

    /// Any 24 header bytes: the parser never panics, and an accepted
    /// C2HData's data length fits its plen exactly (pdo + data + digest).
    #[test]
    fn parsed_c2h_header_matches_its_lengths(
        flags in any::<u8>(), pdo in prop_oneof![Just(24u8), any::<u8>()],
        plen in prop_oneof![24u32..70000, any::<u32>()], datal in prop_oneof![0u32..70000, any::<u32>()],
        ptype in prop_oneof![Just(7u8), Just(5u8), Just(9u8), any::<u8>()], hlen in prop_oneof![Just(24u8), any::<u8>()],
        rest in prop::collection::vec(any::<u8>(), 8), ddgst in any::<bool>(), consistent in any::<bool>(),
    ) {
        // Half the headers are well-formed but for what the other fields say.
        let (ptype, hlen, pdo, plen, flags) = if consistent {
            let dd = if ddgst { 4 } else { 0 };
            (7, 24, 24, 24u32.wrapping_add(datal % 70000).wrapping_add(dd), (flags & 0x0C) | if ddgst { 2 } else { 0 })
        } else {
            (ptype, hlen, pdo, plen, flags)
        };
        let datal = if consistent { datal % 70000 } else { datal };
        let mut b = vec![ptype, flags, hlen, pdo];
        b.extend_from_slice(&plen.to_le_bytes());
        // cccid and reserved, the data offset, the data length, reserved.
        b.extend_from_slice(&rest[..4]);
        b.extend_from_slice(&rest[4..]);
        b.extend_from_slice(&datal.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        let digests = Digests { header: false, data: ddgst };
        let parsed = parse_recv_header(&b, digests, &SoftCrc32c);
        if consistent && datal > 0 && flags & 0x0C != 0x08 {
            prop_assert!(matches!(parsed, Ok(RecvPdu::C2HData(_))), "{:?} refused: {:?}", b, parsed);
        }
        if let Ok(RecvPdu::C2HData(d)) = parsed {
            let dd = if ddgst { 4 } else { 0 };
            prop_assert!(d.data_length > 0);
            prop_assert_eq!(u64::from(pdo) + u64::from(d.data_length) + dd, u64::from(plen));
            prop_assert!(!d.success || d.last);
        }
    }
}
