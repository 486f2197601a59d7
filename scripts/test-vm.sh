#!/usr/bin/env bash
# Runs the VM tests (all tests/vm/t*.sh, or those named) in $RNVME_VM_JOBS
# VMs at once (default 2: single-threaded TCG keeps one host core busy per
# VM), each with its own nvmet target, and merges their KTAP into one stream.
#
# - Tests go to the VMs by measured duration (longest first to the least
#   loaded VM), from build/vm-durations.txt of the last run, else the
#   committed tests/vm/durations.txt; each VM runs its share in name order.
# - The full suite adds "kasan-detector": a VM that loads a test-only module
#   making one out-of-bounds access (tests/kmod/oob); it passes only when the
#   runner failed that test for a KASAN report.
# - scripts/ktap.py judges the streams: a truncated stream, a missing result,
#   a missing Totals line, a result not in the plan, or a skip whose reason is
#   not on tests/vm/skip-allow.txt fails the run, as does any VM whose
#   console showed a kernel problem or that timed out.
# Output: build/vm/ktap.txt (merged), build/vm/shard-N/{console.log,
# dmesg.txt,ktap.txt,tests/<name>.log}.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RNVME_ROOT"
[ -f rnvme_tcp.ko ] || die "rnvme_tcp.ko not built: run 'make module'"
out=$RNVME_ROOT/build/vm
rm -rf "$out"
mkdir -p "$out"

# The plan: every test that exists, or those named.
names=()
if [ $# -gt 0 ]; then
	for t in "$@"; do
		t=$(basename "${t%.sh}")
		f=$(cd tests/vm && ls t[0-9][0-9]-"$t".sh "$t"-*.sh 2>/dev/null | head -n1)
		[ -n "$f" ] || die "no test '$t' in tests/vm"
		n=${f%.sh}; names+=("${n#t[0-9][0-9]-}")
	done
	detector=${RNVME_KASAN_CHECK:-0}
else
	for f in tests/vm/t[0-9]*.sh; do n=$(basename "${f%.sh}"); names+=("${n#t[0-9][0-9]-}"); done
	detector=${RNVME_KASAN_CHECK:-1}
fi
printf '%s\n' "${names[@]}" >"$out/plan.txt"
[ "$detector" = 1 ] && printf '%s\n' kasan-detector hang-detector >>"$out/plan.txt"

jobs=${RNVME_VM_JOBS:-2}
total=$(wc -l <"$out/plan.txt")
[ "$jobs" -gt "$total" ] && jobs=$total
[ "$jobs" -ge 1 ] || jobs=1

# Measured durations (seconds); unknown tests count 60 s.
durations=build/vm-durations.txt
[ -s "$durations" ] || durations=tests/vm/durations.txt
declare -A dur=()
while read -r n s; do [ -n "${n:-}" ] && dur[$n]=$s; done <"$durations" 2>/dev/null
# Longest first onto the least loaded VM. The tests that need kmemleak go
# together as one item, run in a VM of their own (see below).
needs_kmemleak() { grep -q '^# needs: kmemleak' tests/vm/t[0-9][0-9]-"$1".sh 2>/dev/null; }
declare -a load=() members=()
for ((k = 0; k < jobs; k++)); do load[k]=0; members[k]=""; done
while read -r s n; do
	best=0
	for ((k = 1; k < jobs; k++)); do [ "${load[k]}" -lt "${load[best]}" ] && best=$k; done
	load[best]=$(( load[best] + s ))
	members[best]="${members[best]} ${n//+/ }"
done < <(grep -vx hang-detector "$out/plan.txt" | {
	km=() kms=0
	while read -r n; do
		if needs_kmemleak "$n"; then km+=("$n"); kms=$(( kms + ${dur[$n]:-60} )); else echo "${dur[$n]:-60} $n"; fi
	done
	# They run in a VM of their own, booted after the share they join
	# (kmemleak slows every test about a third): plus its boot.
	[ ${#km[@]} -gt 0 ] && echo "$(( kms + 20 )) $(IFS=+; echo "${km[*]}")"
} | sort -rn)

if [ "$detector" = 1 ]; then
	step "vm: building the test-only KASAN module (tests/kmod/oob)"
	rm -rf build/kmod/oob && mkdir -p build/kmod && cp -r tests/kmod/oob build/kmod/oob
	if ! make -C "$(kernel_dir)/build" M="$RNVME_ROOT/build/kmod/oob" LLVM="$KERNEL_LLVM" modules \
		>build/kmod/oob-build.log 2>&1 || ! scripts/build-warnings.sh build/kmod/oob-build.log; then
		tail -n 20 build/kmod/oob-build.log >&2
		die "the test-only KASAN module does not build"
	fi
fi

allowed=$(grep -v '^#' tests/vm/skip-allow.txt | grep . | paste -sd '|')
note "skips allowed only for reasons matching: ${allowed:-(none: any skip fails)}"
accel=$(qemu/run-vm.sh --accel-only) || die "cannot pick an accelerator"
step "vm: $total tests in $jobs VM(s) ($accel); logs under $out"

# run_detector DIR: one VM runs two fixtures the runner must fail, and the
# verdicts become a two-result KTAP stream: kasan-detector (a KASAN report
# fails the test that caused it) and hang-detector (a hung test is killed
# at its timeout, reported TIMEOUT, and keeps what it printed).
run_detector() {
	local dir=$1 rc=0 k=() h=()
	qemu/run-vm.sh --quiet --timeout 400 --out "$dir/vm" -- \
		TEST_TIMEOUT=10 bash tests/vm/run.sh kasan-oob-access hangs >"$dir/run.log" 2>&1 || rc=$?
	[ $rc -ne 0 ] || k+=("the VM run passed although the fixture read out of bounds")
	grep -q '^not ok 1 kasan-oob-access # KERNEL PROBLEM' "$dir/vm/ktap.txt" 2>/dev/null ||
		k+=("the runner did not fail the fixture for a kernel problem")
	grep -q 'BUG: KASAN: slab-out-of-bounds' "$dir/vm/console-problems.txt" 2>/dev/null ||
		k+=("no 'BUG: KASAN: slab-out-of-bounds' in the VM's problem scan")
	grep -q '^not ok 2 hangs # TIMEOUT' "$dir/vm/ktap.txt" 2>/dev/null || h+=("the hung fixture was not reported TIMEOUT")
	grep -q 'diagnostic written before the hang' "$dir/vm/tests/hangs.log" 2>/dev/null ||
		h+=("the hung fixture's log lost its output")
	grep -q '^    # diagnostic written before the hang' "$dir/vm/ktap.txt" 2>/dev/null ||
		h+=("the KTAP lost the hung fixture's output")
	local secs; secs=$(grep -o 'done in [0-9]*' "$dir/run.log" | grep -o '[0-9]*$' || echo 0)
	{
		echo "KTAP version 1"; echo "1..2"
		echo "    # the fixtures' VM run failed (status $rc), as it must"
		grep -m1 -o 'BUG: KASAN: .*' "$dir/vm/console-problems.txt" 2>/dev/null | sed 's/^/    # reported: /'
		grep -m1 '^not ok 1' "$dir/vm/ktap.txt" 2>/dev/null | sed 's/^/    # runner: /'
		for w in "${k[@]}"; do echo "    # FAIL: $w"; done
		echo "    # duration: ${secs}s"
		if [ ${#k[@]} -eq 0 ]; then echo "ok 1 kasan-detector"; else echo "not ok 1 kasan-detector"; fi
		grep -m1 '^not ok 2' "$dir/vm/ktap.txt" 2>/dev/null | sed 's/^/    # runner: /'
		for w in "${h[@]}"; do echo "    # FAIL: $w"; done
		echo "    # duration: 0s"
		if [ ${#h[@]} -eq 0 ]; then echo "ok 2 hang-detector"; else echo "not ok 2 hang-detector"; fi
		echo "# Totals: pass:$(( (${#k[@]} == 0) + (${#h[@]} == 0) )) fail:$(( (${#k[@]} > 0) + (${#h[@]} > 0) )) skip:0"
	} >"$dir/ktap.txt"
}

pids=() specs=()
for ((k = 0; k < jobs; k++)); do
	dir=$out/shard-$((k + 1))
	mkdir -p "$dir"
	read -r -a mine <<<"${members[k]}"
	tests=() leak_tests=() has_detector=0
	for n in "${mine[@]}"; do
		case $n in kasan-detector) has_detector=1 ;; hang-detector) ;;
		*) if needs_kmemleak "$n"; then leak_tests+=("$n"); else tests+=("$n"); fi ;;
		esac
	done
	# Name order within a VM: tests were written to run in that order.
	mapfile -t tests < <(for n in "${tests[@]}"; do ls tests/vm/t[0-9][0-9]-"$n".sh; done | sort |
		sed 's|.*/t[0-9][0-9]-||; s|\.sh$||')
	printf '%s\n' "${tests[@]}" | grep . >"$dir/plan.txt"
	[ ${#tests[@]} -gt 0 ] && specs+=("$dir/plan.txt:$dir/ktap.txt")
	[ $has_detector = 1 ] && { mkdir -p "$out/kasan-detector"; printf '%s\n' kasan-detector hang-detector >"$out/kasan-detector/plan.txt"
		specs+=("$out/kasan-detector/plan.txt:$out/kasan-detector/ktap.txt"); }
	# kmemleak tracks every allocation (a third of the I/O rate here) but
	# reports only when scanned: the tests that scan ("# needs: kmemleak"
	# in their header) run after this VM's share, in a VM booted with it
	# on; every other VM boots with kmemleak=off.
	if [ ${#leak_tests[@]} -gt 0 ]; then
		mkdir -p "$out/kmemleak"
		printf '%s\n' "${leak_tests[@]}" >"$out/kmemleak/plan.txt"
		specs+=("$out/kmemleak/plan.txt:$out/kmemleak/ktap.txt")
	fi
	note "VM $((k + 1)): ${tests[*]}$([ ${#leak_tests[@]} -gt 0 ] && echo " + kmemleak VM: ${leak_tests[*]}")$([ $has_detector = 1 ] && echo ' + kasan-detector') (~${load[k]}s)"
	(
		status=0
		if [ ${#tests[@]} -gt 0 ]; then
			RNVME_VM_APPEND="kmemleak=off ${RNVME_VM_APPEND:-}" qemu/run-vm.sh --quiet --timeout "${RNVME_SUITE_TIMEOUT:-2400}" --out "$dir" -- \
				${RNVME_TEST_TRACE:+TEST_TRACE=1} bash tests/vm/run.sh "${tests[@]}" 2>&1 | sed "s/^/[vm $((k + 1))] /" >&2
			status=${PIPESTATUS[0]}
		fi
		if [ ${#leak_tests[@]} -gt 0 ]; then
			qemu/run-vm.sh --quiet --timeout "${RNVME_SUITE_TIMEOUT:-2400}" --out "$out/kmemleak" -- \
				${RNVME_TEST_TRACE:+TEST_TRACE=1} bash tests/vm/run.sh "${leak_tests[@]}" 2>&1 | sed "s/^/[vm $((k + 1)) kmemleak] /" >&2
			[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
		fi
		[ $has_detector = 1 ] && run_detector "$out/kasan-detector"
		exit "$status"
	) &
	pids+=($!)
done
vm_failed=0
for ((k = 0; k < ${#pids[@]}; k++)); do
	wait "${pids[k]}" || { vm_failed=1; step "vm $((k + 1)): FAILED (console: $out/shard-$((k + 1))/console.log)"; }
done

merge_rc=0
scripts/ktap.py merge --plan "$out/plan.txt" --allow-skip tests/vm/skip-allow.txt --out "$out/ktap.txt" \
	--durations "$out/durations.txt" "${specs[@]}" || merge_rc=$?
# Keep measured durations for the next run's sharding (a full run only).
[ $# -eq 0 ] && [ -s "$out/durations.txt" ] && cp "$out/durations.txt" build/vm-durations.txt
[ $vm_failed -eq 0 ] && [ $merge_rc -eq 0 ] && exit 0
step "VM suite FAILED (logs under $out)"
exit 1
