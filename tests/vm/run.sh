#!/bin/bash
# Runs the VM tests (all tests/vm/t*.sh, or those named) and prints KTAP.
# Also writes the KTAP to $KTAP_OUT (default /mnt/out/ktap.txt in the VM).
# Exit status: 0 when no test failed.
cd "$(dirname "$0")" || exit 2
testdir=$PWD
out=${KTAP_OUT:-/mnt/out/ktap.txt}
: >"$out" 2>/dev/null || out=/dev/null
per_test_timeout=${TEST_TIMEOUT:-600}

tests=()
if [ $# -gt 0 ]; then
	for t in "$@"; do
		t=$(basename "${t%.sh}")
		f=$(ls t*-"$t".sh "$t".sh 2>/dev/null | head -n1)
		[ -n "$f" ] || { echo "no test '$t'" >&2; exit 2; }
		tests+=("$f")
	done
else
	tests=(t[0-9]*.sh)
fi

emit() { printf '%s\n' "$*"; printf '%s\n' "$*" >>"$out"; }
emit "KTAP version 1"
emit "1..${#tests[@]}"
pass=0 failn=0 skipn=0 n=0
for f in "${tests[@]}"; do
	n=$((n + 1))
	name=${f%.sh}; name=${name#t[0-9][0-9]-}
	start=$(date +%s)
	# Tests run from /tmp: the project share is read-only.
	output=$(cd /tmp && timeout -k 10 "$per_test_timeout" bash "$testdir/$f" 2>&1)
	rc=$?
	secs=$(( $(date +%s) - start ))
	while IFS= read -r line; do
		case $line in "#"*) emit "    $line" ;; "") ;; *) emit "    # $line" ;; esac
	done <<<"$output"
	emit "    # ${secs}s"
	case $rc in
	0) pass=$((pass + 1)); emit "ok $n $name" ;;
	4) skipn=$((skipn + 1)); reason=$(grep '^SKIP:' <<<"$output" | tail -n1); emit "ok $n $name # SKIP ${reason#SKIP: }" ;;
	124|137) failn=$((failn + 1)); emit "not ok $n $name # TIMEOUT after ${per_test_timeout}s" ;;
	*) failn=$((failn + 1)); emit "not ok $n $name" ;;
	esac
done
emit "# Totals: pass:$pass fail:$failn skip:$skipn"
[ $failn -eq 0 ]
