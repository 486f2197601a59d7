#!/usr/bin/env python3
"""Turns one fio run of tests/vm/bench.sh into records (runs in the guest).

    bench-record.py --fio FIO.json --snaps DIR --ctrl nvmeN --out records.jsonl KEY=VALUE...

DIR holds, per fio job NAME, NAME.pre and NAME.post: snapshots taken by the
job's exec_prerun/exec_postrun (tests/vm/bench.sh --snap), each with three
sections: "== stat" (the "cpu" line of /proc/stat), "== block" (the
namespace's /sys/block/DEV/stat) and "== queues" (rnvme_tcp's debugfs
queues file, absent for the C driver). One JSON record per job is appended
to --out and one "bench ..." line printed. Each record carries:

  iops, mib_s, lat_mean_us   fio's figures (after ramp_time)
  ios                        I/Os the block layer completed during the job,
                             ramp included (the denominator of the per-I/O figures)
  cpu_us_per_io              guest CPU busy time (/proc/stat, all CPUs) / ios
  counters                   diff of every numeric key of the controller's I/O
                             queues (qid >= 1), summed over them
  recv_calls_per_io          (recvmsg_calls + read_sock_calls) / ios
  bytes_per_call             recv_bytes / receive calls, when the module has recv_bytes
"""
import argparse
import json
import os
import sys

USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_snap(path):
    sec = None
    out = {"stat": [], "block": [], "queues": []}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("== "):
                sec = line[3:].strip()
                continue
            if sec in out and line.strip():
                out[sec].append(line)
    return out


def cpu_busy(stat_lines):
    for line in stat_lines:
        f = line.split()
        if f and f[0] == "cpu":
            v = [int(x) for x in f[1:]]
            # user nice system idle iowait irq softirq steal ...
            busy = v[0] + v[1] + v[2] + (v[5] if len(v) > 5 else 0) + (v[6] if len(v) > 6 else 0) + (v[7] if len(v) > 7 else 0)
            return busy
    raise ValueError("no cpu line in /proc/stat snapshot")


def block_ios(block_lines):
    f = " ".join(block_lines).split()
    if len(f) < 5:
        raise ValueError("short block stat snapshot")
    return int(f[0]) + int(f[4])  # reads completed + writes completed


def queue_counters(lines, ctrl):
    """Sums every numeric key=value of ctrl's I/O queues (qid >= 1)."""
    tot = {}
    nq = 0
    for line in lines:
        f = line.split()
        if len(f) < 3 or f[0] != ctrl or f[1] != "qid":
            continue
        try:
            if int(f[2]) < 1:
                continue
        except ValueError:
            continue
        nq += 1
        for kv in f[3:]:
            k, sep, v = kv.partition("=")
            if not sep:
                continue
            try:
                tot[k] = tot.get(k, 0) + int(v)
            except ValueError:
                pass  # cpu=any and the like
    return tot, nq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fio", required=True)
    ap.add_argument("--snaps", required=True)
    ap.add_argument("--ctrl", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("meta", nargs="*")
    a = ap.parse_args()
    meta = {}
    for m in a.meta:
        k, _, v = m.partition("=")
        meta[k] = int(v) if v.isdigit() else v
    with open(a.fio) as f:
        text = f.read()
    # fio may print notes before the JSON object.
    fio = json.loads(text[text.index("{"):])
    recs = []
    for job in fio["jobs"]:
        name = job["jobname"]
        pre = parse_snap(os.path.join(a.snaps, name + ".pre"))
        post = parse_snap(os.path.join(a.snaps, name + ".post"))
        d = job["read"] if job["read"]["io_bytes"] else job["write"]
        ios = block_ios(post["block"]) - block_ios(pre["block"])
        busy = cpu_busy(post["stat"]) - cpu_busy(pre["stat"])
        c0, _ = queue_counters(pre["queues"], a.ctrl)
        c1, nq = queue_counters(post["queues"], a.ctrl)
        counters = {k: c1[k] - c0.get(k, 0) for k in sorted(c1)}
        rec = dict(meta)
        rec.update({
            "job": name,
            "status": "ok",
            "iops": round(d["iops"], 1),
            "mib_s": round(d["bw"] / 1024.0, 2),
            "lat_mean_us": round(d["clat_ns"]["mean"] / 1000.0, 2),
            "fio_ios": d["total_ios"],
            "fio_errors": job.get("error", 0),
            "ios": ios,
            "cpu_jiffies": busy,
            "cpu_us_per_io": round(busy * 1e6 / USER_HZ / ios, 2) if ios > 0 else None,
            "io_queues": nq,
            "counters": counters,
            "recv_calls_per_io": None,
            "bytes_per_call": None,
        })
        calls = counters.get("recvmsg_calls", 0) + counters.get("read_sock_calls", 0)
        if counters and ios > 0:
            rec["recv_calls_per_io"] = round(calls / ios, 3)
        if "recv_bytes" in counters and calls > 0:
            rec["bytes_per_call"] = round(counters["recv_bytes"] / calls, 1)
        recs.append(rec)
    with open(a.out, "a") as f:
        for r in recs:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    for r in recs:
        print("bench rep=%s driver=%s config=%s variant=%s job=%s iops=%.0f mib_s=%.2f ios=%d cpu_us_per_io=%s "
              "recv_calls_per_io=%s bytes_per_call=%s" % (
                  r.get("rep"), r.get("driver"), r.get("config"), r.get("variant"), r["job"], r["iops"],
                  r["mib_s"], r["ios"], r["cpu_us_per_io"], r["recv_calls_per_io"], r["bytes_per_call"]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
