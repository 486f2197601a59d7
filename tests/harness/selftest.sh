#!/usr/bin/env bash
# Self-tests of the test bed: fake KTAP streams, console logs and build logs
# fed to the checkers that judge the real ones (scripts/ktap.py,
# scripts/console-scan.sh, scripts/build-warnings.sh). Each case says what a
# checker must conclude; a checker that would let a broken run through fails
# here. Prints KTAP and "harness: N passed, M failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 pass=0 failn=0
cases=()

check() {	# check NAME EXPECTED_STATUS OUTPUT_PATTERN -- COMMAND...
	local name=$1 want=$2 pat=$3 rc=0; shift 4
	n=$((n + 1))
	"$@" >"$tmp/out" 2>&1 || rc=$?
	if [ "$rc" -eq "$want" ] && { [ -z "$pat" ] || grep -q -E -- "$pat" "$tmp/out"; }; then
		pass=$((pass + 1)); cases+=("ok $n $name")
	else
		failn=$((failn + 1))
		cases+=("    # expected status $want and /$pat/, got status $rc:")
		while IFS= read -r l; do cases+=("    #   $l"); done < <(tail -n 8 "$tmp/out")
		cases+=("not ok $n $name")
	fi
}

# --- kmemleak reports since a test began (tests/vm/kmemleak-since.awk) ----
printf '%s\n' 'unreferenced object 0xffff888001 (size 64):' '  comm "nvme", pid 40, jiffies 4294900000' \
	'  backtrace (crc 1):' '    nvme_tcp_alloc_queue+0x1/0x2 [nvme_tcp]' \
	'unreferenced object 0xffff888002 (size 96):' '  comm "kworker/1:2", pid 41, jiffies 4294950000' \
	'  backtrace (crc 2):' '    rnvme_tcp_alloc+0x1/0x2 [rnvme_tcp]' >"$tmp/kmemleak"
since() { awk -v since="$1" -f "$root/tests/vm/kmemleak-since.awk" "$tmp/kmemleak"; }
check "kmemleak: an object allocated before the test began is not its leak" 0 '' -- \
	bash -c '! grep -q 0xffff888001 <(awk -v since=4294940000 -f "$1" "$2")' _ "$root/tests/vm/kmemleak-since.awk" "$tmp/kmemleak"
check "kmemleak: an object allocated since the test began is reported with its backtrace" 0 '\[rnvme_tcp\]' -- since 4294940000
check "kmemleak: with no start, every object is reported" 0 '' -- test "$(since 0 | grep -c '^unreferenced')" -eq 2

# --- KTAP merge and judgement (scripts/ktap.py) -----------------------------
printf 'a\nb\nc\n' >"$tmp/plan"
printf 'a\nb\n' >"$tmp/p1"
printf 'c\n' >"$tmp/p2"
: >"$tmp/allow-none"
printf '# comment\nno TLS in this kernel\n' >"$tmp/allow"
good1='KTAP version 1
1..2
    # hello
    # duration: 3s
ok 1 a
    # duration: 9s
ok 2 b
# Totals: pass:2 fail:0 skip:0'
good2='KTAP version 1
1..1
    # duration: 1s
ok 1 c
# Totals: pass:1 fail:0 skip:0'
echo "$good1" >"$tmp/k1"; echo "$good2" >"$tmp/k2"
merge() { "$root/scripts/ktap.py" merge --plan "$tmp/plan" --allow-skip "$1" --out "$tmp/merged" \
	--durations "$tmp/dur" "$tmp/p1:$2" "$tmp/p2:$3"; }
check "ktap: two whole shards pass, renumbered in plan order" 0 '^vm: 3 passed, 0 failed, 0 skipped$' -- merge "$tmp/allow-none" "$tmp/k1" "$tmp/k2"
check "ktap: the merged stream lists the slowest tests" 0 '^# slowest: b 9s, a 3s, c 1s$' -- cat "$tmp/merged"
check "ktap: the merged stream renumbers shard 2's test" 0 '^ok 3 c$' -- cat "$tmp/merged"

head -n 5 "$tmp/k1" >"$tmp/trunc"	# stops after "ok 1 a"
check "ktap: a truncated stream fails and the lost test is MISSING" 1 '^not ok 2 b # MISSING$' -- merge "$tmp/allow-none" "$tmp/trunc" "$tmp/k2"
grep -v Totals "$tmp/k1" >"$tmp/nototals"
check "ktap: a stream without its Totals line fails" 1 'no "# Totals:" line' -- merge "$tmp/allow-none" "$tmp/nototals" "$tmp/k2"
sed 's/^ok 2 b$/ok 2 x/' "$tmp/k1" >"$tmp/other"
check "ktap: a result for a test that was not planned fails" 1 'not given|do not follow' -- merge "$tmp/allow-none" "$tmp/other" "$tmp/k2"
sed 's/^1\.\.2$/1..3/' "$tmp/k1" >"$tmp/badplan"
check "ktap: a shard plan that differs from what it was given fails" 1 'plan 1\.\.3' -- merge "$tmp/allow-none" "$tmp/badplan" "$tmp/k2"
sed 's/^ok 2 b$/not ok 2 b/; s/pass:2 fail:0/pass:1 fail:1/' "$tmp/k1" >"$tmp/notok"
check "ktap: a not ok fails the run" 1 '^vm: 2 passed, 1 failed' -- merge "$tmp/allow-none" "$tmp/notok" "$tmp/k2"
sed 's/pass:2 fail:0/pass:3 fail:0/' "$tmp/k1" >"$tmp/liar"
check "ktap: Totals that disagree with the results fail" 1 'disagree' -- merge "$tmp/allow-none" "$tmp/liar" "$tmp/k2"
sed 's/^ok 2 b$/ok 2 b # SKIP python3 not installed/; s/pass:2 fail:0 skip:0/pass:1 fail:0 skip:1/' "$tmp/k1" >"$tmp/skip"
check "ktap: a skip whose reason is not allowed fails" 1 '^not ok 2 b # SKIP not allowed$' -- merge "$tmp/allow" "$tmp/skip" "$tmp/k2"
sed 's/^ok 2 b$/ok 2 b # SKIP no TLS in this kernel/; s/pass:2 fail:0 skip:0/pass:1 fail:0 skip:1/' "$tmp/k1" >"$tmp/skipok"
check "ktap: a skip with an allowed reason is reported as a skip" 0 '^vm: 2 passed, 0 failed, 1 skipped$' -- merge "$tmp/allow" "$tmp/skipok" "$tmp/k2"
check "ktap: a shard that wrote no stream fails" 1 'shard 2: no KTAP stream' -- merge "$tmp/allow-none" "$tmp/k1" "$tmp/nonexistent"
: >"$tmp/empty"
check "ktap: an empty stream fails" 1 'no "KTAP version 1" line' -- merge "$tmp/allow-none" "$tmp/k1" "$tmp/empty"

# --- kernel problems in console logs (scripts/console-scan.sh) ---------------
# 40 reports whose matching lines add up to more than a pipe buffer: a
# `grep | head -n 20` under pipefail lost grep to SIGPIPE and read "clean".
for i in $(seq 40); do
	echo "[  $i.000000] BUG: KASAN: slab-out-of-bounds in foo+0x$i/0x100"
	for j in $(seq 40); do echo "[  $i.$j] Call Trace: frame $j $(printf '%060d' 0)"; done
	for j in $(seq 50); do echo "[  $i.$j] filler line $j"; done
done >"$tmp/console-40"
check "console: 40 KASAN reports (>64 KiB of matches) fail the run" 1 'kernel problems in the log \(1640 lines' -- \
	"$root/scripts/console-scan.sh" "$tmp/report" "$tmp/console-40"
check "console: the report keeps every matching line, not only the 20 shown" 0 '' -- test "$(wc -l <"$tmp/report")" -eq 1640
printf '[    1.0] clean boot\n[    2.0] nvme nvme0: new ctrl\n' >"$tmp/clean"
check "console: a clean log passes" 0 '' -- "$root/scripts/console-scan.sh" "$tmp/report" "$tmp/clean"
printf '[    3.0] ------------[ cut here ]------------\n[    3.0] WARNING: CPU: 1 PID: 9 at foo.c:1 bar\n' >"$tmp/warn"
check "console: a WARN splat in dmesg.txt only fails the run" 1 'WARNING: CPU' -- \
	"$root/scripts/console-scan.sh" "$tmp/report" "$tmp/clean" "$tmp/warn"
printf '[    4.0] WARNING: possible circular locking dependency detected\n' >"$tmp/lockdep"
check "console: a lockdep report fails the run" 1 'circular locking' -- "$root/scripts/console-scan.sh" "$tmp/report" "$tmp/lockdep"
printf '[    5.0] UBSAN: array-index-out-of-bounds in x.c:3:4\n' >"$tmp/ubsan"
check "console: a UBSAN report fails the run" 1 'UBSAN' -- "$root/scripts/console-scan.sh" "$tmp/report" "$tmp/ubsan"

# --- warnings in the module build log (scripts/build-warnings.sh) ------------
printf '  RUSTC [M] rust/rnvme_tcp.o\n  CC [M]  rust/sys/helpers.o\n  LD [M]  rnvme_tcp.ko\n' >"$tmp/build-clean"
check "build: a missing build log fails" 1 'no build log' -- "$root/scripts/build-warnings.sh" "$tmp/no-such-log"
check "build: a clean log passes" 0 '' -- "$root/scripts/build-warnings.sh" "$tmp/build-clean"
{ cat "$tmp/build-clean"; echo "rust/sys/helpers.c:12:5: warning: unused variable 'x' [-Wunused-variable]"; } >"$tmp/build-c"
check "build: a C compiler warning fails" 1 'helpers.c:12:5: warning' -- "$root/scripts/build-warnings.sh" "$tmp/build-c"
{ cat "$tmp/build-clean"; echo 'WARNING: modpost: missing MODULE_DESCRIPTION() in rnvme_tcp.o'; } >"$tmp/build-modpost"
check "build: a modpost warning fails" 1 'modpost' -- "$root/scripts/build-warnings.sh" "$tmp/build-modpost"
{ cat "$tmp/build-clean"; echo 'warning: unused import: `Foo`'; } >"$tmp/build-rust"
check "build: a rustc/clippy warning fails" 1 'unused import' -- "$root/scripts/build-warnings.sh" "$tmp/build-rust"
{ cat "$tmp/build-clean"; echo 'error[E0308]: mismatched types'; } >"$tmp/build-err"
check "build: a rustc error fails" 1 'E0308' -- "$root/scripts/build-warnings.sh" "$tmp/build-err"

# --- the benchmark's figures (scripts/bench-record.py, scripts/bench-report.py) --
# One fio job, snapshots before and after: per-I/O figures from the diffs.
mkdir -p "$tmp/bench/snaps" "$tmp/bench2"
cat >"$tmp/bench/fio.json" <<'EOF2'
note: a line fio prints before its JSON
{"jobs": [{"jobname": "randread-4k-qd32", "error": 0,
  "read": {"io_bytes": 4096000, "iops": 1000.0, "bw": 4000, "total_ios": 1000, "clat_ns": {"mean": 32000.0}},
  "write": {"io_bytes": 0, "iops": 0, "bw": 0, "total_ios": 0, "clat_ns": {"mean": 0}}}]}
EOF2
snap() {	# snap FILE USER SYSTEM READS RECVMSG RECV_BYTES
	printf '== stat\ncpu  %s 0 %s 500 0 0 0 0 0 0\n== block\n %s 0 0 0 7 0 0 0 0 0 0\n== queues\n' "$2" "$3" "$4" >"$1"
	printf 'nvme0 qid 0 cpu=any recvmsg_calls=999 read_sock_calls=0 recv_bytes=99999\n' >>"$1"
	printf 'nvme0 qid 1 cpu=0 recvmsg_calls=%s read_sock_calls=0 recv_bytes=%s work_completions=3\n' "$5" "$6" >>"$1"
	printf 'nvme1 qid 1 cpu=0 recvmsg_calls=5000 read_sock_calls=0\n' >>"$1"
}
snap "$tmp/bench/snaps/randread-4k-qd32.pre" 100 50 10 20 1000
snap "$tmp/bench/snaps/randread-4k-qd32.post" 110 60 1210 2420 4916200
brec() { python3 "$root/scripts/bench-record.py" --fio "$tmp/bench/fio.json" --snaps "$tmp/bench/snaps" --ctrl nvme0 \
	--out "$tmp/bench/rec.jsonl" rep=1 driver=rust config=q1 variant=plain; }
check "bench: receive calls per I/O from the controller's I/O queues only (2400 calls / 1200 I/Os)" 0 \
	'recv_calls_per_io=2.0 ' -- brec
check "bench: bytes per call when the module counts recv_bytes (4915200 / 2400)" 0 '"bytes_per_call": 2048.0' -- cat "$tmp/bench/rec.jsonl"
check "bench: CPU time per I/O from /proc/stat busy jiffies (20 jiffies / 1200 I/Os)" 0 '"cpu_us_per_io": 166.67' -- cat "$tmp/bench/rec.jsonl"
# Three repetitions of two drivers: ratios per repetition, median (min-max).
for rep in 1 2 3; do
	for d in c:1000 rust:$((1000 + rep * 100)) rust-rs:1000; do
		printf '{"rep": %d, "driver": "%s", "config": "q1", "variant": "plain", "job": "randread-4k-qd32", "status": "ok", "iops": %d, "mib_s": 1, "lat_mean_us": 1, "ios": 10, "cpu_jiffies": 1, "cpu_us_per_io": 1, "counters": {}, "fio_ios": 10}\n' \
			"$rep" "${d%%:*}" "${d#*:}"
	done
	printf '{"rep": %d, "driver": "rust-rs", "config": "q1", "variant": "tls", "job": "randread-4k-qd32", "status": "refused"}\n' "$rep"
done >"$tmp/bench2/records.jsonl"
echo '{"kind": "loopback", "mib_s": 900.0, "bytes": 1, "cpu_us_per_mib": 1}' >>"$tmp/bench2/records.jsonl"
breport() { python3 "$root/scripts/bench-report.py" report "$tmp/bench2" --json "$tmp/bench2/r.json" --md "$tmp/bench2/r.md"; }
check "bench: rust/c is the median of the per-repetition ratios, with min-max" 0 \
	'^\| randread-4k-qd32 \| plain \| 1000 \| 1200 \| 1000 \| 1.200 \(1.100-1.300\) \| 1.000 \(1.000-1.000\) \| 1.200 \(1.100-1.300\)' -- breport
check "bench: a TLS row with read_sock=1 refused says so" 0 '^\| randread-4k-qd32 \| tls \| - \| - \| refused \|' -- cat "$tmp/bench2/r.md"
check "bench: the loopback ceiling is in the report" 0 '\*\*900 MiB/s\*\*' -- cat "$tmp/bench2/r.md"
check "bench: check refuses records without their per-I/O figures and counters" 1 'recvmsg_calls=None' -- \
	python3 "$root/scripts/bench-report.py" check "$tmp/bench2" --drivers "c rust rust-rs"
# A module-parameter variant driver gets its own table and ratios.
for rep in 1 2 3; do
	printf '{"rep": %d, "driver": "rust+recv_tail=0", "config": "q1", "variant": "plain", "job": "randread-4k-qd32", "status": "ok", "iops": 900, "mib_s": 1, "lat_mean_us": 1, "ios": 10, "cpu_jiffies": 1, "cpu_us_per_io": 1, "counters": {}, "fio_ios": 10}\n' "$rep"
done >>"$tmp/bench2/records.jsonl"
check "bench: a rust+PARAM=V driver is compared with c, rust and rust-rs" 0 \
	'^\| q1 \| randread-4k-qd32 \| plain \| rust\+recv_tail=0 \| 900 \| 0.900 \(0.900-0.900\) \| 0.750 \(0.692-0.818\) \| 0.900' -- breport

# --- hostile-target verdicts (tests/vm/hostile_io.sh's awk) ----------------
sed -n "/^HOSTILE_VERDICT_AWK='$/,/^}'$/p" "$root/tests/vm/hostile_io.sh" | sed "1d;\$s/'\$//" >"$tmp/verdict.awk"
mkdir -p "$tmp/hv"
printf '1\trsp-slow\tnvme1\tquiet\t\t\t4684\t\n' >"$tmp/hv/table"
printf 'fired rsp-slow qid 2 cid 0x65 port 4684\n' >"$tmp/hv/fake"
printf '3;x;rsp-slow;x;0\n' >"$tmp/hv/fio"
verdict() { awk -v mode=poll -v frc=0 -f "$tmp/verdict.awk" "$tmp/hv/table" "$1" "$tmp/hv/fake" "$tmp/hv/fio"; }
printf '[1.0] nvme nvme1: Removing ctrl: NQN "x"\n[1.5] nvme nvme1: queue 0: receive failed: connection closed by target (-104)\n' >"$tmp/hv/k-after"
printf '[0.5] nvme nvme1: queue 2: receive failed: pdu rejected: -71\n[1.0] nvme nvme1: Removing ctrl: NQN "x"\n' >"$tmp/hv/k-before"
check "hostile: a quiet case passes when its queue complains only after the test deleted it" 0 '^failed:$' -- verdict "$tmp/hv/k-after"
check "hostile: a quiet case fails on a queue line before the test deleted it" 0 'FAILED: unexpected: .*queue 2' -- verdict "$tmp/hv/k-before"

echo "KTAP version 1"
echo "1..$n"
printf '%s\n' "${cases[@]}"
echo "# Totals: pass:$pass fail:$failn skip:0"
echo "harness: $pass passed, $failn failed"
[ $failn -eq 0 ]
