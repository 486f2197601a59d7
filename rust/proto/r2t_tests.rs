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
        for e in [R2TArrived, SendDone { more_due: true }, SendDone { more_due: false }, Taken, ResponseArrived] {
            if let Ok((n, _)) = transition(s, e, 0) {
                assert_eq!(Slot::from_u8(n as u8), n);
            }
        }
    }
}

#[test]
fn a_response_while_the_send_side_owns_the_request_is_held_for_it() {
    // While the capsule or H2CData is still going out.
    assert_eq!(transition(Sending, ResponseArrived, 6), Ok((Responded, A::Hold)));
    assert_eq!(transition(Responded, SendDone { more_due: true }, 6), Ok((Done, A::Complete)));
    assert_eq!(transition(Responded, SendDone { more_due: false }, 6), Ok((Done, A::Complete)));
    // R2T recorded and the request queued for the send side, then the Response.
    assert_eq!(transition(Received, ResponseArrived, 7), Ok((Responded, A::Hold)));
    assert_eq!(transition(Responded, Taken, 7), Ok((Done, A::Complete)));
}

#[test]
fn a_response_when_nobody_sends_completes_at_once() {
    // Waiting: data of the write is still due, so the completion is early.
    assert_eq!(transition(Waiting, ResponseArrived, 8), Ok((Done, A::CompleteEarly)));
    assert_eq!(transition(Done, ResponseArrived, 8), Ok((Done, A::Complete)));
}

#[test]
fn a_held_response_takes_no_r2t_and_no_second_response() {
    assert_eq!(transition(Responded, R2TArrived, 9), Err(ProtoError::UnexpectedR2T(9)));
    assert_eq!(transition(Responded, ResponseArrived, 9), Err(ProtoError::DuplicateResponse(9)));
}

/// Whatever order the two sides' events come in, the command is completed
/// exactly once, and never while the send side still owns the request.
#[test]
fn every_interleaving_completes_once_and_never_under_the_send_side() {
    // The send side's script for a write sent in one R2T: command sent
    // (more due), then the H2CData sent (none due). The receive side: an
    // R2T, then the Response. Every interleaving that the protocol allows.
    let send = [SendDone { more_due: true }, Taken, SendDone { more_due: false }];
    let recv = [R2TArrived, ResponseArrived];
    // Choose the positions of the receive events among 5 steps.
    for a in 0..5 {
        for b in (a + 1)..5 {
            let (mut s, mut si, mut ri, mut completions) = (Sending, 0, 0, 0);
            let mut send_owns = true;
            for step in 0..5 {
                let ev = if step == a || step == b {
                    ri += 1;
                    recv[ri - 1]
                } else {
                    si += 1;
                    send[si - 1]
                };
                // The send side only takes a request queued for it.
                if ev == Taken && s != Received && s != Responded {
                    completions = -100;
                    break;
                }
                let Ok((n, act)) = transition(s, ev, 10) else {
                    completions = -100;
                    break;
                };
                match ev {
                    SendDone { .. } => send_owns = false,
                    Taken => send_owns = true,
                    _ => {}
                }
                if act == A::SendH2C {
                    send_owns = true;
                }
                if act == A::Complete || act == A::CompleteEarly {
                    assert!(!send_owns || matches!(ev, SendDone { .. } | Taken), "completed under the send side: {a} {b}");
                    completions += 1;
                }
                s = n;
            }
            // Some orders are not protocol-valid (Taken before any R2T):
            // those stop early; every valid one completes exactly once.
            if completions >= 0 {
                assert_eq!(completions, 1, "interleaving {a} {b}");
            }
        }
    }
}
