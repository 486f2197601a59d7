#!/usr/bin/env python3
# The fuzzing NVMe/TCP target of t44-fuzz: tests/vm/nvmet_fake.py's controller
# (Connect, Identify, Read/Write from memory, several C2HData per read and
# several R2Ts per write, digests), with every PDU it sends going through one
# mutator (FuzzConn.send, the one place PDUs leave the target).
#
# A case is one controller lifetime. Before it connects, the test writes the
# case's seed to the control file (--ctl); each new connection reads it, and
# a new seed starts a new case: the connections of a case are numbered in the
# order they arrive (0: the admin queue, then the I/O queues, then the
# reconnects), and connection i's mutations come from random.Random of
# "SEED:i", so a seed replays the same decisions (which PDU of a connection
# is changed, and how); only the host's timing (which command is the k-th
# PDU) can differ between two runs.
#
# The case's seed also picks its settings: the mutation rate, how many PDUs
# a connection may change (most PDUs pass unchanged, so the host gets into
# I/O), which queues are mutated (admin, I/O, both), how reads and writes
# are split (C2HData and R2T chunks, maxh2cdata), and whether it is a
# "benign" case whose only changes keep the stream valid (split into pieces,
# delayed): then the host must read back what it wrote. Every change is
# logged as "case SEED conn I qid Q pdu K type T len N: KIND DETAIL".
#
# Mutations (KINDS): bit flips, header field changes (type, flags, hlen,
# pdo, plen, cid, ttag, data offset and length, status, ICResp fields),
# with the digests recomputed or not, truncation followed by a close, a
# reset or a stall, a PDU dropped, duplicated, held back behind the next one
# (reordered), an earlier PDU replayed, a PDU spliced with another, a random
# PDU injected, a PDU split in pieces or delayed.
import argparse
import os
import random
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nvmet_fake as nf  # noqa: E402


def _fast_crc32c():
    """crc32c four bytes per step (slicing by 4: tables of 4 x 256, built at
    once), faster than nvmet_fake's byte loop, whose data digests of 128 KiB
    cost seconds under TCG; replaces nvmet_fake.crc32c for the whole target."""
    t0 = nf._T
    t1 = [t0[c & 0xFF] ^ (c >> 8) for c in t0]
    t2 = [t0[c & 0xFF] ^ (c >> 8) for c in t1]
    t3 = [t0[c & 0xFF] ^ (c >> 8) for c in t2]

    def crc32c(data):
        c = 0xFFFFFFFF
        n = len(data) & ~3
        if n:
            for w in memoryview(bytes(data[:n])).cast("I"):
                c ^= w
                c = t3[c & 0xFF] ^ t2[(c >> 8) & 0xFF] ^ t1[(c >> 16) & 0xFF] ^ t0[c >> 24]
        for x in data[n:]:
            c = t0[(c ^ x) & 0xFF] ^ (c >> 8)
        return c ^ 0xFFFFFFFF
    return crc32c


if sys.byteorder == "little":
    _fast = _fast_crc32c()
    assert _fast(b"123456789") == 0xE3069283 and _fast(bytes(range(251)) * 3) == nf.crc32c(bytes(range(251)) * 3)
    nf.crc32c = _fast

# kind: weight in a hostile case.
KINDS = {
    "field": 6, "flip": 4, "trunc-close": 1, "trunc-rst": 1, "trunc-stall": 0.3, "drop": 0.5, "dup": 1.5,
    "reorder": 1.5, "replay": 1.5, "splice": 1, "inject": 1, "fragment": 1, "delay": 0.5,
}
BENIGN = {"fragment": 1, "delay": 0.3}

# Header fields a "field" change may hit: type -> [(name, offset, bytes)].
COMMON = [("type", 0, 1), ("flags", 1, 1), ("hlen", 2, 1), ("pdo", 3, 1), ("plen", 4, 4)]
FIELDS = {
    nf.ICRESP: [("pfv", 8, 2), ("cpda", 10, 1), ("dgst", 11, 1), ("maxh2cdata", 12, 4)],
    nf.RSP: [("result", 8, 4), ("sqhd", 16, 2), ("sqid", 18, 2), ("cid", 20, 2), ("status", 22, 2)],
    nf.C2H_DATA: [("cid", 8, 2), ("datao", 12, 4), ("datal", 16, 4), ("cid", 8, 2), ("datao", 12, 4)],
    nf.R2T: [("cid", 8, 2), ("ttag", 10, 2), ("r2to", 12, 4), ("r2tl", 16, 4)],
}
DELTAS = (1, 2, 4, 8, 16, 511, 512, 4096, 65536)


def new_value(rng, orig, nbytes):
    top = (1 << (8 * nbytes)) - 1
    pick = rng.randrange(10)
    if pick == 0:
        v = rng.choice((0, 1, top, top >> 1, (top >> 1) + 1))
    elif pick in (1, 2):
        v = orig ^ (1 << rng.randrange(8 * nbytes))
    elif pick in (3, 4, 5):
        d = rng.choice(DELTAS)
        v = orig + d if rng.random() < 0.5 else orig - d
    elif pick == 6:
        v = orig * 2 if rng.random() < 0.5 else orig >> 1
    elif pick == 7:
        v = rng.randrange(top + 1)
    elif pick == 8:
        v = rng.choice((8, 24, 72, 128, 0x1000, 0x10000, 0x20000))
    else:
        v = orig ^ rng.choice((0x1000, 0xF000, 0x8000, 0xFF)) if nbytes >= 2 else orig ^ 0x80
    v &= top
    return v if v != orig else (orig + 1) & top


class Case:
    """A controller lifetime's settings, all from its seed."""

    def __init__(self, seed):
        self.seed = seed
        rng = random.Random(f"case:{seed}")
        self.benign = rng.random() < 0.125
        self.kinds = BENIGN if self.benign else KINDS
        self.rate = rng.choice((0.01, 0.03, 0.05, 0.1, 0.2))
        # Changes a connection may make: the first connections of the case
        # (admin and I/O queues) get `budget`, the reconnects fewer.
        self.budget = rng.choice((1, 1, 2, 2, 3, 5))
        self.queues = rng.choice(("io", "io", "io", "admin", "both", "both"))
        self.c2h_chunks = rng.choice((1, 2, 3, 4))
        self.r2t_chunks = rng.choice((1, 1, 2, 3))
        self.maxh2cdata = rng.choice((4096, 16384, 131072))
        self.nconn = 0

    def __str__(self):
        return (f"{'benign' if self.benign else 'hostile'} rate {self.rate} budget {self.budget} queues {self.queues} "
                f"c2h-chunks {self.c2h_chunks} r2t-chunks {self.r2t_chunks} maxh2cdata {self.maxh2cdata}")


class FuzzTarget(nf.Target):
    def __init__(self, a, mem):
        super().__init__(a, mem, None, 0, 0)
        self.case = None  # nvmet_fake's hostile case: none
        self.fcase = None

    def case_for_new_conn(self):
        """The case this new connection belongs to and its index in it."""
        try:
            with open(self.a.ctl) as f:
                seed = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            seed = None
        with self.lock:
            if seed is None:
                return None, 0
            if self.fcase is None or self.fcase.seed != seed:
                self.fcase = Case(seed)
                self.maxh2cdata = self.fcase.maxh2cdata
                print(f"case {seed}: {self.fcase}", flush=True)
            c = self.fcase
            i = c.nconn
            c.nconn += 1
            return c, i


class FuzzConn(nf.Conn):
    def __init__(self, t, s):
        super().__init__(t, s)
        self.case, self.ci = t.case_for_new_conn()
        self.rng = random.Random(f"{self.case.seed}:{self.ci}" if self.case else "none")
        c = self.case
        # Per connection settings: a copy of the arguments (chunks), the budget.
        self.a = argparse.Namespace(**vars(t.a))
        if c:
            self.a.c2h_chunks, self.a.r2t_chunks = c.c2h_chunks, c.r2t_chunks
            if self.ci < 3:
                self.left = c.budget
            elif self.ci < 10:
                self.left = 1 if self.rng.random() < 0.3 else 0
            else:
                self.left = 0
            # Nothing changes before this many PDUs of the connection went out.
            self.skip = self.rng.choice((0, 1, 2, 4, 8, 16))
        else:
            self.left = 0
        self.npdu = 0
        self.held = None  # a PDU held back, sent after the next one
        self.history = []  # the last PDUs sent

    def log(self, pdu, what):
        t = pdu[0] if pdu else -1
        print(f"case {self.case.seed} conn {self.ci} qid {self.qid} pdu {self.npdu} type {t:#x} len {len(pdu)}: {what}",
              flush=True)

    def mutable(self):
        if not self.case or self.left <= 0 or self.npdu <= self.skip:
            return False
        q = self.case.queues
        # Before Fabrics Connect the queue is unknown: the first connection is the admin queue's.
        admin = self.qid == 0 if self.qid is not None else self.ci == 0
        if (q == "io" and admin) or (q == "admin" and not admin):
            return False
        return self.rng.random() < self.case.rate

    def send(self, b):
        # The fake builds whole PDUs; a send may hold several (C2HData and a Response).
        off = 0
        while off < len(b):
            plen = struct.unpack_from("<I", b, off + 4)[0] if off + 8 <= len(b) else len(b) - off
            plen = max(8, min(plen, len(b) - off))
            self.one(b[off:off + plen])
            off += plen

    def raw(self, b):
        self.s.sendall(b)

    def one(self, pdu):
        self.npdu += 1
        out = [pdu]
        if self.mutable():
            self.left -= 1
            kinds = self.case.kinds
            kind = self.rng.choices(list(kinds), weights=list(kinds.values()))[0]
            out = self.mutate(kind, pdu)
        for p in out:
            if p:
                self.raw(p)
        if self.held is not None and self.held is not pdu:
            h, self.held = self.held, None
            self.raw(h)
        self.history = (self.history + [pdu])[-16:]

    # --- the mutations ---
    def fix_digests(self, p, hlen, pdo, hdr=True, data=True):
        """Recomputes the header digest (at the original hlen) and the data digest."""
        p = bytearray(p)
        if hdr and self.hd and len(p) >= hlen + 4:
            struct.pack_into("<I", p, hlen, nf.crc32c(bytes(p[:hlen])))
        if data and self.dd and pdo and len(p) >= pdo + 4:
            struct.pack_into("<I", p, len(p) - 4, nf.crc32c(bytes(p[pdo:len(p) - 4])))
        return bytes(p)

    def mutate(self, kind, pdu):
        rng = self.rng
        hlen, pdo = pdu[2], pdu[3]
        if kind == "field":
            fields = COMMON + FIELDS.get(pdu[0], [])
            name, at, n = rng.choice(fields)
            if at + n > len(pdu):
                name, at, n = rng.choice(COMMON)
            orig = int.from_bytes(pdu[at:at + n], "little")
            v = new_value(rng, orig, n)
            p = pdu[:at] + v.to_bytes(n, "little") + pdu[at + n:]
            fix = rng.random() < 0.75
            if fix:
                p = self.fix_digests(p, hlen, pdo, data=False)
            self.log(pdu, f"field {name} {orig:#x} -> {v:#x}{' (header digest fixed)' if fix and self.hd else ''}")
            return [p]
        if kind == "flip":
            p = bytearray(pdu)
            hdr_end = min(len(p), hlen + (4 if self.hd else 0))
            where = []
            for _ in range(rng.choice((1, 1, 2, 3, 8))):
                i = rng.randrange(hdr_end) if rng.random() < 0.7 or hdr_end == len(p) else rng.randrange(len(p))
                bit = rng.randrange(8)
                p[i] ^= 1 << bit
                where.append(f"{i}.{bit}")
            fix = rng.random() < 0.5
            if fix:
                p = self.fix_digests(p, hlen, pdo)
            self.log(pdu, f"flip {' '.join(where)}{' (digests fixed)' if fix and (self.hd or self.dd) else ''}")
            return [bytes(p)]
        if kind.startswith("trunc-"):
            cut = rng.randrange(len(pdu))
            self.log(pdu, f"{kind} after {cut} bytes")
            self.raw(pdu[:cut])
            if kind == "trunc-close":
                self.s.shutdown(socket.SHUT_RDWR)
            elif kind == "trunc-rst":
                self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.hostile = True
                while self.s.recv(65536):
                    pass
            raise EOFError
        if kind == "drop":
            self.log(pdu, "drop")
            return []
        if kind == "dup":
            self.log(pdu, "dup")
            return [pdu, pdu]
        if kind == "reorder":
            self.log(pdu, "reorder: held back behind the next PDU")
            if self.held is not None:
                h, self.held = self.held, pdu
                return [h]
            self.held = pdu
            return []
        if kind == "replay":
            if not self.history:
                self.log(pdu, "replay: nothing sent yet, dup")
                return [pdu, pdu]
            old = rng.choice(self.history)
            self.log(pdu, f"replay of an earlier PDU type {old[0]:#x} len {len(old)} before it")
            return [old, pdu]
        if kind == "splice":
            other = rng.choice(self.history) if self.history else pdu
            cut, at = rng.randrange(1, len(pdu) + 1), rng.randrange(len(other))
            self.log(pdu, f"splice: its first {cut} bytes, then an earlier PDU type {other[0]:#x} from byte {at}")
            return [pdu[:cut] + other[at:]]
        if kind == "inject":
            ptype = rng.choice((nf.RSP, nf.C2H_DATA, nf.R2T, nf.C2H_TERM, nf.ICRESP, nf.CMD, nf.H2C_DATA,
                                rng.randrange(256)))
            ih = rng.choice((8, 24, 24, 24, 128, rng.randrange(256)))
            body = bytes(rng.randrange(256) for _ in range(max(0, ih - 8) + rng.choice((0, 0, 4, 64))))
            ip = rng.choice((8 + len(body), 8 + len(body), rng.randrange(1 << 32)))
            ipdo = rng.choice((0, 0, ih, rng.randrange(256)))
            p = struct.pack("<BBBBI", ptype, rng.randrange(16), ih & 0xFF, ipdo, ip) + body
            self.log(pdu, f"inject before it: type {ptype:#x} hlen {ih} pdo {ipdo} plen {ip} ({len(p)} bytes)")
            return [p, pdu]
        if kind == "fragment":
            cuts = sorted(rng.sample(range(1, len(pdu)), min(len(pdu) - 1, rng.randrange(1, 8))))
            self.log(pdu, f"fragment at {','.join(map(str, cuts))}")
            last = 0
            for c in cuts:
                self.raw(pdu[last:c])
                time.sleep(rng.choice((0, 0.001, 0.005)))
                last = c
            return [pdu[last:]]
        if kind == "delay":
            ms = rng.choice((5, 20, 100, 300))
            self.log(pdu, f"delay {ms} ms")
            time.sleep(ms / 1000)
            return [pdu]
        raise SystemExit(f"unknown kind {kind}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--ctl", required=True, help="file holding the current case's seed")
    p.add_argument("--nqn", default="nqn.2026-11.io.rnvme:fuzz")
    p.add_argument("--size-mb", type=int, default=64)
    a = p.parse_args()
    # What nvmet_fake.Conn reads from its arguments (the case changes the chunks).
    a.maxh2cdata, a.c2h_chunks, a.r2t_chunks = 131072, 1, 1
    a.window = (0, 1 << 40)
    t = FuzzTarget(a, bytearray(a.size_mb << 20))
    t.port = a.port
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", a.port))
    srv.listen(64)

    def serve(s):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            c = FuzzConn(t, s)
            c.run()
        except (OSError, EOFError, struct.error):
            pass
        except Exception as e:  # a mutation the fake itself trips on: this connection ends
            print(f"target error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        finally:
            s.close()

    print("listening", flush=True)
    while True:
        s, _ = srv.accept()
        threading.Thread(target=serve, args=(s,), daemon=True).start()


if __name__ == "__main__":
    main()
