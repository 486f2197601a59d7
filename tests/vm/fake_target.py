#!/usr/bin/env python3
# A hostile NVMe/TCP "target": fake_target.py PORT MODE... listens on
# 127.0.0.1:PORT+i for the i-th MODE and, for every connection there, answers
# the ICReq (correctly or not) and then sends the one bad thing MODE names.
# One process serves every case of a test (a Python start costs seconds in
# the TCG guest). Used by t17/t23 to check that rnvme_tcp logs the field and
# fails the connect without touching memory it should not.
import socket
import struct
import sys
import threading


def hdr(ptype, flags, hlen, pdo, plen):
    return struct.pack("<BBBBI", ptype, flags, hlen, pdo, plen)


def icresp(pfv=0, cpda=0, digest=0, maxdata=131072):
    body = struct.pack("<HBBI", pfv, cpda, digest, maxdata) + bytes(112)
    return hdr(1, 0, 128, 0, 128) + body


def rsp(cid, status=0, hlen=24):
    return hdr(5, 0, hlen, 0, 24) + struct.pack("<QHHHH", 0, 0, 0, cid, status)


def c2h(cid, offset, data, flags=0):
    """A C2HData PDU (flags: 0x4 LAST, 0x8 SUCCESS) carrying data at offset."""
    return hdr(7, flags, 24, 24, 24 + len(data)) + struct.pack("<HHII", cid, 0, offset, len(data)) + bytes(4) + data


# Property values of a minimal controller: CAP (MQES 31, CQR, TO 1 s, NVM
# command set), VS 1.4, CSTS ready.
PROPS = {0x0: 31 | 1 << 16 | 2 << 24 | 1 << 37, 0x8: 0x10400, 0x1C: 1}


def serve(c, on_cmd):
    """Answers command capsules until on_cmd returns None or the host closes:
    Fabrics Connect, Property Get/Set succeed, anything else goes to on_cmd(opcode, cid),
    which returns the bytes to send (or None to stop serving)."""
    while True:
        try:
            cap = recv_exact(c, 72)
            plen = struct.unpack_from("<I", cap, 4)[0]
            if plen > 72:
                recv_exact(c, plen - 72)
        except (OSError, EOFError):
            return
        opcode, cid, fctype = cap[8], struct.unpack_from("<H", cap, 10)[0], cap[12]
        if opcode == 0x7F and fctype == 0x04:  # Property Get
            c.sendall(struct.pack("<BBBBIQHHHH", 5, 0, 24, 0, 24, PROPS.get(struct.unpack_from("<I", cap, 8 + 44)[0], 0), 0, 0, cid, 0))
        elif opcode == 0x7F:  # Connect, Property Set
            c.sendall(rsp(cid))
        else:
            out = on_cmd(opcode, cid)
            if out is None:
                return
            c.sendall(out)


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x:
            raise EOFError
        b += x
    return b


def handle(c, MODE):
    """One connection of case MODE."""
    c.settimeout(30)
    recv_exact(c, 128)  # ICReq
    if MODE == "icresp-bad-pfv":
        c.sendall(icresp(pfv=1))
    elif MODE == "icresp-bad-maxdata":
        c.sendall(icresp(maxdata=100))
    elif MODE == "close-after-icresp":
        c.sendall(icresp())
        recv_exact(c, 72)
        c.close()
        return
    else:
        c.sendall(icresp())
        # The Fabrics Connect capsule: 72-byte header + 1024 bytes in-capsule data.
        cap = recv_exact(c, 72)
        plen = struct.unpack_from("<I", cap, 4)[0]
        recv_exact(c, plen - 72)
        cid = struct.unpack_from("<H", cap, 8 + 2)[0]
        if MODE == "rsp-dup-cid":
            # Connect answered twice. nvme-core bumps a tag's generation (the
            # command id's top 4 bits) when its command completes, so the second
            # answer names the now free request by the id its next command would
            # carry. It comes in place of the answer to the next command
            # (Property Get), which is in flight then.
            c.sendall(rsp(cid))
            recv_exact(c, 72)
            c.sendall(rsp((cid + 0x1000) & 0xFFFF))
        elif MODE == "identify-short":
            # Identify (a 4 KiB read) answered with SUCCESS after 512 bytes of data.
            c.sendall(rsp(cid))
            serve(c, lambda op, cid: c2h(cid, 0, bytes([0xA5]) * 512) + rsp(cid) if op == 0x06 else rsp(cid))
        elif MODE == "rsp-bad-hlen":
            c.sendall(rsp(cid, hlen=23))
        elif MODE == "rsp-unknown-cid":
            c.sendall(rsp(cid ^ 0x5a5))
        elif MODE == "c2h-unknown-cid":
            c.sendall(hdr(7, 0x0C, 24, 24, 24 + 512) + struct.pack("<HHII", cid ^ 0x5a5, 0, 0, 512) + bytes(4) + bytes(512))
        elif MODE == "c2h-out-of-range":
            # Connect transfers no data to the host: any C2HData is out of range.
            c.sendall(hdr(7, 0x0C, 24, 24, 24 + 512) + struct.pack("<HHII", cid, 0, 0, 512) + bytes(4) + bytes(512))
        elif MODE == "r2t-zero-length":
            c.sendall(hdr(9, 0, 24, 0, 24) + struct.pack("<HHII", cid, 1, 0, 0) + bytes(4))
        elif MODE == "term-req":
            c.sendall(hdr(3, 0, 24, 0, 24) + struct.pack("<HHH", 4, 0, 0) + bytes(10))
        elif MODE == "garbage":
            c.sendall(bytes([0xEE] * 24))
        elif MODE == "plen-lies":
            c.sendall(hdr(5, 0, 24, 0, 0xFFFFFFFF) + struct.pack("<QHHHH", 0, 0, 0, cid, 0))
        else:
            print("unknown mode", MODE, file=sys.stderr)
            return
    try:
        c.settimeout(20)
        while c.recv(4096):
            pass
    except (OSError, EOFError):
        pass
    c.close()


def listen(port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(4)
    return srv


def connection(c, mode):
    try:
        handle(c, mode)
    except (OSError, EOFError):
        pass
    finally:
        c.close()


def accept_loop(srv, mode):
    while True:
        c, _ = srv.accept()
        threading.Thread(target=connection, args=(c, mode), daemon=True).start()


if len(sys.argv) < 3:
    print("usage: fake_target.py PORT MODE...", file=sys.stderr)
    sys.exit(2)
base = int(sys.argv[1])
servers = [(listen(base + i), m) for i, m in enumerate(sys.argv[2:])]
for srv, m in servers:
    threading.Thread(target=accept_loop, args=(srv, m), daemon=True).start()
print("listening", flush=True)
threading.Event().wait()
