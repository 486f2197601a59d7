// SPDX-License-Identifier: GPL-2.0
//! `/sys/kernel/debug/rnvme_tcp/queues`: per-queue io_work CPU and receive counters, so a
//! test or a benchmark can tell which context completed the commands
//! (io_work's recvmsg passes, or blk-mq pollers' read_sock pushes).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{debugfs, prelude::*};

/// Counters of one queue; relaxed atomics, read while the queue runs.
#[derive(Default)]
pub(crate) struct QueueStats {
    /// Receive passes io_work ran (pull, `sock_recvmsg()`).
    pub(crate) work_passes: AtomicU64,
    /// Commands those passes completed.
    pub(crate) work_completions: AtomicU64,
    /// blk-mq `poll` calls that ran the receive machine (push, `read_sock()`).
    pub(crate) polls: AtomicU64,
    /// Commands those polls completed.
    pub(crate) poll_completions: AtomicU64,
    /// `sock_recvmsg()` calls of the receive machine (pull mode only).
    pub(crate) recvmsg_calls: AtomicU64,
    /// `read_sock()` calls, from io_work (`read_sock=1`) or pollers (push).
    pub(crate) read_sock_calls: AtomicU64,
    /// Bytes every socket receive call returned (`sock_recvmsg()` and
    /// `read_sock()`), so `recv_bytes / (recvmsg_calls + read_sock_calls)`
    /// is the bytes per call.
    pub(crate) recv_bytes: AtomicU64,
    /// Batched header receive (`recv_batch`): receives that filled the
    /// staging buffer, PDU headers parsed from it, and C2HData payload
    /// bytes copied from it into requests. Only that path moves them.
    pub(crate) stage_fills: AtomicU64,
    pub(crate) stage_pdus: AtomicU64,
    pub(crate) stage_payload: AtomicU64,
    /// Receives of a payload's end that had the staging buffer behind the
    /// request's pages, for the headers that follow (`recv_tail`). Only
    /// that path moves it.
    pub(crate) stage_tails: AtomicU64,
    /// Digests ICResp negotiated for the current connection (0 or 1), so a
    /// test can tell a digest was really in use.
    pub(crate) hdr_digest: AtomicU64,
    pub(crate) data_digest: AtomicU64,
    /// kTLS expects no padding on this connection's records
    /// (`TLS_RX_EXPECT_NO_PAD`, 0 or 1): data records that fit in a
    /// receive into the request decrypt in place.
    pub(crate) tls_no_pad: AtomicU64,
    /// TLS NewSessionTickets the record-type policy consumed.
    pub(crate) tls_tickets: AtomicU64,
    /// TLS records that `read_sock()` refused (not data) and io_work
    /// handed to the recvmsg receive (`read_sock=1`).
    pub(crate) tls_handoffs: AtomicU64,
    /// io_work runs that found a poller receiving and left it the socket.
    pub(crate) work_recv_deferred: AtomicU64,
    /// io_work runs a poller queued when it let go of the receive side
    /// that io_work had wanted meanwhile.
    pub(crate) poll_kicks: AtomicU64,
}

impl QueueStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Records the digests of a new connection.
    pub(crate) fn set_digests(&self, header: bool, data: bool) {
        self.hdr_digest.store(u64::from(header), Ordering::Relaxed);
        self.data_digest.store(u64::from(data), Ordering::Relaxed);
    }
}

impl fmt::Display for QueueStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hdgst={} ddgst={} work_passes={} work_completions={} polls={} poll_completions={} \
             recvmsg_calls={} read_sock_calls={} recv_bytes={} stage_fills={} stage_pdus={} stage_payload={} \
             stage_tails={} tls_no_pad={} tls_tickets={} tls_handoffs={} work_recv_deferred={} poll_kicks={}",
            self.hdr_digest.load(Ordering::Relaxed),
            self.data_digest.load(Ordering::Relaxed),
            self.work_passes.load(Ordering::Relaxed),
            self.work_completions.load(Ordering::Relaxed),
            self.polls.load(Ordering::Relaxed),
            self.poll_completions.load(Ordering::Relaxed),
            self.recvmsg_calls.load(Ordering::Relaxed),
            self.read_sock_calls.load(Ordering::Relaxed),
            self.recv_bytes.load(Ordering::Relaxed),
            self.stage_fills.load(Ordering::Relaxed),
            self.stage_pdus.load(Ordering::Relaxed),
            self.stage_payload.load(Ordering::Relaxed),
            self.stage_tails.load(Ordering::Relaxed),
            self.tls_no_pad.load(Ordering::Relaxed),
            self.tls_tickets.load(Ordering::Relaxed),
            self.tls_handoffs.load(Ordering::Relaxed),
            self.work_recv_deferred.load(Ordering::Relaxed),
            self.poll_kicks.load(Ordering::Relaxed),
        )
    }
}

/// The contents of the `queues` file: one line per queue of every
/// controller, `nvmeN qid Q cpu=C <counters>` (`cpu=any`: io_work unbound).
pub(crate) struct QueuesFile;

impl fmt::Debug for QueuesFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::ctrl::write_queue_stats(f)
    }
}

/// The module's debugfs directory and its files; removed when dropped.
pub(crate) struct Debugfs {
    _queues: Pin<KBox<debugfs::File<QueuesFile>>>,
    _dir: debugfs::Dir,
}

impl Debugfs {
    pub(crate) fn new() -> Result<Self> {
        let dir = debugfs::Dir::new(c"rnvme_tcp");
        let queues = KBox::pin_init(dir.read_only_file(c"queues", QueuesFile), GFP_KERNEL)?;
        Ok(Self { _queues: queues, _dir: dir })
    }
}
