#!/usr/bin/env bash
# make check: set-up (idempotent), host tests, module build, VM KTAP suite.
# Ends with one line "check: N passed, M failed" over all of them.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RNVME_ROOT"
t0=$(date +%s)
mkdir -p build
failed_steps=()

bash scripts/setup.sh all || die "set-up failed"
t_setup=$(( $(date +%s) - t0 ))

bash scripts/test-host.sh || failed_steps+=(host-tests)
host_pass=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i } } END { print p + 0 }' build/host-test.log)
host_fail=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^failed/) f += $i } } END { print f + 0 }' build/host-test.log)

step "module: make module (rustc and clippy lints, no warning allowed)"
if make --no-print-directory module >build/module-build.log 2>&1; then
	module_ok=1
	if grep -q -E '^(warning|error)' build/module-build.log; then
		grep -E -A6 '^(warning|error)' build/module-build.log | head -n 60 >&2
		failed_steps+=(module-warnings)
	fi
else
	module_ok=0
	tail -n 40 build/module-build.log >&2
	failed_steps+=(module-build)
fi

vm_pass=0 vm_fail=0 vm_skip=0
if [ $module_ok -eq 1 ]; then
	step "vm: KTAP suite"
	bash scripts/test-vm.sh || failed_steps+=(vm-suite)
	if [ -s build/vm/ktap.txt ]; then
		read -r vm_pass vm_fail vm_skip < <(sed -n 's/^# Totals: pass:\([0-9]*\) fail:\([0-9]*\) skip:\([0-9]*\).*/\1 \2 \3/p' build/vm/ktap.txt | tail -n1)
		vm_pass=${vm_pass:-0} vm_fail=${vm_fail:-0} vm_skip=${vm_skip:-0}
	fi
fi

elapsed=$(( $(date +%s) - t0 ))
passed=$(( host_pass + vm_pass + module_ok ))
failedn=$(( host_fail + vm_fail + (1 - module_ok) ))
# A step that failed without a failed test to show for it (timeout, oops,
# set-up) still fails the run.
if [ ${#failed_steps[@]} -gt 0 ] && [ $failedn -eq 0 ]; then failedn=${#failed_steps[@]}; fi
echo
echo "== make check: host ${host_pass}/$((host_pass + host_fail)), module build $([ $module_ok -eq 1 ] && echo ok || echo FAILED), VM KTAP pass:$vm_pass fail:$vm_fail skip:$vm_skip; set-up ${t_setup}s, total ${elapsed}s"
[ ${#failed_steps[@]} -eq 0 ] || echo "== failed: ${failed_steps[*]}"
echo "check: $passed passed, $failedn failed, $vm_skip skipped"
[ ${#failed_steps[@]} -eq 0 ]
