#!/usr/bin/env bash
# make hostile: every hostile-target case in every receive mode (recvmsg,
# read_sock=1, a poll queue), in one VM with kmemleak on. make check runs
# each case in one mode (case k in mode k mod 3, tests/vm/hostile_io.sh);
# this runs the whole matrix (HOSTILE_FULL=1 in the guest), CASES="a b" only
# those cases. Logs: build/hostile/ (console.log, dmesg.txt, tests/*.log,
# ktap.txt).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RNVME_ROOT"
[ -f rnvme_tcp.ko ] || die "rnvme_tcp.ko not built: run 'make module'"
out=$RNVME_ROOT/build/hostile
rm -rf "$out"
mkdir -p "$out"
cases=${CASES:-}
[[ $cases =~ ^[a-z0-9\ -]*$ ]] || die "CASES: case names separated by spaces (got '$cases')"
step "hostile: every case in every mode${cases:+ (cases: $cases)}"
status=0
start=$(date +%s)
qemu/run-vm.sh --quiet --timeout 3600 --out "$out" -- \
	HOSTILE_FULL=1 ${cases:+CASES="\"$cases\""} TEST_TIMEOUT=1500 \
	bash tests/vm/run.sh hostile-io hostile-io-read-sock hostile-io-poll || status=$?
secs=$(( $(date +%s) - start ))
grep -E '^(ok|not ok) ' "$out/ktap.txt" 2>/dev/null || echo "no result (see $out/console.log)"
grep -h 'cases passed\|cases (and checks) failed' "$out"/tests/hostile-io*.log 2>/dev/null | sed 's/^# //'
if [ $status -eq 0 ]; then step "hostile passed in ${secs}s (VM run, boot included)"; else step "hostile FAILED after ${secs}s (logs under $out)"; fi
exit $status
