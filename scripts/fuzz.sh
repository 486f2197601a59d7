#!/usr/bin/env bash
# make fuzz: tests/vm/t44-fuzz.sh in one VM for longer than make check's 60 s.
#
#   make fuzz [DURATION=600] [SEED=N] [CASE=N]
#
# DURATION: seconds of fuzzing (default 600); SEED: the run's seed (default
# random; every case's seed comes from it and the case's index); CASE: run
# only that case of SEED (the replay the test prints on a failure).
# The VM boots with kmemleak on, and the test scans it after the fuzzing
# (in make check the VMs run with kmemleak=off). The KTAP and logs go to
# build/fuzz/ (tests/fuzz.log holds every case's line).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RNVME_ROOT"
[ -f rnvme_tcp.ko ] || die "rnvme_tcp.ko not built: run 'make module'"
duration=${DURATION:-600}
seed=${SEED:-}
case_=${CASE:-}
[[ $duration =~ ^[0-9]+$ ]] || die "DURATION must be a number of seconds"
[ -z "$seed" ] || [[ $seed =~ ^[0-9]+$ ]] || die "SEED must be a number"
[ -z "$case_" ] || [[ $case_ =~ ^[0-9]+$ ]] || die "CASE must be a number"
[ -z "$case_" ] || [ -n "$seed" ] || die "CASE needs the SEED of its run"
out=$RNVME_ROOT/build/fuzz
rm -rf "$out"
mkdir -p "$out"
# The test's own limit: the fuzzing, the last case (a minute at worst), the
# nvmet check and the kmemleak scans.
tmo=$(( duration + 600 ))
env=(FUZZ_DURATION="$duration" FUZZ_KMEMLEAK=1 TEST_TIMEOUT="$tmo" KTAP_OUT=/mnt/out/ktap.txt TEST_LOGS=/mnt/out/tests)
[ -n "$seed" ] && env+=(FUZZ_SEED="$seed")
[ -n "$case_" ] && env+=(FUZZ_CASE="$case_")
step "fuzz: ${case_:+case $case_ of }${seed:+seed $seed, }${duration} s in one VM; logs under $out"
status=0
qemu/run-vm.sh --quiet --timeout $(( tmo + 300 )) --out "$out" -- "${env[@]}" bash tests/vm/run.sh fuzz || status=$?
grep -a '^    # \(fuzz:\|FAIL\|case [0-9]* seed [0-9]*: \(.*problem\|.*hung\|.*still\|benign\)\)' "$out/ktap.txt" 2>/dev/null | sed 's/^    //'
grep -a '^\(ok\|not ok\) ' "$out/ktap.txt" 2>/dev/null
[ $status -eq 0 ] && exit 0
step "fuzz FAILED (KTAP: $out/ktap.txt, console: $out/console.log)"
exit 1
