#!/bin/bash
# Runs VM tests (all tests/vm/t*.sh, or those named) in the guest and prints KTAP.
#
# - The KTAP also goes to $KTAP_OUT (default /mnt/out/ktap.txt), line by line.
# - Each test's output goes to $TEST_LOGS/<name>.log (default /mnt/out/tests)
#   as it runs, so a test that hangs keeps its diagnostics; one that outlives
#   $TEST_TIMEOUT is killed and reported "not ok ... # TIMEOUT".
# - TEST_TRACE=1 also writes each test's xtrace, every line stamped with
#   the time, to $TEST_LOGS/<name>.trace (scripts/trace-profile.py sums it).
# - Each test starts with a cleared ring buffer (dmesg.txt streams all of it)
#   and is bracketed by marks in the kernel log; a kernel problem
#   (tests/kernel-problems.ere: oops, KASAN, UBSAN, lockdep, WARN, ...) logged
#   between its marks fails that test, whatever it returned.
# - Every result is preceded by "# duration: Ns"; the stream ends with the
#   Totals line and the five slowest tests.
# Exit status: 0 when no test failed.
cd "$(dirname "$0")" || exit 2
testdir=$PWD
problems_ere=$(grep -v '^#' "$testdir/../kernel-problems.ere")
out=${KTAP_OUT:-/mnt/out/ktap.txt}
logs=${TEST_LOGS:-/mnt/out/tests}
: >"$out" 2>/dev/null || out=/dev/null
mkdir -p "$logs" 2>/dev/null || logs=/tmp/test-logs && mkdir -p "$logs"
per_test_timeout=${TEST_TIMEOUT:-600}

tests=()
if [ $# -gt 0 ]; then
	for t in "$@"; do
		t=$(basename "${t%.sh}")
		f=$(ls t[0-9][0-9]-"$t".sh "$t"-*.sh fixtures/"$t".sh 2>/dev/null | head -n1)
		[ -n "$f" ] || { echo "no test '$t'" >&2; exit 2; }
		tests+=("$f")
	done
else
	tests=(t[0-9]*.sh)
fi

emit() { printf '%s\n' "$*"; printf '%s\n' "$*" >>"$out"; }
name_of() { local n; n=$(basename "${1%.sh}"); echo "${n#t[0-9][0-9]-}"; }

emit "KTAP version 1"
emit "1..${#tests[@]}"
pass=0 failn=0 skipn=0 n=0
timing=()
for f in "${tests[@]}"; do
	n=$((n + 1))
	name=$(name_of "$f")
	log=$logs/$name.log
	begin="rnvme-test-begin $name $RANDOM$RANDOM"
	# Each test starts with an empty ring buffer, so the dmesg a test polls
	# holds its own lines only, not the whole suite's (guest-init's
	# `dmesg -w` has them all, in dmesg.txt).
	dmesg -C
	echo "$begin" >/dev/kmsg
	start=$(date +%s)
	# Tests run from /tmp: the project share is read-only.
	if [ "${TEST_TRACE:-0}" = 1 ]; then
		# PS4 is not taken from the environment for root; BASH_ENV sets it.
		printf '%s\n' "PS4='+\${EPOCHREALTIME} \${BASH_SOURCE##*/}:\${LINENO} '" 'set -x' >/tmp/trace.env
		(cd /tmp && exec 9>"$logs/$name.trace" && BASH_XTRACEFD=9 BASH_ENV=/tmp/trace.env \
			exec timeout -k 10 "$per_test_timeout" bash "$testdir/$f") >"$log" 2>&1 </dev/null
	else
		(cd /tmp && exec timeout -k 10 "$per_test_timeout" bash "$testdir/$f") >"$log" 2>&1 </dev/null
	fi
	rc=$?
	secs=$(( $(date +%s) - start ))
	echo "rnvme-test-end $name" >/dev/kmsg
	while IFS= read -r line; do
		case $line in "#"*) emit "    $line" ;; "") ;; *) emit "    # $line" ;; esac
	done <"$log"
	# Kernel problems logged while this test ran, from its begin mark on.
	kprob=$(dmesg | sed -n "/$begin/,\$p" | grep -E -- "$problems_ere" | head -n 10)
	if [ -n "$kprob" ]; then
		emit "    # kernel problems in the log during this test:"
		while IFS= read -r line; do emit "    #   $line"; done <<<"$kprob"
	fi
	emit "    # duration: ${secs}s"
	timing+=("$secs $name")
	if [ -n "$kprob" ] && [ $rc -ne 124 ] && [ $rc -ne 137 ]; then
		failn=$((failn + 1)); emit "not ok $n $name # KERNEL PROBLEM"
		continue
	fi
	case $rc in
	0) pass=$((pass + 1)); emit "ok $n $name" ;;
	4) skipn=$((skipn + 1)); reason=$(grep '^SKIP:' "$log" | tail -n1); emit "ok $n $name # SKIP ${reason#SKIP: }" ;;
	124|137) failn=$((failn + 1)); emit "not ok $n $name # TIMEOUT after ${per_test_timeout}s" ;;
	*) failn=$((failn + 1)); emit "not ok $n $name" ;;
	esac
done
emit "# Totals: pass:$pass fail:$failn skip:$skipn"
emit "# slowest: $(printf '%s\n' "${timing[@]}" | sort -rn | head -n 5 | awk '{ printf "%s%s %ss", (NR > 1 ? ", " : ""), $2, $1 }')"
[ $failn -eq 0 ]
