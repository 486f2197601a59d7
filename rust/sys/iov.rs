// SPDX-License-Identifier: GPL-2.0
//! A request's data pages as `iov_iter`s: where C2HData payload is received
//! and H2CData / in-capsule payload is sent from.
//!
//! The types here make "payload goes only into the request's own pages" a
//! property of the types: the only destination the socket layer is ever
//! given for data is a [`DataPhase`], and a `DataPhase` is only ever a copy
//! of a [`RqData`] iterator over the request's bios (cf. the kernel's
//! `rust/kernel/iov.rs`).

use super::bindings as nb;
use super::socket::TcpSocket;
use kernel::{bindings as kb, prelude::*};

/// The kernel's `crc32c()` (the NVMe/TCP header and data digests).
pub(crate) struct KernelCrc32c;

impl crate::proto::crc::Crc32c for KernelCrc32c {
    fn update(&self, crc: u32, data: &[u8]) -> u32 {
        // SAFETY: `data` is a valid slice for the call.
        unsafe { nb::crc32c(crc, data.as_ptr().cast(), data.len()) }
    }
}

/// An iterator with no bytes (a zero-length kvec).
fn empty_iter() -> kb::iov_iter {
    kb::iov_iter::default()
}

/// A copy of an iterator's state, as C copies `struct iov_iter` by value.
fn copy_iter(it: &kb::iov_iter) -> kb::iov_iter {
    // SAFETY: `iov_iter` is a plain C struct (pointers and counts into
    // memory it does not own); a bitwise copy is how C duplicates it.
    unsafe { core::ptr::read(it) }
}

/// `iov_iter_count()`: the bytes the iterator still covers.
fn iter_count(it: &kb::iov_iter) -> usize {
    // SAFETY: every iterator here is a bvec or kvec one (or empty), whose
    // `count` is this member of the union.
    unsafe { it.__bindgen_anon_1.__bindgen_anon_1.as_ref().count }
}

/// `iov_iter_truncate()`: the iterator covers at most `max` bytes.
fn iter_truncate(it: &mut kb::iov_iter, max: usize) {
    if iter_count(it) > max {
        // SAFETY: as in `iter_count`; shortening only narrows what the
        // iterator covers.
        unsafe { it.__bindgen_anon_1.__bindgen_anon_1.as_mut().count = max };
    }
}

/// The step [`iter_crc`] runs on each mapped piece: extends the crc at
/// `priv_`.
///
/// # Safety
///
/// `base` has `len` readable bytes; `priv_` is the `u32` of `iter_crc`.
unsafe extern "C" fn crc_step(base: *mut c_void, _progress: usize, len: usize, priv_: *mut c_void, _priv2: *mut c_void) -> usize {
    let crc = priv_.cast::<u32>();
    // SAFETY: by the caller: `crc` is `iter_crc`'s local, only written
    // here, and `base` has `len` bytes (mapped by the iteration).
    unsafe { *crc = nb::crc32c(*crc, base, len) };
    // Nothing left over: the whole piece was used.
    0
}

/// crc32c over the first `n` bytes `it` covers, continuing `crc`.
fn iter_crc(it: &kb::iov_iter, n: usize, crc: u32) -> u32 {
    let mut crc = crc;
    // The iteration advances its iterator: run it on a copy.
    let mut tmp = copy_iter(it);
    // `tmp` is a valid bvec/kvec iterator with at least `n` bytes (callers
    // pass the state from before a transfer of `n` bytes), over pages that
    // stay pinned meanwhile.
    // SAFETY: as said; `crc_step` gets `crc`, alive for the call.
    unsafe {
        nb::rnvme_iterate_and_advance_kernel(&raw mut tmp, n, (&raw mut crc).cast(), core::ptr::null_mut(), Some(crc_step))
    };
    crc
}

/// The step [`DataPhase::rewind_tls`] runs: copies each mapped piece to
/// its place in the buffer at `priv_`.
///
/// # Safety
///
/// `base` has `len` readable bytes; `priv_` is a buffer with room for
/// `progress + len` bytes, not otherwise used during the iteration.
unsafe extern "C" fn copy_step(base: *mut c_void, progress: usize, len: usize, priv_: *mut c_void, _priv2: *mut c_void) -> usize {
    // SAFETY: by the caller: both ranges are valid, and distinct (a stack
    // buffer and request pages).
    unsafe { core::ptr::copy_nonoverlapping(base.cast::<u8>(), priv_.cast::<u8>().add(progress), len) };
    0
}

/// `sendpages_ok()` on the first `len` bytes of a bvec iterator: whether
/// they may be sent by reference (`MSG_SPLICE_PAGES`), as
/// `nvme_tcp_try_send_data()` asks. Slab pages (a discard's range list)
/// and pages without a reference count may not; nor anything not a bvec.
fn iter_sendpages_ok(it: &kb::iov_iter, len: usize) -> bool {
    if u32::from(it.iter_type) != kb::iter_type_ITER_BVEC {
        return false;
    }
    // SAFETY: a bvec iterator: `bvec` and `nr_segs` are these union
    // members, `bvec` an array of `nr_segs` entries.
    let (mut bv, mut nr) = unsafe { (it.__bindgen_anon_1.__bindgen_anon_1.as_ref().__bindgen_anon_1.bvec, it.__bindgen_anon_2.nr_segs) };
    let mut skip = it.iov_offset;
    let mut len = len;
    while len > 0 && nr > 0 {
        // SAFETY: `bv` is within the array (`nr` entries left).
        let b = unsafe { *bv };
        let seg = (b.bv_len as usize).saturating_sub(skip).min(len);
        // SAFETY: the page range is within the bvec entry, whose pages
        // the request holds.
        if !unsafe { nb::rnvme_sendpages_ok(b.bv_page.cast(), seg, b.bv_offset as usize + skip) } {
            return false;
        }
        len -= seg;
        // SAFETY: at most one past the last entry, never read then.
        bv = unsafe { bv.add(1) };
        nr -= 1;
        skip = 0;
    }
    true
}

/// The data of an in-flight request, walked bio by bio (C: the request's
/// `curr_bio` and `iter`).
///
/// # Invariants
///
/// Either `bio` is null and `iter` is empty, or `rq` is an in-flight
/// request, `bio` one of its bios and `iter` an iterator of direction `dir`
/// over (what is left of) `bio` or the request's special payload. The
/// pages stay pinned until the request completes, and the owner clears or
/// restarts this before reusing the request.
pub(crate) struct RqData {
    rq: *mut kb::request,
    bio: *mut kb::bio,
    iter: kb::iov_iter,
    dir: c_uint,
}

impl RqData {
    /// No data (a command without payload, or not started).
    pub(crate) fn none() -> Self {
        Self { rq: core::ptr::null_mut(), bio: core::ptr::null_mut(), iter: empty_iter(), dir: kb::ITER_DEST }
    }

    /// Starts over at the first bio of `rq`: a source for a write, a
    /// destination for a read.
    ///
    /// # Safety
    ///
    /// `rq` is a started request with `len` payload bytes that stays in
    /// flight until this is cleared or started again.
    pub(crate) unsafe fn start(&mut self, rq: *mut kb::request, write: bool, len: u32) {
        *self = Self::none();
        // SAFETY: the caller guarantees `rq` is valid.
        let bio = unsafe { (*rq).bio };
        if bio.is_null() || len == 0 {
            return;
        }
        self.rq = rq;
        self.bio = bio;
        self.dir = if write { kb::ITER_SOURCE } else { kb::ITER_DEST };
        self.init_iter();
    }

    /// Forgets the request (its data is no longer ours to touch).
    pub(crate) fn clear(&mut self) {
        *self = Self::none();
    }

    /// An iterator over the current bio, or over the request's special
    /// payload (a discard's range list), as `nvme_tcp_init_iter()`.
    fn init_iter(&mut self) {
        let special = 1 << kb::rqf_flags___RQF_SPECIAL_PAYLOAD;
        // SAFETY: by the invariant `rq` is in flight and `bio` one of its
        // bios; both stay valid and unchanged while it is (blk-mq only
        // advances a bio's own iterator at completion).
        unsafe {
            let rq = self.rq;
            if (*rq).rq_flags & special != 0 {
                // The flag says the union holds the vector (not the elevator's
                // rb_node); `blk_rq_payload_bytes()` of such a request is its.
                let vec = &raw const (*rq).__bindgen_anon_3.special_vec;
                kb::iov_iter_bvec(&raw mut self.iter, self.dir, vec, 1, (*vec).bv_len as usize);
                self.iter.iov_offset = 0;
            } else {
                let bio = self.bio;
                let vecs = (*bio).bi_io_vec;
                let bi = (*bio).bi_iter;
                // As `bio_for_each_bvec()` counts them: the multi-page
                // vectors from `bi_idx` (the first from `bi_offset`) that
                // hold the bio's `bi_size` bytes. Requests with payload are
                // reads and writes, whose bios advance through their vectors.
                let mut nr = 0usize;
                let (mut idx, mut left, mut skip) = (bi.bi_idx as usize, bi.bi_size, bi.bi_offset);
                while left > 0 {
                    let seg = (*vecs.add(idx)).bv_len.saturating_sub(skip).min(left);
                    left -= seg;
                    nr += 1;
                    idx += 1;
                    skip = 0;
                }
                kb::iov_iter_bvec(&raw mut self.iter, self.dir, vecs.add(bi.bi_idx as usize), nr, bi.bi_size as usize);
                self.iter.iov_offset = bi.bi_offset as usize;
            }
        }
    }

    /// Bytes left in the current bio.
    pub(crate) fn left_in_bio(&self) -> usize {
        iter_count(&self.iter)
    }

    /// Moves to the next bio when the current one is used up. Returns
    /// false when there is none: the target sent or asked for more than
    /// the request holds.
    pub(crate) fn next_bio_if_done(&mut self) -> bool {
        if self.left_in_bio() != 0 {
            return true;
        }
        if self.bio.is_null() {
            return false;
        }
        // SAFETY: by the invariant `bio` is a bio of the in-flight request.
        let next = unsafe { (*self.bio).bi_next };
        if next.is_null() {
            return false;
        }
        self.bio = next;
        self.init_iter();
        true
    }

    fn advance(&mut self, n: usize) {
        // SAFETY: `iter` is valid; iov_iter_advance caps at its count.
        unsafe { kb::iov_iter_advance(&raw mut self.iter, n) };
    }

    /// Sends up to `len` bytes of the current bio without blocking (pages
    /// spliced, not copied, where every one of them may be, as the C
    /// driver's MSG_SPLICE_PAGES), extending `crc` over what was sent.
    /// Returns the bytes sent, or a negative errno (`-EAGAIN` when the
    /// socket is full).
    pub(crate) fn send(&mut self, sock: &TcpSocket, len: usize, more: bool, crc: Option<&mut u32>) -> Result<usize, c_int> {
        if self.dir != kb::ITER_SOURCE || !self.next_bio_if_done() {
            return Err(-(kb::EIO as c_int));
        }
        let mut msg = kb::msghdr { msg_iter: copy_iter(&self.iter), ..Default::default() };
        let len = len.min(iter_count(&msg.msg_iter));
        iter_truncate(&mut msg.msg_iter, len);
        let before = copy_iter(&msg.msg_iter);
        let mut flags = kb::MSG_DONTWAIT | if more { kb::MSG_MORE } else { kb::MSG_EOR };
        if iter_sendpages_ok(&msg.msg_iter, len) {
            flags |= kb::MSG_SPLICE_PAGES;
        }
        msg.msg_flags = flags;
        // SAFETY: the iterator covers the request's pages, pinned while it
        // is in flight (type invariant); the socket is valid.
        let n = unsafe { kb::sock_sendmsg(sock.as_raw(), &mut msg) };
        if n <= 0 {
            return Err(if n == 0 { -(kb::EAGAIN as c_int) } else { n });
        }
        let n = n as usize;
        if let Some(c) = crc {
            *c = iter_crc(&before, n, *c);
        }
        self.advance(n);
        Ok(n)
    }
}

/// The most request segments [`DataPhase::recv_with_tail`] puts in front
/// of the tail's: a 4 KiB read's payload is one or two, a 128 KiB one's
/// end up to 32 single pages; a payload end over more is received alone.
pub(crate) const TAIL_SEGS: usize = 32;

/// The destination of one C2HData phase (C: the seed's data-phase
/// `msghdr`): set up once per phase, and again only when the payload goes
/// on in the request's next bio, then received into `while` it has room.
///
/// # Invariants
///
/// `msg.msg_iter` is empty or a copy of a [`RqData`] iterator of direction
/// `ITER_DEST`, truncated, whose request the owner keeps in flight until
/// [`DataPhase::end`].
pub(crate) struct DataPhase {
    msg: kb::msghdr,
    /// The segments of a receive with a tail ([`Self::recv_with_tail`]),
    /// here rather than on io_work's stack; only that receive uses them.
    tail_vecs: [kb::bio_vec; TAIL_SEGS + 1],
}

impl DataPhase {
    /// No phase: nothing may be received as data.
    pub(crate) fn new() -> Self {
        Self { msg: kb::msghdr::default(), tail_vecs: [kb::bio_vec::default(); TAIL_SEGS + 1] }
    }

    /// Begins a phase into the current bio of `data`. Fails (`-EIO`) if
    /// `data` is not a read's destination.
    pub(crate) fn begin(&mut self, data: &RqData) -> Result<(), c_int> {
        if data.dir != kb::ITER_DEST {
            return Err(-(kb::EIO as c_int));
        }
        self.msg = kb::msghdr { msg_iter: copy_iter(&data.iter), ..Default::default() };
        Ok(())
    }

    /// Ends the phase: the request may complete.
    pub(crate) fn end(&mut self) {
        self.msg = kb::msghdr::default();
    }

    /// Room left in the phase's current bio.
    pub(crate) fn room(&self) -> usize {
        iter_count(&self.msg.msg_iter)
    }

    /// Makes room when the current bio is full: the phase goes on in the
    /// request's next one. False when the request has no more room.
    pub(crate) fn ensure_room(&mut self, data: &mut RqData) -> Result<(), c_int> {
        if self.room() == 0 {
            if !data.next_bio_if_done() {
                return Err(-(kb::EIO as c_int));
            }
            self.begin(data)?;
        }
        Ok(())
    }

    /// Receives up to `max` payload bytes with `MSG_DONTWAIT` into the
    /// request's pages, extending `crc` over what arrived and keeping
    /// `data` in step. Returns the bytes received (0: the peer closed) or
    /// a negative errno (`-EAGAIN`: nothing queued).
    pub(crate) fn recv(&mut self, data: &mut RqData, sock: &TcpSocket, max: usize, crc: Option<&mut u32>) -> Result<usize, c_int> {
        self.ensure_room(data)?;
        self.truncate(max);
        let before = copy_iter(&self.msg.msg_iter);
        // SAFETY: the msghdr's iterator points into the request's pages
        // (type invariant); the socket is valid.
        let n = unsafe { kb::sock_recvmsg(sock.as_raw(), &mut self.msg, kb::MSG_DONTWAIT as c_int) };
        if n < 0 {
            return Err(n);
        }
        Ok(self.received(data, &before, n as usize, crc))
    }

    /// Receives the last `len` payload bytes of the phase into the
    /// request's pages and, in the same `sock_recvmsg()`, up to
    /// `tail.len()` bytes of what follows them on the stream into `tail`
    /// (C: one iterator over the bio's segments and one more for the
    /// buffer). Returns `(payload, tail)` bytes, as [`Self::recv`] its
    /// count (`-EAGAIN`: nothing queued); `tail` gets bytes only once the
    /// payload is complete, because TCP fills an iterator in order.
    ///
    /// `None` when one iterator cannot cover both: the payload goes on past
    /// the current bio or over more than [`TAIL_SEGS`] segments, the phase
    /// is not a bvec one, or `tail` is not direct-mapped memory (a page
    /// of it is needed for its segment); the caller receives the payload
    /// alone.
    pub(crate) fn recv_with_tail(
        &mut self,
        data: &mut RqData,
        sock: &TcpSocket,
        len: usize,
        tail: &mut [u8],
        crc: Option<&mut u32>,
    ) -> Option<Result<(usize, usize), c_int>> {
        if let Err(e) = self.ensure_room(data) {
            return Some(Err(e));
        }
        let it = &self.msg.msg_iter;
        if len == 0 || len > iter_count(it) || tail.is_empty() || u32::from(it.iter_type) != kb::iter_type_ITER_BVEC {
            return None;
        }
        let tail_len = u32::try_from(tail.len()).ok()?;
        let first = tail.as_mut_ptr();
        // SAFETY: `tail` is a valid slice: its last byte is in it.
        let last = unsafe { first.add(tail.len() - 1) };
        // SAFETY: `virt_addr_valid()` only computes on the address.
        if !unsafe { nb::rnvme_virt_addr_valid(first.cast()) && nb::rnvme_virt_addr_valid(last.cast()) } {
            return None;
        }
        let vecs = &mut self.tail_vecs;
        // SAFETY: a bvec iterator: `bvec` and `nr_segs` are these union
        // members, `bvec` an array of `nr_segs` entries.
        let (mut bv, mut nr) = unsafe { (it.__bindgen_anon_1.__bindgen_anon_1.as_ref().__bindgen_anon_1.bvec, it.__bindgen_anon_2.nr_segs) };
        let mut skip = it.iov_offset;
        let mut left = len;
        let mut k = 0;
        while left > 0 {
            if nr == 0 || k == TAIL_SEGS {
                return None;
            }
            // SAFETY: `bv` is within the array (`nr` entries left).
            let b = unsafe { *bv };
            let seg = (b.bv_len as usize).saturating_sub(skip).min(left);
            if seg > 0 {
                // `skip < bv_len` and `seg <= bv_len - skip`: both fit in u32.
                vecs[k] = kb::bio_vec { bv_page: b.bv_page, bv_offset: b.bv_offset + skip as u32, bv_len: seg as u32 };
                k += 1;
                left -= seg;
                skip = 0;
            } else {
                skip -= (b.bv_len as usize).min(skip);
            }
            // SAFETY: at most one past the last entry, never read then.
            bv = unsafe { bv.add(1) };
            nr -= 1;
        }
        // The direct map is linear: from `first` to `last` the bytes lie
        // in physically contiguous pages, so one (multi-page) segment from
        // `first`'s page covers them, as bvec iteration allows.
        // SAFETY: `first` is direct-mapped (checked above).
        let page = unsafe { nb::rnvme_virt_to_page(first.cast()) };
        vecs[k] = kb::bio_vec { bv_page: page.cast(), bv_offset: (first as usize % kb::PAGE_SIZE) as u32, bv_len: tail_len };
        let mut msg = kb::msghdr::default();
        // SAFETY: `vecs` lives across the receive and holds `k + 1`
        // entries covering `len + tail.len()` bytes.
        unsafe { kb::iov_iter_bvec(&raw mut msg.msg_iter, kb::ITER_DEST, vecs.as_ptr(), k + 1, len + tail.len()) };
        let before = copy_iter(&self.msg.msg_iter);
        // SAFETY: the iterator covers `len` bytes of the request's pinned
        // pages (the phase's, type invariant) and then `tail`, which we
        // borrow mutably for the call, so nothing else reads or writes it;
        // the socket is valid.
        let n = unsafe { kb::sock_recvmsg(sock.as_raw(), &mut msg, kb::MSG_DONTWAIT as c_int) };
        if n < 0 {
            return Some(Err(n));
        }
        let n = n as usize;
        let p = n.min(len);
        // SAFETY: the phase's iterator is valid and has `len >= p` bytes:
        // it moves past the payload the receive placed, as its own would.
        unsafe { kb::iov_iter_advance(&raw mut self.msg.msg_iter, p) };
        let p = self.received(data, &before, p, crc);
        Some(Ok((p, n - p)))
    }

    /// Copies up to `max` payload bytes from a pushed skb range, as
    /// [`Self::recv`] does from the socket.
    pub(crate) fn copy_from(&mut self, data: &mut RqData, src: &mut SkbRange, max: usize, crc: Option<&mut u32>) -> Result<usize, c_int> {
        self.ensure_room(data)?;
        let (off, n) = src.take(max.min(self.room()))?;
        self.truncate(n);
        let before = copy_iter(&self.msg.msg_iter);
        // SAFETY: by `SkbRange`'s invariant the skb is held and has `n`
        // bytes at `off`; the iterator covers `n` bytes of the request's
        // pages and advances past them, as recvmsg's would.
        let r = unsafe { kb::skb_copy_datagram_iter(src.skb, off, &raw mut self.msg.msg_iter, n as c_int) };
        if r < 0 {
            return Err(r);
        }
        Ok(self.received(data, &before, n, crc))
    }

    /// Places `bytes` (payload received into the queue's staging buffer)
    /// into the request's pages, moving to its next bio when the current
    /// one is full, keeping `data` in step. All of them, or `-EIO` when
    /// the request has no room (the caller checked the range: a bug).
    pub(crate) fn copy_in(&mut self, data: &mut RqData, bytes: &[u8]) -> Result<(), c_int> {
        let mut left = bytes;
        while !left.is_empty() {
            self.ensure_room(data)?;
            let k = left.len().min(self.room());
            // SAFETY: `left` has `k` readable bytes; the iterator covers at
            // least `k` bytes of the request's pinned pages (type
            // invariant, `room`) and advances past what it copies.
            let n = unsafe { kb::_copy_to_iter(left.as_ptr().cast(), k, &raw mut self.msg.msg_iter) };
            if n == 0 {
                return Err(-(kb::EIO as c_int));
            }
            data.advance(n);
            left = &left[n.min(left.len())..];
        }
        Ok(())
    }

    fn truncate(&mut self, max: usize) {
        iter_truncate(&mut self.msg.msg_iter, max);
    }

    fn received(&mut self, data: &mut RqData, before: &kb::iov_iter, n: usize, crc: Option<&mut u32>) -> usize {
        if let Some(c) = crc {
            *c = iter_crc(before, n, *c);
        }
        data.advance(n);
        n
    }
}

/// A byte range of one skb that `read_sock()` handed to its actor.
///
/// # Invariants
///
/// `skb` is held by `read_sock()` for as long as this exists and has at
/// least `left` bytes from `off`; `off + left` fits in `u32`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SkbRange {
    skb: *const kb::sk_buff,
    off: u32,
    left: usize,
}

impl SkbRange {
    /// # Safety
    ///
    /// `skb` has `len` bytes from `off` and stays held until the value is
    /// dropped (the duration of a `read_sock()` actor call).
    pub(crate) unsafe fn new(skb: *const kb::sk_buff, off: c_uint, len: usize) -> Self {
        let left = len.min((u32::MAX - off) as usize).min(c_int::MAX as usize);
        Self { skb, off, left }
    }

    /// Bytes not taken yet.
    pub(crate) fn left(&self) -> usize {
        self.left
    }

    /// Takes up to `max` bytes: `(offset, count)`, or `-EAGAIN` once used up.
    fn take(&mut self, max: usize) -> Result<(c_int, usize), c_int> {
        let n = max.min(self.left);
        if n == 0 {
            return Err(-(kb::EAGAIN as c_int));
        }
        let Ok(o) = c_int::try_from(self.off) else {
            return Err(-(kb::EINVAL as c_int));
        };
        // n <= left, and off + left fits in u32 (invariant).
        self.off += n as u32;
        self.left -= n;
        Ok((o, n))
    }

    /// Copies up to `buf.len()` bytes into `buf` (a PDU header).
    pub(crate) fn copy_to(&mut self, buf: &mut [u8]) -> Result<usize, c_int> {
        let (off, n) = self.take(buf.len())?;
        // SAFETY: the skb is held and has `n` bytes at `off` (invariant);
        // `buf` has room for `n` (take caps it).
        let r = unsafe { kb::skb_copy_bits(self.skb, off, buf.as_mut_ptr().cast(), n as c_int) };
        if r < 0 { Err(r) } else { Ok(n) }
    }
}

/// Where a data phase stood before a receive on a TLS queue: the bytes it
/// placed are accounted only once their record type is known, as payload
/// ([`DataPhase::commit_tls`]) or as a record that is not data, which the
/// phase rewinds past ([`DataPhase::rewind_tls`]).
///
/// # Invariants
///
/// `before` is the phase's iterator from before the receive that placed
/// `n` bytes, over the same pinned request pages.
pub(crate) struct PhaseMark {
    before: kb::iov_iter,
    n: usize,
}

impl DataPhase {
    /// [`Self::recv`] on a TLS queue: up to `max` bytes into the request's
    /// pages with room for the record-type control message, placed but not
    /// accounted; the mark says where the phase stood.
    pub(crate) fn recv_tls(
        &mut self,
        data: &mut RqData,
        sock: &TcpSocket,
        max: usize,
    ) -> Result<(crate::proto::tls::Got, PhaseMark), c_int> {
        self.ensure_room(data)?;
        self.truncate(max);
        let before = copy_iter(&self.msg.msg_iter);
        let got = sock.recvmsg_record(&mut self.msg, kb::MSG_DONTWAIT as c_int)?;
        // INVARIANT: taken just before the receive that placed `got.n`.
        Ok((got, PhaseMark { before, n: got.n }))
    }

    /// The marked bytes are payload: the phase keeps its place past them,
    /// `crc` covers them, `data` moves on. Returns how many.
    pub(crate) fn commit_tls(&mut self, data: &mut RqData, mark: PhaseMark, crc: Option<&mut u32>) -> usize {
        self.received(data, &mark.before, mark.n, crc)
    }

    /// The marked bytes belong to a record that is not data: `sink` gets
    /// them, copied out of the pages, and the phase goes back to where it
    /// stood, so they count neither as payload nor in the data digest (the
    /// payload that follows overwrites them).
    pub(crate) fn rewind_tls(&mut self, mark: PhaseMark, sink: &mut dyn FnMut(&[u8])) {
        let mut it = copy_iter(&mark.before);
        let mut left = mark.n;
        let mut buf = [0u8; 64];
        while left > 0 {
            let k = left.min(buf.len());
            // `it` is a private copy of an iterator over the request's
            // pinned pages with at least `n` bytes (`PhaseMark`'s invariant).
            // SAFETY: as said; `copy_step` gets `buf`, with room for `k`.
            let got = unsafe {
                nb::rnvme_iterate_and_advance_kernel(&raw mut it, k, buf.as_mut_ptr().cast(), core::ptr::null_mut(), Some(copy_step))
            };
            if got == 0 {
                break;
            }
            sink(&buf[..got.min(k)]);
            left -= got.min(k);
        }
        self.msg.msg_iter = mark.before;
    }
}
