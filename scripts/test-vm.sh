#!/usr/bin/env bash
# Runs the KTAP suite (tests/vm/run.sh, or the tests named) in the VM and
# prints its KTAP. Exits non-zero on a failed test, an oops/lockdep/KASAN
# report on the console, or a timeout. Console: build/vm/console.log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ -f "$RNVME_ROOT/rnvme_tcp.ko" ] || die "rnvme_tcp.ko not built: run 'make module'"
out=$RNVME_ROOT/build/vm
rm -f "$out/ktap.txt"
status=0
"$RNVME_ROOT/qemu/run-vm.sh" ${RNVME_VM_VERBOSE:+} $([ -n "${RNVME_VM_VERBOSE:-}" ] || echo --quiet) \
	--timeout "${RNVME_SUITE_TIMEOUT:-2400}" --out "$out" -- bash tests/vm/run.sh "$@" || status=$?
if [ -s "$out/ktap.txt" ]; then
	cat "$out/ktap.txt"
else
	step "no KTAP output; last console lines:"
	tail -n 60 "$out/console.log" >&2 || true
fi
[ $status -eq 0 ] || step "VM suite FAILED (console log: $out/console.log, dmesg: $out/dmesg.txt)"
exit $status
