// SPDX-License-Identifier: GPL-2.0
//! Tests of the completion status decision (`cargo test`).

use super::*;

#[test]
fn a_read_with_all_its_data_takes_the_target_status() {
    assert_eq!(complete(0, 0, 4096, 4096), Completion::Status(0));
    assert_eq!(complete(0, 0x2 << 1, 4096, 4096), Completion::Status(0x2 << 1));
}

#[test]
fn commands_without_data_to_the_host_take_the_target_status() {
    // A write, a flush, a Fabrics Connect: nothing to receive.
    assert_eq!(complete(0, 0, 0, 0), Completion::Status(0));
    assert_eq!(complete(0, 0x1 << 1 | 1, 0, 0), Completion::Status(0x1 << 1 | 1));
}

#[test]
fn success_before_all_data_is_a_transfer_error() {
    for got in [0, 1, 512, 4095] {
        let c = complete(0, 0, 4096, got);
        assert_eq!(c, Completion::ShortRead { got, want: 4096 });
        assert_eq!(c.status(), STATUS_DATA_XFER_ERROR);
    }
    // The phase tag (bit 0) alone is still success.
    assert_eq!(complete(0, 1, 4096, 0).status(), STATUS_DATA_XFER_ERROR);
}

#[test]
fn an_error_status_stands_even_without_data() {
    // The target failed the read: its status, not a transfer error.
    assert_eq!(complete(0, 0x81 << 1, 4096, 0), Completion::Status(0x81 << 1));
}

#[test]
fn the_host_status_wins_over_the_target_status() {
    // A data digest error was recorded: the target's success does not hide it.
    assert_eq!(complete(STATUS_DATA_XFER_ERROR, 0, 4096, 4096), Completion::Status(STATUS_DATA_XFER_ERROR));
    assert_eq!(complete(STATUS_DATA_XFER_ERROR, 0x2 << 1, 4096, 10), Completion::Status(STATUS_DATA_XFER_ERROR));
}

#[test]
fn a_write_answered_before_its_data_is_never_acknowledged() {
    assert_eq!(early_write(0), STATUS_DATA_XFER_ERROR);
    // The phase tag alone is not an error.
    assert_eq!(early_write(1), STATUS_DATA_XFER_ERROR);
    // The target's own error stands.
    assert_eq!(early_write(0x2 << 1), 0x2 << 1);
    assert_eq!(early_write(0x80 << 1 | 1), 0x80 << 1 | 1);
}
