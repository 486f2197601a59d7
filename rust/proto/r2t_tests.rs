// SPDX-License-Identifier: GPL-2.0
//! Tests of the R2T hand-off table (`cargo test`).

use super::*;
use Slot::*;
use SlotAction as A;
use SlotEvent::*;

#[test]
fn r2t_after_the_command_is_sent_queues_the_request() {
    assert_eq!(transition(Sending, SendDone { more_due: true }, 1), Ok((Waiting, A::None)));
    assert_eq!(transition(Waiting, R2TArrived, 1), Ok((Received, A::QueueForSend)));
    assert_eq!(transition(Received, Taken, 1), Ok((Sending, A::SendH2C)));
}

#[test]
fn r2t_while_the_command_is_still_sending_is_taken_when_it_is_done() {
    assert_eq!(transition(Sending, R2TArrived, 2), Ok((Received, A::None)));
    assert_eq!(transition(Received, SendDone { more_due: true }, 2), Ok((Sending, A::SendH2C)));
}

#[test]
fn r2t_for_a_command_without_data_due_is_refused() {
    assert_eq!(transition(Sending, SendDone { more_due: false }, 3), Ok((Done, A::None)));
    assert_eq!(transition(Done, R2TArrived, 3), Err(ProtoError::UnexpectedR2T(3)));
    // Arrived early, but the send side then finds no data due.
    assert_eq!(transition(Sending, R2TArrived, 3), Ok((Received, A::None)));
    assert_eq!(transition(Received, SendDone { more_due: false }, 3), Err(ProtoError::UnexpectedR2T(3)));
}

#[test]
fn a_second_outstanding_r2t_is_refused() {
    assert_eq!(transition(Received, R2TArrived, 4), Err(ProtoError::DuplicateR2T(4)));
}

#[test]
fn a_write_in_several_r2ts_cycles_through_the_slot() {
    let mut s = Sending;
    for round in 0..4 {
        let steps = [
            (SendDone { more_due: true }, Waiting, A::None),
            (R2TArrived, Received, A::QueueForSend),
            (Taken, Sending, A::SendH2C),
        ];
        for (ev, want, act) in steps {
            assert_eq!(transition(s, ev, 5), Ok((want, act)), "round {round}, {ev:?}");
            s = want;
        }
    }
    assert_eq!(transition(s, SendDone { more_due: false }, 5), Ok((Done, A::None)));
}

#[test]
fn every_state_and_event_has_an_answer_and_never_leaves_the_slot_space() {
    for v in 0..=255u8 {
        let s = Slot::from_u8(v);
        for e in [R2TArrived, SendDone { more_due: true }, SendDone { more_due: false }, Taken] {
            if let Ok((n, _)) = transition(s, e, 0) {
                assert_eq!(Slot::from_u8(n as u8), n);
            }
        }
    }
}
