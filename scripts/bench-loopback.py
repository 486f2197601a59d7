#!/usr/bin/env python3
"""The raw loopback TCP ceiling of the VM (runs in the guest, once per bench run).

    bench-loopback.py SECONDS OUT.jsonl [KEY=VALUE...]

One TCP stream over 127.0.0.1: a forked sender sendall()s a 1 MiB buffer for
SECONDS of guest time, the receiver recv_into()s 1 MiB at a time; 4 MiB
socket buffers. Appends {"kind": "loopback", "mib_s", "bytes", "seconds",
"cpu_us_per_mib"} to OUT and prints a "bench loopback ..." line. Python's cost
per call is small next to a 1 MiB copy, but it is there: a lower bound on
what the network stack can carry, not a target the NVMe drivers could reach.
"""
import json
import os
import socket
import sys
import time

BUF = 1 << 20
SOCKBUF = 4 << 20


def busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def main():
    secs = float(sys.argv[1])
    out = sys.argv[2]
    meta = dict(m.split("=", 1) for m in sys.argv[3:])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKBUF)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        srv.close()
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKBUF)
        c.connect(("127.0.0.1", port))
        buf = b"\xa5" * BUF
        end = time.monotonic() + secs
        while time.monotonic() < end:
            c.sendall(buf)
        c.close()
        os._exit(0)
    conn, _ = srv.accept()
    buf = bytearray(BUF)
    n = 0
    j0 = busy()
    t0 = time.monotonic()
    while True:
        r = conn.recv_into(buf)
        if r == 0:
            break
        n += r
    t = time.monotonic() - t0
    j = busy() - j0
    os.waitpid(pid, 0)
    hz = os.sysconf("SC_CLK_TCK")
    mib = n / float(1 << 20)
    rec = dict(meta)
    rec.update({"kind": "loopback", "bytes": n, "seconds": round(t, 3), "mib_s": round(mib / t, 1),
                "cpu_us_per_mib": round(j * 1e6 / hz / mib, 1) if mib else None})
    with open(out, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
    print("bench loopback mib_s=%.1f bytes=%d seconds=%.3f cpu_us_per_mib=%s" % (
        rec["mib_s"], n, t, rec["cpu_us_per_mib"]))


if __name__ == "__main__":
    main()
