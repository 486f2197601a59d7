#!/usr/bin/env python3
# A small scriptable NVMe/TCP target for the VM tests: it serves one NVM
# controller with one namespace held in memory (a bytearray), on
# 127.0.0.1:PORT, one thread per TCP connection (the admin queue and each I/O
# queue connect on their own). It answers ICReq with the digests the host
# asks for, Fabrics Connect (qid from the command), Property Get/Set,
# Identify, Set/Get Features, Get Log Page (zeros), Keep Alive, keeps the
# AER outstanding, and does Read/Write from memory: writes in-capsule or
# through R2T/H2CData (several R2Ts per write with --r2t-chunks), reads in
# one or several C2HData (--c2h-chunks; every other read ends with the
# SUCCESS flag, the others with a Response). Header and data digests are
# crc32c, computed here.
#
# --case NAME makes it misbehave once: on I/O queue --qid (any if 0), at the
# --after'th command of the kind the case needs (reads for C2HData cases,
# R2T writes for R2T cases, in-capsule writes for r2t-unsolicited), it sends
# the bad thing NAME says (CASES below) and prints "fired NAME qid Q cid C".
# The icresp-* cases fire in the ICResp of the connection of queue --qid
# (the host opens its queues one after the other, admin queue first, so the
# (qid+1)-th connection is queue qid's). Everything before and after is
# normal, so the host's error recovery reconnects to a good target.
#
# --cases "NAME[:QID[:AFTER]] ..." serves one target per case in one
# process, the i-th on PORT+i (one Python start for a whole test file);
# they share one namespace, as the tests run the cases one at a time.
#
# --tls-psk HEX makes every connection TLS 1.3 with that pre-shared key (the
# raw bytes of the PSK the host offers; any identity unless --tls-identity):
# the handshake is Python's ssl (OpenSSL) as a PSK server, then the socket
# carries kTLS both ways (OpenSSL's OP_ENABLE_KTLS, or TLS_TX/TLS_RX set here
# from the traffic secrets when OpenSSL did not), so PDUs go out as
# application_data records and Conn.send_record() can send a record of any
# content type (a sendmsg with a SOL_TLS/TLS_SET_RECORD_TYPE cmsg). The
# tls-KIND-POS cases (TLS_KINDS x TLS_POSITIONS) inject one such record into
# a read's reply: the PDU bytes before POS go out as one data record, then
# the injected record, then the rest; or, at the write positions
# (TLS_WRITE_POSITIONS), into an R2T write asked for in two R2Ts: just before
# its first R2T, or between its R2Ts (after the first one's H2CData).
import argparse
import hashlib
import hmac
import os
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time

# crc32c (Castagnoli, reflected polynomial 0x82F63B78), table driven.
_T = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _T.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    t = _T
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283

# PDU types.
ICREQ, ICRESP, H2C_TERM, C2H_TERM, CMD, RSP, H2C_DATA, C2H_DATA, R2T = 0, 1, 2, 3, 4, 5, 6, 7, 9
F_HDGST, F_DDGST, F_LAST, F_SUCCESS = 0x1, 0x2, 0x4, 0x8

LBA = 512
# Status field of a CQE (phase bit 0): Invalid Opcode / Invalid Field, DNR.
SC_INVALID_OPCODE = (0x4000 | 0x1) << 1
SC_INVALID_FIELD = (0x4000 | 0x2) << 1

CASES = {
    # Read (C2HData) cases.
    "c2h-beyond": "read: a C2HData 512 bytes past the end of the buffer",
    "c2h-gap": "read: a second C2HData that skips 512 bytes",
    "c2h-overlap": "read: a second C2HData that overlaps the first by 512 bytes",
    "c2h-ddgst-bad": "read: C2HData with a wrong data digest (needs --data-digest)",
    "c2h-hdgst-bad": "read: C2HData with a wrong header digest (needs --hdr-digest)",
    "c2h-pad": "read: C2HData with 4 bytes of padding the host did not ask for (pdo)",
    "c2h-zero-len": "read: a C2HData with no data",
    "c2h-success-then-rsp": "read: C2HData with SUCCESS, then a Response for the same command",
    "c2h-plen-huge": "read: C2HData whose plen is 0xffffffff",
    "rsp-twice": "read: the Response sent twice",
    "rsp-short-read": "read: a Response after half the data",
    "rsp-stale-cid": "read: the Response carries the tag's previous generation",
    "rsp-unknown-flood": "read: 64 Responses for command ids never sent, then the right one",
    "unknown-type": "read: a PDU of type 0xee instead of the data",
    "term-req": "read: a C2HTermReq instead of the data",
    "close-mid-payload": "read: half a C2HData payload, then close",
    "rst-mid-payload": "read: half a C2HData payload, then a reset (RST)",
    "rsp-hlen-short": "read: a Response whose hlen is 23",
    "r2t-unknown-cid": "read: an R2T for a command id never sent instead of the data",
    "stall-mid-pdu": "read: half a C2HData payload, then nothing (the connection stays open)",
    # Write (R2T) cases.
    "r2t-beyond": "write: an R2T past the end of the data",
    "r2t-dup": "write: the same R2T twice",
    "r2t-for-read": "read: an R2T naming the read",
    "icresp-second": "read: a second ICResp instead of the data",
    "rsp-slow": "read: the data, then the Response one byte every 100 ms (2.4 s)",
    "r2t-unsolicited": "in-capsule write: an R2T for it instead of the Response",
    "r2t-over-maxh2cdata": "write: one R2T for the whole 64k while maxh2cdata is 16k (allowed: the host splits)",
    "rsp-before-h2c": "write: the R2T and at once the success Response, before the H2CData (stored when it comes)",
    "r2t-gap": "write: the first R2T starts one block past offset 0 (a gap before it)",
    "rsp-after-partial-r2t": "write: an R2T for half the data, then a success Response once that half arrived",
    "c2h-after-held-rsp": "write: the R2T, at once a success Response (held: the host still sends the data), then a C2HData for it",
    # ICResp cases, at the connect of queue --qid.
    "icresp-cpda": "icresp: cpda 1 (the host asked none: hpda 0, and supports cpda 0 only)",
    "icresp-hdgst-flip": "icresp: the header digest bit flipped from what the host asked",
    "icresp-ddgst-flip": "icresp: the data digest bit flipped from what the host asked",
}
# The tls-* cases: a record of KIND injected at POS of a read's reply (needs --tls-psk).
# KIND: (content type, record payload, what it is).
TLS_KINDS = {
    # A NewSessionTicket: lifetime, age_add, an 8-byte nonce, a 48-byte ticket, no extensions.
    "ticket": (22, bytes([4]) + (4 + 4 + 1 + 8 + 2 + 48 + 2).to_bytes(3, "big") + struct.pack(">IIB", 7200, 0x5EED, 8)
               + bytes(range(8)) + struct.pack(">H", 48) + bytes(range(100, 148)) + b"\0\0",
               "a NewSessionTicket (handshake 4)"),
    "alert-warning": (21, bytes([1, 90]), "a warning alert user_canceled (1/90)"),
    "close-notify": (21, bytes([1, 0]), "close_notify (1/0)"),
    "alert-fatal": (21, bytes([2, 80]), "a fatal alert internal_error (2/80)"),
    "keyupdate": (22, bytes([24, 0, 0, 1, 0]), "a KeyUpdate (handshake 24, update_not_requested)"),
    "unknown-type": (99, b"rnvme", "a record of content type 99"),
}
# POS: where in the reply (C2HData with the LAST flag, then a Response) the record goes.
TLS_POSITIONS = {
    "between": "between the C2HData and the Response",
    "header": "inside the C2HData header (after 5 bytes)",
    "payload": "inside the C2HData payload (after half the data and one byte)",
    "ddgst": "inside the C2HData data digest (after 2 of its 4 bytes; needs --data-digest)",
}
# POS of a write (an R2T write asked for in two R2Ts, each half the data).
TLS_WRITE_POSITIONS = {
    "r2t": "just before the write's first R2T",
    "h2c": "between the write's two R2Ts (after the first one's H2CData arrived)",
}
for _k, (_t, _p, _what) in TLS_KINDS.items():
    for _pos, _where in TLS_POSITIONS.items():
        CASES[f"tls-{_k}-{_pos}"] = f"read (TLS): {_what} {_where}"
    for _pos, _where in TLS_WRITE_POSITIONS.items():
        CASES[f"tls-{_k}-{_pos}"] = f"write (TLS): {_what} {_where}"
R2T_CASES = {"r2t-beyond", "r2t-dup", "r2t-over-maxh2cdata", "rsp-before-h2c", "r2t-gap", "rsp-after-partial-r2t",
             "c2h-after-held-rsp"}
INLINE_CASES = {"r2t-unsolicited"}
ICRESP_CASES = {"icresp-cpda", "icresp-hdgst-flip", "icresp-ddgst-flip"}
# ICResp maxh2cdata a case needs (else --maxh2cdata).
CASE_MAXH2CDATA = {"r2t-over-maxh2cdata": 16384}


def tls_case(case):
    """(content type, payload, position) of a tls-KIND-POS case, else None."""
    if not case or not case.startswith("tls-"):
        return None
    kind, pos = case[4:].rsplit("-", 1)
    return TLS_KINDS[kind][0], TLS_KINDS[kind][1], pos


def kind_of(case):
    if case in R2T_CASES or (tls_case(case) and tls_case(case)[2] in TLS_WRITE_POSITIONS):
        return "r2t"
    if case in INLINE_CASES:
        return "inline"
    if case in ICRESP_CASES:
        return "conn"
    return "read"


SOL_TLS, TLS_TX, TLS_RX, TLS_SET_RECORD_TYPE, TCP_ULP = 282, 1, 2, 1, 31
# Cipher suite -> (kernel cipher type, key length, hash) for TLS_TX/TLS_RX.
KTLS_CIPHERS = {
    "TLS_AES_128_GCM_SHA256": (51, 16, hashlib.sha256),
    "TLS_AES_256_GCM_SHA384": (52, 32, hashlib.sha384),
}


def hkdf_expand_label(h, secret, label, length):
    """TLS 1.3 HKDF-Expand-Label(secret, label, "", length) (RFC 8446 7.1)."""
    full = b"tls13 " + label
    info = struct.pack(">H", length) + bytes([len(full)]) + full + b"\0"
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), h).digest()
        out += t
        i += 1
    return out[:length]


def ktls_set(sock, cipher, direction, secret, seq=0):
    """Installs kTLS `direction` (TLS_TX/TLS_RX) on sock with the keys of a traffic secret."""
    ctype, klen, h = KTLS_CIPHERS[cipher]
    key = hkdf_expand_label(h, secret, b"key", klen)
    iv = hkdf_expand_label(h, secret, b"iv", 12)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
    except OSError:
        pass  # already there (OpenSSL set the other direction)
    info = struct.pack("<HH", 0x0304, ctype) + iv[4:] + key + iv[:4] + seq.to_bytes(8, "big")
    sock.setsockopt(SOL_TLS, direction, info)


def ktls_on(sock, direction):
    try:
        sock.getsockopt(SOL_TLS, direction, 64)
        return True
    except OSError:
        return False


class Target:
    def __init__(self, a, mem, case, qid, after):
        self.a = a
        self.mem = mem
        self.case, self.qid, self.after = case, qid, after
        self.maxh2cdata = CASE_MAXH2CDATA.get(case, a.maxh2cdata)
        self.lock = threading.Lock()
        self.counts = {"read": 0, "r2t": 0, "inline": 0}
        self.nconn = 0
        self.subnqn = None
        self.nguid = bytes(range(1, 17))  # per port in main(): nvme-core wants unique namespace ids
        self.fired = False
        self.cc = 0
        self.csts = 0

    def fire(self, kind, qid, off):
        """True once: when the case is for `kind` commands on `qid` and this is the after'th
        (counting only commands at a byte offset inside --window)."""
        if not self.case or self.fired or qid == 0 or (self.qid and qid != self.qid):
            return False
        if not self.a.window[0] <= off < self.a.window[1]:
            return False
        if kind != kind_of(self.case):
            return False
        with self.lock:
            self.counts[kind] += 1
            if self.counts[kind] < self.after or self.fired:
                return False
            self.fired = True
            return True

    def fire_conn(self, conn_index):
        """True once: for an icresp-* case, at the connection of queue `qid`."""
        if self.case not in ICRESP_CASES:
            return False
        with self.lock:
            if self.fired or conn_index != self.qid:
                return False
            self.fired = True
            return True

    def say(self, msg):
        print(f"{msg} port {self.port}", flush=True)


class Conn:
    def __init__(self, t, s):
        self.t, self.s, self.a = t, s, t.a
        self.qid = None
        self.hd = self.dd = False
        self.ttag = 0
        self.writes = {}  # ttag -> [cid, byte offset, buffer, r2t offset, r2t length, bytes in this r2t]
        self.hostile = False
        self.nreads = 0
        self.rx = s  # where PDUs are read from: s, or the TLS socket when OpenSSL decrypts
        self.tls = None  # TLS: (the ssl socket, keeps the session), cipher, identity
        with t.lock:
            self.index = t.nconn  # 0: the admin queue's connection
            t.nconn += 1

    # --- sending ---
    def pdu(self, ptype, flags, spec, data=None, pad=0, bad_hdgst=False, bad_ddgst=False, plen=None):
        hlen = 8 + len(spec)
        hd = 4 if self.hd else 0
        dd = 4 if self.dd and data is not None else 0
        if self.hd:
            flags |= F_HDGST
        if dd:
            flags |= F_DDGST
        pdo = hlen + hd + pad if data is not None else 0
        if plen is None:
            plen = (pdo + len(data) + dd) if data is not None else hlen + hd
        h = struct.pack("<BBBBI", ptype, flags, hlen, pdo, plen) + spec
        out = h
        if self.hd:
            out += struct.pack("<I", crc32c(h) ^ (0xFF if bad_hdgst else 0))
        if data is not None:
            out += bytes(pad) + data
            if dd:
                out += struct.pack("<I", crc32c(data) ^ (0xFF if bad_ddgst else 0))
        return out

    def send(self, b):
        self.s.sendall(b)

    def send_record(self, ctype, payload):
        """TLS: one record of content type `ctype` (kTLS closes the data record before it)."""
        self.s.sendmsg([payload], [(SOL_TLS, TLS_SET_RECORD_TYPE, bytes([ctype]))])

    def start_tls(self):
        """The TLS 1.3 PSK handshake as server, then kTLS: self.s becomes the plain socket
        kTLS encrypts for (sends, and receives when kTLS RX is on)."""
        a = self.a
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        ctx.options |= getattr(ssl, "OP_ENABLE_KTLS", 0)
        ctx.num_tickets = 0  # no tickets of our own: only the cases send records that are not data
        fd, keylog = tempfile.mkstemp(prefix="nvmet-fake-keylog-")
        os.close(fd)
        ctx.keylog_filename = keylog
        seen = []

        def psk(identity):
            seen.append(identity)
            if a.tls_identity and identity != a.tls_identity:
                return b""
            return a.tls_psk

        ctx.set_psk_server_callback(psk)
        self.s.settimeout(20)
        try:
            ss = ctx.wrap_socket(self.s, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.t.say(f"tls handshake failed on connection {self.index} (identity {seen[0] if seen else None!r}): {e}")
            os.unlink(keylog)
            raise EOFError
        if ss.cipher() is None:  # the host closed before the handshake
            self.t.say(f"tls handshake failed on connection {self.index}: closed before it began")
            os.unlink(keylog)
            raise EOFError
        ss.settimeout(None)
        cipher = ss.cipher()[0]
        raw = socket.socket(fileno=os.dup(ss.fileno()))
        secrets = {}
        with open(keylog) as f:
            for line in f:
                w = line.split()
                if len(w) == 3:
                    secrets[w[0]] = bytes.fromhex(w[2])
        os.unlink(keylog)
        how = {}
        for d, name, label in ((TLS_TX, "tx", "SERVER_TRAFFIC_SECRET_0"), (TLS_RX, "rx", "CLIENT_TRAFFIC_SECRET_0")):
            if ktls_on(raw, d):
                how[name] = "openssl"
            elif cipher in KTLS_CIPHERS and label in secrets and (d == TLS_TX or ss.pending() == 0):
                # Sequence 0 both ways: nothing was sent under the application keys yet (no
                # tickets), and OpenSSL reads a record at a time (no read-ahead), so nothing the
                # host sent after its Finished is in OpenSSL's buffers.
                ktls_set(raw, cipher, d, secrets[label])
                how[name] = "set here"
            else:
                how[name] = "none"
        self.tls = (ss, cipher, seen[0] if seen else None)
        self.s = raw  # close() closes both
        if how["tx"] == "none":
            self.t.say(f"tls: no kTLS TX for {cipher} on connection {self.index}")
            raise EOFError
        # Without kTLS RX OpenSSL decrypts what the host sends.
        self.rx = raw if how["rx"] != "none" else ss
        self.t.say(f"tls connection {self.index}: {cipher}, identity {self.tls[2]!r}, kTLS tx {how['tx']} rx {how['rx']}")

    def close(self):
        if self.tls:
            self.s.close()
            self.tls[0].close()

    def rsp(self, cid, status=0, result=0):
        return self.pdu(RSP, 0, struct.pack("<QHHHH", result, 0, self.qid or 0, cid, status))

    def c2h(self, cid, off, data, flags=0, **kw):
        return self.pdu(C2H_DATA, flags, struct.pack("<HHIII", cid, 0, off, len(data), 0), data, **kw)

    def r2t(self, cid, ttag, off, length):
        return self.pdu(R2T, 0, struct.pack("<HHIII", cid, ttag, off, length, 0))

    def read_reply(self, cid, data, n):
        """Data for a read in one or several C2HData, SUCCESS on every other read."""
        chunks = max(1, min(self.a.c2h_chunks and 1 + n % self.a.c2h_chunks, len(data) // LBA))
        success = n % 2 == 1
        step = (len(data) // chunks // LBA) * LBA
        out = b""
        off = 0
        for i in range(chunks):
            end = len(data) if i == chunks - 1 else off + step
            last = i == chunks - 1
            out += self.c2h(cid, off, data[off:end], (F_LAST | (F_SUCCESS if success else 0)) if last else 0)
            off = end
        if not success:
            out += self.rsp(cid)
        return out

    # --- receiving ---
    def recv_exact(self, n):
        b = bytearray()
        while len(b) < n:
            x = self.rx.recv(n - len(b))
            if not x:
                raise EOFError
            b += x
        return bytes(b)

    def run(self):
        if getattr(self.a, "tls_psk", None) is not None:
            self.start_tls()
        ic = self.recv_exact(128)
        if ic[0] != ICREQ:
            return
        dgst = ic[11]
        self.hd, self.dd = bool(dgst & 1), bool(dgst & 2)
        cpda, rdgst = 0, dgst
        if self.t.fire_conn(self.index):
            self.t.say(f"fired {self.t.case} qid {self.index} icreq digest {dgst:#x}")
            if self.t.case == "icresp-cpda":
                cpda = 1
            else:
                rdgst ^= 1 if self.t.case == "icresp-hdgst-flip" else 2
        body = struct.pack("<HBBI", 0, cpda, rdgst, self.t.maxh2cdata) + bytes(112)
        self.send(struct.pack("<BBBBI", ICRESP, 0, 128, 0, 128) + body)
        while True:
            ch = self.recv_exact(8)
            ptype, flags, hlen, pdo, plen = struct.unpack("<BBBBI", ch)
            rest = self.recv_exact(plen - 8)
            whole = ch + rest
            if flags & F_HDGST:
                got = struct.unpack_from("<I", whole, hlen)[0]
                if got != crc32c(whole[:hlen]):
                    print("header digest error", file=sys.stderr, flush=True)
                    return
            data = None
            if pdo:
                end = plen - (4 if flags & F_DDGST else 0)
                data = whole[pdo:end]
                if flags & F_DDGST and struct.unpack_from("<I", whole, end)[0] != crc32c(data):
                    print("data digest error", file=sys.stderr, flush=True)
                    return
            if ptype == CMD:
                self.command(whole[8:72], data)
            elif ptype == H2C_DATA:
                self.h2c(whole, flags, data)
            else:
                print("host sent pdu type", ptype, file=sys.stderr, flush=True)
                return

    # --- commands ---
    def command(self, sqe, data):
        opcode, cid, nsid = sqe[0], struct.unpack_from("<H", sqe, 2)[0], struct.unpack_from("<I", sqe, 4)[0]
        sgl_len = struct.unpack_from("<I", sqe, 32)[0]
        cdw10, cdw11, cdw12 = struct.unpack_from("<III", sqe, 40)
        if opcode == 0x7F:
            return self.fabrics(sqe, cid, data)
        if self.qid == 0:
            return self.admin(opcode, cid, nsid, sgl_len, cdw10, cdw11, data)
        if opcode in (0x01, 0x02):
            slba = struct.unpack_from("<Q", sqe, 40)[0]
            nbytes = ((cdw12 & 0xFFFF) + 1) * LBA
            off = slba * LBA
            if off + nbytes > len(self.t.mem):
                return self.send(self.rsp(cid, (0x4000 | 0x80) << 1))
            if opcode == 0x02:
                return self.read(cid, off, nbytes)
            if data is not None:
                self.t.mem[off:off + len(data)] = data
                if self.t.fire("inline", self.qid, off):
                    self.t.say(f"fired {self.t.case} qid {self.qid} cid {cid:#x}")
                    self.ttag = (self.ttag + 1) & 0xFFFF
                    return self.send(self.r2t(cid, self.ttag, 0, len(data)))
                return self.send(self.rsp(cid))
            return self.write_r2t(cid, off, nbytes)
        if opcode == 0x00:  # Flush
            return self.send(self.rsp(cid))
        self.send(self.rsp(cid, SC_INVALID_OPCODE))

    def fabrics(self, sqe, cid, data):
        fctype = sqe[4]
        if fctype == 0x01:  # Connect
            self.qid = struct.unpack_from("<H", sqe, 42)[0]
            if data and len(data) >= 512:
                # The subsystem the host asked for (SUBNQN): Identify answers with it, so
                # one process can serve a subsystem per port.
                self.t.subnqn = bytes(data[256:512]).split(b"\0")[0].decode(errors="replace")
            self.t.say(f"connect qid {self.qid}")
            return self.send(self.rsp(cid, 0, 1))
        if fctype == 0x04:  # Property Get
            off = struct.unpack_from("<I", sqe, 44)[0]
            cap = 127 | 1 << 16 | 2 << 24 | 1 << 37
            val = {0x0: cap, 0x8: 0x10400, 0x14: self.t.cc, 0x1C: self.t.csts}.get(off, 0)
            return self.send(self.rsp(cid, 0, val))
        if fctype == 0x00:  # Property Set
            off, val = struct.unpack_from("<I", sqe, 44)[0], struct.unpack_from("<Q", sqe, 48)[0]
            if off == 0x14:
                self.t.cc = val & 0xFFFFFFFF
                self.t.csts = (val & 1) | ((2 << 2) if (val >> 14) & 3 else 0)
            return self.send(self.rsp(cid))
        self.send(self.rsp(cid, SC_INVALID_OPCODE))

    def admin(self, opcode, cid, nsid, sgl_len, cdw10, cdw11, data):
        if opcode == 0x06:  # Identify
            cns = cdw10 & 0xFF
            buf = bytearray(4096)
            if cns == 0x01:
                struct.pack_into("<HH", buf, 0, 0x1B36, 0x1B36)
                buf[4:24] = b"rnvme-fake-0001".ljust(20)
                buf[24:64] = b"rnvme_tcp nvmet_fake".ljust(40)
                buf[64:72] = b"1.0".ljust(8)
                struct.pack_into("<H", buf, 78, 1)  # cntlid
                struct.pack_into("<I", buf, 80, 0x10400)  # ver
                buf[111] = 1  # cntrltype: I/O controller
                buf[259] = 3  # aerl
                buf[261] = 0  # lpa
                struct.pack_into("<H", buf, 320, 1)  # kas
                buf[512], buf[513] = 0x66, 0x44  # sqes, cqes
                struct.pack_into("<HI", buf, 514, 128, 1)  # maxcmd, nn
                struct.pack_into("<I", buf, 536, 1)  # sgls
                sub = (self.t.subnqn or self.a.nqn).encode()
                buf[768:768 + len(sub)] = sub
                struct.pack_into("<IIH", buf, 1792, (64 + 8192) // 16, 1, 0)  # ioccsz, iorcsz, icdoff
            elif cns == 0x00 and nsid == 1:
                n = len(self.t.mem) // LBA
                struct.pack_into("<QQQ", buf, 0, n, n, n)
                buf[104:120] = self.t.nguid
                struct.pack_into("<HBB", buf, 128, 0, 9, 0)  # lbaf0: 512-byte blocks
            elif cns == 0x02:
                if nsid < 1:
                    struct.pack_into("<I", buf, 0, 1)
            elif cns == 0x03 and nsid == 1:
                buf[0:4] = bytes([2, 16, 0, 0])
                buf[4:20] = self.t.nguid
            n = min(sgl_len, 4096)
            return self.send(self.c2h(cid, 0, bytes(buf[:n]), F_LAST | F_SUCCESS))
        if opcode == 0x02:  # Get Log Page: zeros
            return self.send(self.c2h(cid, 0, bytes(sgl_len), F_LAST | F_SUCCESS) if sgl_len else self.rsp(cid))
        if opcode == 0x09:  # Set Features
            result = cdw11 if cdw10 & 0xFF == 0x07 else 0
            return self.send(self.rsp(cid, 0, result))
        if opcode == 0x0A:  # Get Features
            return self.send(self.rsp(cid))
        if opcode == 0x18:  # Keep Alive
            return self.send(self.rsp(cid))
        if opcode == 0x0C:  # AER: stays outstanding
            return
        self.send(self.rsp(cid, SC_INVALID_OPCODE))

    def read(self, cid, off, nbytes):
        data = bytes(self.t.mem[off:off + nbytes])
        self.nreads += 1
        n = self.nreads
        if self.t.fire("read", self.qid, off):
            self.t.say(f"fired {self.t.case} qid {self.qid} cid {cid:#x}")
            return self.hostile_read(cid, data)
        self.send(self.read_reply(cid, data, n))

    def hostile_read(self, cid, data):
        case, half = self.t.case, (len(data) // 2 // LBA) * LBA or len(data)
        c2h, rsp = self.c2h, self.rsp
        L, S = F_LAST, F_SUCCESS
        if case == "c2h-beyond":
            out = c2h(cid, 0, data + bytes(LBA), L | S)
        elif case == "c2h-gap":
            out = c2h(cid, 0, data[:half]) + c2h(cid, half + LBA, data[half + LBA:], L | S)
        elif case == "c2h-overlap":
            out = c2h(cid, 0, data[:half]) + c2h(cid, half - LBA, data[half - LBA:], L | S)
        elif case == "c2h-ddgst-bad":
            out = c2h(cid, 0, data, L, bad_ddgst=True) + rsp(cid)
        elif case == "c2h-hdgst-bad":
            out = c2h(cid, 0, data, L | S, bad_hdgst=True)
        elif case == "c2h-pad":
            out = c2h(cid, 0, data, L | S, pad=4)
        elif case == "c2h-zero-len":
            out = c2h(cid, 0, b"") + c2h(cid, 0, data, L | S)
        elif case == "c2h-success-then-rsp":
            out = c2h(cid, 0, data, L | S) + rsp(cid)
        elif case == "c2h-plen-huge":
            out = c2h(cid, 0, data, L | S, plen=0xFFFFFFFF)
        elif case == "rsp-twice":
            out = c2h(cid, 0, data, L) + rsp(cid) + rsp(cid)
        elif case == "rsp-short-read":
            out = c2h(cid, 0, data[:half]) + rsp(cid)
        elif case == "rsp-stale-cid":
            out = c2h(cid, 0, data, L) + rsp((cid - 0x1000) & 0xFFFF)
        elif case == "rsp-unknown-flood":
            out = c2h(cid, 0, data, L) + b"".join(rsp(0x0F00 | i) for i in range(64)) + rsp(cid)
        elif case == "unknown-type":
            out = self.pdu(0xEE, 0, bytes(16))
        elif case == "term-req":
            out = self.pdu(C2H_TERM, 0, struct.pack("<HI", 4, 0) + bytes(10))
        elif case == "r2t-for-read":
            out = self.r2t(cid, 1, 0, len(data))
        elif case == "rsp-hlen-short":
            out = c2h(cid, 0, data, L) + self.pdu(RSP, 0, struct.pack("<QHHHB", 0, 0, 0, cid, 0))
        elif case == "r2t-unknown-cid":
            out = self.r2t(cid ^ 0x5A5, 1, 0, len(data))
        elif case == "icresp-second":
            out = struct.pack("<BBBBI", ICRESP, 0, 128, 0, 128) + bytes(120)
        elif case.startswith("tls-"):
            ctype, payload, pos = tls_case(case)
            pdu = c2h(cid, 0, data, L)
            out = pdu + rsp(cid)
            hd = 4 if self.hd else 0
            at = {"between": len(pdu), "header": 5, "payload": 8 + 16 + hd + len(data) // 2 + 1,
                  "ddgst": len(pdu) - 2}[pos]
            if pos == "ddgst" and not self.dd:
                raise SystemExit(f"{case} needs a data digest")
            self.send(out[:at])
            self.send_record(ctype, payload)
            self.t.say(f"{case}: cid {cid:#x}: record type {ctype} ({len(payload)} bytes) after {at} of {len(out)} bytes")
            self.send(out[at:])
            return
        elif case == "rsp-slow":
            self.send(c2h(cid, 0, data, L))
            r = rsp(cid)
            start = time.monotonic()
            for i in range(len(r)):
                time.sleep(0.1)
                self.send(r[i:i + 1])
            self.t.say(f"rsp-slow: cid {cid:#x}: {len(r)} bytes in {time.monotonic() - start:.1f}s")
            return
        elif case in ("close-mid-payload", "rst-mid-payload", "stall-mid-pdu"):
            whole = c2h(cid, 0, data, L | S)
            self.send(whole[:len(whole) - len(data) // 2])
            if case == "close-mid-payload":
                self.s.shutdown(socket.SHUT_RDWR)
                raise EOFError
            if case == "rst-mid-payload":
                self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                raise EOFError
            self.hostile = True  # ignore everything from now on
            while self.s.recv(65536):
                pass
            raise EOFError
        else:
            raise SystemExit(f"unknown case {case}")
        self.send(out)

    def write_r2t(self, cid, off, nbytes):
        self.ttag = (self.ttag + 1) & 0xFFFF
        tt = self.ttag
        chunks = max(1, self.a.r2t_chunks)
        first = -(-nbytes // chunks // LBA) * LBA if chunks > 1 else nbytes
        first = min(first, nbytes)
        # [cid, byte offset, buffer, r2t offset, r2t length, bytes in this r2t, H2CData PDUs, case fired]
        self.writes[tt] = [cid, off, bytearray(nbytes), 0, first, 0, 0, None]
        if self.t.fire("r2t", self.qid, off):
            case = self.t.case
            self.t.say(f"fired {case} qid {self.qid} cid {cid:#x}")
            self.writes[tt][7] = case
            if case == "r2t-beyond":
                return self.send(self.r2t(cid, tt, 0, nbytes + LBA))
            if case == "r2t-dup":
                return self.send(self.r2t(cid, tt, 0, first) + self.r2t(cid, tt, 0, first))
            if case == "rsp-before-h2c":
                return self.send(self.r2t(cid, tt, 0, first) + self.rsp(cid))
            if case == "r2t-gap":
                return self.send(self.r2t(cid, tt, LBA, first - LBA))
            if case == "c2h-after-held-rsp":
                # One send: the host's receive side takes all three in one pass, before its send
                # side has sent the data the R2T asked for, so the Response is held and the
                # C2HData comes after a completion.
                self.t.say(f"c2h-after-held-rsp: cid {cid:#x}: r2t, success response, c2h data")
                return self.send(self.r2t(cid, tt, 0, first) + self.rsp(cid) + self.c2h(cid, 0, bytes(LBA), F_LAST))
            if case == "rsp-after-partial-r2t":
                half = max(LBA, nbytes // 2 // LBA * LBA)
                self.writes[tt][4] = half
                return self.send(self.r2t(cid, tt, 0, half))
            if tls_case(case):
                # Two R2Ts; the record before the first (r2t) or the second (h2c, in h2c()).
                half = max(LBA, nbytes // 2 // LBA * LBA)
                self.writes[tt][4] = half
                if tls_case(case)[2] == "r2t":
                    self.tls_write_record(case, cid, "before its first R2T")
                return self.send(self.r2t(cid, tt, 0, half))
        self.send(self.r2t(cid, tt, 0, first))

    def tls_write_record(self, case, cid, where):
        ctype, payload, _ = tls_case(case)
        self.send_record(ctype, payload)
        self.t.say(f"{case}: cid {cid:#x}: record type {ctype} ({len(payload)} bytes) {where}")

    def h2c(self, whole, flags, data):
        cid, tt, off, length = struct.unpack_from("<HHII", whole, 8)
        w = self.writes.get(tt)
        if w is None or w[0] != cid or data is None or len(data) != length:
            print(f"bad h2cdata cid {cid:#x} ttag {tt}", file=sys.stderr, flush=True)
            raise EOFError
        if length > self.t.maxh2cdata or off != w[3] + w[5]:
            print(f"h2cdata cid {cid:#x} offset {off} length {length} unexpected", file=sys.stderr, flush=True)
            raise EOFError
        w[2][off:off + length] = data
        w[5] += length
        w[6] += 1
        if w[5] < w[4]:
            return
        # This R2T's data is in: ask for the next piece, or complete.
        nxt = w[3] + w[4]
        total = len(w[2])
        if w[7] == "rsp-after-partial-r2t" and nxt < total:
            # Success although the rest was never asked for: nothing stored.
            del self.writes[tt]
            self.t.say(f"rsp-after-partial-r2t: cid {cid:#x}: success after {nxt} of {total} bytes")
            return self.send(self.rsp(cid))
        if nxt < total:
            w[3], w[4], w[5] = nxt, min(w[4], total - nxt), 0
            if tls_case(w[7]) and tls_case(w[7])[2] == "h2c":
                self.tls_write_record(w[7], cid, f"between its R2Ts, after {nxt} of {total} bytes")
            return self.send(self.r2t(cid, tt, w[3], w[4]))
        del self.writes[tt]
        self.t.mem[w[1]:w[1] + total] = w[2]
        if w[7]:
            self.t.say(f"{w[7]}: cid {cid:#x}: {total} bytes in {w[6]} H2CData of at most {self.t.maxh2cdata}, stored")
        if w[7] in ("rsp-before-h2c", "c2h-after-held-rsp"):
            return  # its Response went out with the R2T
        self.send(self.rsp(cid))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--nqn", default="nqn.2026-11.io.rnvme:test")
    p.add_argument("--size-mb", type=int, default=64)
    p.add_argument("--maxh2cdata", type=int, default=131072)
    p.add_argument("--c2h-chunks", type=int, default=1, help="reads in 1..N C2HData")
    p.add_argument("--r2t-chunks", type=int, default=1, help="writes in N R2Ts")
    p.add_argument("--case", choices=sorted(CASES))
    p.add_argument("--qid", type=int, default=1)
    p.add_argument("--after", type=int, default=8)
    p.add_argument("--cases", help="NAME[:QID[:AFTER]] ...: one target per case, the i-th on PORT+i")
    p.add_argument("--window", default="0:1048576",
                   help="START:END in MiB: only commands at byte offsets in it count toward --after "
                   "(keeps the kernel's partition scan at the start and end from firing a case)")
    p.add_argument("--tls-psk", type=bytes.fromhex, help="TLS 1.3 on every connection with this PSK (hex)")
    p.add_argument("--tls-identity", help="the only PSK identity accepted (default: any)")
    p.add_argument("--list", action="store_true")
    a = p.parse_args()
    a.window = tuple(int(x) << 20 for x in a.window.split(":"))
    if a.list:
        for k, v in CASES.items():
            print(f"{k}\t{v}")
        return
    mem = bytearray(a.size_mb << 20)
    specs = [(a.case, a.qid, a.after)]
    if a.cases:
        specs = []
        for spec in a.cases.split():
            f = spec.split(":")
            if f[0] not in CASES:
                p.error(f"unknown case {f[0]}")
            specs.append((f[0], int(f[1]) if len(f) > 1 else a.qid, int(f[2]) if len(f) > 2 else a.after))

    def serve(t, s):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = Conn(t, s)
        try:
            c.run()
        except (OSError, EOFError):
            pass
        finally:
            c.close()
            s.close()

    def listen(t, srv):
        while True:
            s, _ = srv.accept()
            threading.Thread(target=serve, args=(t, s), daemon=True).start()

    listeners = []
    for i, (case, qid, after) in enumerate(specs):
        t = Target(a, mem, case, qid, after)
        t.port = a.port + i
        t.nguid = bytes(range(1, 15)) + struct.pack(">H", t.port)
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", t.port))
        srv.listen(64)
        listeners.append(threading.Thread(target=listen, args=(t, srv), daemon=True))
    for th in listeners:
        th.start()
    print("listening", flush=True)
    for th in listeners:
        th.join()


if __name__ == "__main__":
    main()
