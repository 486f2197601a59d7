// SPDX-License-Identifier: GPL-2.0
//! The errno values the protocol core reports (positive, as in `uapi/asm-generic/errno*.h`).
//!
//! The kernel side turns them into `kernel::error::Error` with `Error::from_errno(-e)`.

/// I/O error.
pub const EIO: i32 = 5;
/// Try again: the socket has nothing more to give right now.
pub const EAGAIN: i32 = 11;
/// Invalid argument.
pub const EINVAL: i32 = 22;
/// Protocol error: the target sent something the protocol forbids.
pub const EPROTO: i32 = 71;
/// Bad message: a digest did not match.
pub const EBADMSG: i32 = 74;
/// Connection reset: the peer closed the stream.
pub const ECONNRESET: i32 = 104;
/// Transport endpoint is not connected.
pub const ENOTCONN: i32 = 107;
/// Cannot send after transport endpoint shutdown (the helpers' "peer sent FIN").
pub const ESHUTDOWN: i32 = 108;
/// Key has expired: kTLS after a KeyUpdate, until new keys are set.
pub const EKEYEXPIRED: i32 = 127;
