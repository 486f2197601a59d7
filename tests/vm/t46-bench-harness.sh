#!/bin/bash
# The benchmark harness keeps working (make check runs it; make bench runs the
# real thing): tests/vm/bench.sh with one job, one repetition, a 1 s run and
# every driver, then `scripts/bench-report.py check` on what it wrote: the
# loopback record, every record's fields, receive counters that only the
# module's rows move (recvmsg for rust, read_sock for rust-rs, none for c),
# CPU time and I/O counts per job, and a report with the ratios. No speed is judged.
. "$(dirname "$0")/lib.sh"
out=/tmp/bench-smoke
rm -rf "$out"
BENCH_REPS=1 BENCH_RUNTIME=1 BENCH_RAMP=0 BENCH_LOOPBACK=0.5 BENCH_SIZE=4 BENCH_CONFIGS=q1 BENCH_VARIANTS=plain \
	BENCH_JOBS=randread-4k-qd32 BENCH_DRIVERS="c rust rust-rs" BENCH_TLS=0 BENCH_OUT=$out \
	bash "$(dirname "$0")/bench.sh" >/tmp/bench-smoke.log 2>&1 ||
	{ sed 's/^/# /' /tmp/bench-smoke.log; fail "tests/vm/bench.sh failed"; }
grep '^bench ' /tmp/bench-smoke.log | sed 's/^/# /'
[ "$(ls "$out"/fio/*.json 2>/dev/null | wc -l)" -eq 3 ] || fail "want 3 fio JSON files in $out/fio"
python3 "$(dirname "$0")/../../scripts/bench-report.py" check "$out" --drivers "c rust rust-rs" --jobs 1 >/tmp/bench-check.log 2>&1 ||
	{ sed 's/^/# /' /tmp/bench-check.log; fail "the bench records do not check"; }
grep '^bench-check:\|^| randread' /tmp/bench-check.log | sed 's/^/# /'
grep -q '^| randread-4k-qd32 | plain | [0-9]' /tmp/bench-check.log || fail "no table row for the job"
