// SPDX-License-Identifier: GPL-2.0
//! The status a command completes with.
//!
//! A command ends with a Response capsule or with the last C2HData PDU of
//! a read when the target set SUCCESS. Either way the host reports the
//! first error it saw itself (a data digest mismatch) over the target's
//! status, and a command that moves data to the host must have received
//! all of it: NVMe has no short read. A target that claims success before
//! sending every byte gets a transfer error, never its own status, so the
//! caller never sees pages that were not written as if they held the data
//! (C: `nvme_tcp_data_in_short()`, which the C driver applies to
//! `REQ_OP_READ` only; here every command that transfers data to the host
//! counts, admin commands such as Identify included).

/// `NVME_SC_DATA_XFER_ERROR` as it sits in a completion's status field
/// (the status code shifted past the phase tag).
pub const STATUS_DATA_XFER_ERROR: u16 = 0x4 << 1;

/// How a command completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// With this status field (0: success).
    Status(u16),
    /// A success before all data arrived: `got` of `want` bytes. The
    /// command completes with [`STATUS_DATA_XFER_ERROR`].
    ShortRead { got: u32, want: u32 },
}

impl Completion {
    /// The status field to complete the command with.
    pub fn status(self) -> u16 {
        match self {
            Self::Status(s) => s,
            Self::ShortRead { .. } => STATUS_DATA_XFER_ERROR,
        }
    }
}

/// Decides how a command completes. `host_status`: the status the host
/// recorded while receiving (0, or a transfer error after a data digest
/// mismatch); `target_status`: the status field the target sent (the
/// Response's, or 0 for a C2HData with SUCCESS); `to_host`: bytes the
/// command moves to the host (0 for writes and commands without data);
/// `received`: bytes of it that arrived, in order.
pub fn complete(host_status: u16, target_status: u16, to_host: u32, received: u32) -> Completion {
    let status = if host_status != 0 { host_status } else { target_status };
    // An error status stands: the target said the data is not valid.
    if status >> 1 != 0 || to_host == 0 || received == to_host {
        return Completion::Status(status);
    }
    Completion::ShortRead { got: received, want: to_host }
}

/// The status of a write whose completion arrived while some of its data
/// was still to be sent (the target answered before it had the data,
/// before the H2CData of an R2T it asked for, or before it asked for all
/// of the data with R2Ts): an error status stands, but
/// a success becomes a transfer error, never an acknowledged write whose
/// data the target never received (nvme-core retries it).
pub fn early_write(target_status: u16) -> u16 {
    if target_status >> 1 != 0 { target_status } else { STATUS_DATA_XFER_ERROR }
}

#[cfg(test)]
#[path = "completion_tests.rs"]
mod tests;
