#!/usr/bin/env bash
# make check: set-up (idempotent), then four steps, each judged from what it
# planned against what it reported:
#   host      cargo test of rust/proto: every listed test must pass
#   harness   self-tests of the test bed (tests/harness/selftest.sh)
#   module    make module: no rustc, clippy, C compiler or modpost warning
#   vm        the KTAP suite in parallel VMs (scripts/test-vm.sh)
# Prints a KTAP plan of the steps, one result per step, and ends with one line
# "check: N passed, M failed, K skipped" over every test of every step.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RNVME_ROOT"
t0=$(date +%s)
mkdir -p build

bash scripts/setup.sh all || die "set-up failed"
t_setup=$(( $(date +%s) - t0 ))

echo "KTAP version 1"
echo "1..4"
passed=0 failed=0 skipped=0 stepn=0 times=()
result() {	# result NAME OK(0/1) [diagnostic...]
	local name=$1 ok=$2 d; shift 2
	stepn=$((stepn + 1))
	for d in "$@"; do echo "    # $d"; done
	if [ "$ok" = 1 ]; then echo "ok $stepn $name"; else echo "not ok $stepn $name"; fi
}
timed() { local label=$1 s; s=$(date +%s); shift; "$@"; local rc=$?; times+=("$label $(( $(date +%s) - s ))s"); return $rc; }

# 1. Host tests: the number cargo lists is the plan.
planned=$(cd rust/proto && cargo test -q -- --list 2>/dev/null | grep -c ': test$')
timed host bash scripts/test-host.sh >/dev/null 2>&1; host_rc=$?
read -r hp hf hi < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } } END { print p + 0, f + 0, g + 0 }' build/host-test.log)
host_ok=1
[ $host_rc -eq 0 ] && [ "$hf" -eq 0 ] && [ "$hi" -eq 0 ] && [ "$hp" -eq "$planned" ] && [ "$planned" -gt 0 ] || host_ok=0
[ $host_ok = 1 ] || grep -E '^test .*FAILED|panicked|^error' build/host-test.log | head -n 20 | sed 's/^/    # /'
result host "$host_ok" "cargo test: $hp of $planned listed tests passed, $hf failed, $hi ignored (log: build/host-test.log)"
passed=$((passed + hp)); failed=$((failed + hf + hi + (host_ok == 0 && hf + hi == 0)))

# 2. Self-tests of the harness itself.
timed harness bash tests/harness/selftest.sh >build/harness-test.log 2>&1; harness_rc=$?
read -r sp sf < <(sed -n 's/^harness: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' build/harness-test.log)
sp=${sp:-0} sf=${sf:-0}
h_ok=0; [ $harness_rc -eq 0 ] && [ "$sf" -eq 0 ] && [ "$sp" -gt 0 ] && h_ok=1
[ $h_ok = 1 ] || grep '^not ok' build/harness-test.log | sed 's/^/    # /'
result harness "$h_ok" "$sp passed, $sf failed (log: build/harness-test.log)"
passed=$((passed + sp)); failed=$((failed + sf + (h_ok == 0 && sf == 0)))

# 3. The module, without a warning of any kind.
module_ok=0
if timed module make --no-print-directory module >build/module-build.log 2>&1; then
	scripts/build-warnings.sh build/module-build.log && module_ok=1
else
	tail -n 40 build/module-build.log | sed 's/^/    # /'
fi
result module "$module_ok" "make module: rustc, clippy, C and modpost warnings fail it (log: build/module-build.log)"
passed=$((passed + module_ok)); failed=$((failed + 1 - module_ok))

# 4. The VM suite.
vm_ok=0 vp=0 vf=0 vs=0
if [ $module_ok -eq 1 ]; then
	timed vm bash scripts/test-vm.sh >build/vm-suite.log 2>&1 && vm_ok=1
	sed 's/^/    /' build/vm-suite.log
	read -r vp vf vs < <(sed -n 's/^vm: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p' build/vm-suite.log)
	vp=${vp:-0} vf=${vf:-0} vs=${vs:-0}
fi
result vm "$vm_ok" "VM KTAP: $vp passed, $vf failed, $vs skipped (merged stream: build/vm/ktap.txt)"
passed=$((passed + vp)); failed=$((failed + vf + (vm_ok == 0 && vf == 0))); skipped=$((skipped + vs))

elapsed=$(( $(date +%s) - t0 ))
steps_ok=$(( host_ok + h_ok + module_ok + vm_ok ))
echo "# Totals: pass:$steps_ok fail:$(( 4 - steps_ok )) skip:0"
echo "# set-up ${t_setup}s, ${times[*]}, total ${elapsed}s"
echo "check: $passed passed, $failed failed, $skipped skipped"
[ $steps_ok -eq 4 ]
