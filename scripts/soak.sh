#!/usr/bin/env bash
# make soak: the fault soak (tests/vm/t45-soak.sh) with long counts, in one
# VM with kmemleak on. make check runs the same test with small defaults.
#
#   make soak [FLAPS=50] [CONNECTS=200] [INSMODS=100] [RESETS=50]
#             [NETEM_SECS=30] [PHASES="connect insmod flap reset netem"]
#
# Prints the test's diagnostics, one "soak: ..." line per phase with the
# counts it did and how long it took, and the verdict. Logs: build/soak/
# (console.log, dmesg.txt, tests/soak.log, ktap.txt).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RNVME_ROOT"
[ -f rnvme_tcp.ko ] || die "rnvme_tcp.ko not built: run 'make module'"
out=$RNVME_ROOT/build/soak
rm -rf "$out"
mkdir -p "$out"
flaps=${FLAPS:-50} connects=${CONNECTS:-200} insmods=${INSMODS:-100} resets=${RESETS:-50}
netem_secs=${NETEM_SECS:-30} phases=${PHASES:-connect insmod flap reset netem}
for v in "$flaps" "$connects" "$insmods" "$resets" "$netem_secs"; do
	[[ $v =~ ^[0-9]+$ ]] || die "counts are whole numbers (got '$v')"
done
[[ $phases =~ ^[a-z\ ]+$ ]] || die "PHASES: names of phases separated by spaces (got '$phases')"
# Budget: what the phases took with the full counts on a machine running
# two other VMs (2026-12-01: 29 s per flap, 5.5 s per connect, 1.1 s per
# insmod, 22 s per reset, 202 s for 4 x 30 s of netem) with a third more,
# plus boot, the verify run and kmemleak scans. SOAK_TIMEOUT= overrides it.
tmo=${SOAK_TIMEOUT:-$(( 600 + 40 * flaps + 8 * connects + 3 * insmods + 30 * resets + 4 * 4 * netem_secs ))}
[[ $tmo =~ ^[0-9]+$ ]] || die "SOAK_TIMEOUT: seconds (got '$tmo')"
step "soak: flaps=$flaps connects=$connects insmods=$insmods resets=$resets netem=${netem_secs}s/mode (phases: $phases; timeout ${tmo}s)"
status=0
start=$(date +%s)
qemu/run-vm.sh --quiet --timeout "$((tmo + 120))" --out "$out" -- \
	SOAK_FLAPS="$flaps" SOAK_CONNECTS="$connects" SOAK_INSMODS="$insmods" SOAK_RESETS="$resets" \
	SOAK_NETEM_SECS="$netem_secs" SOAK_PHASES="\"$phases\"" TEST_TIMEOUT="$tmo" bash tests/vm/run.sh soak || status=$?
secs=$(( $(date +%s) - start ))
[ -f "$out/tests/soak.log" ] && grep '^# soak:\|FAIL' "$out/tests/soak.log" | sed 's/^# //'
grep -E '^(ok|not ok) ' "$out/ktap.txt" 2>/dev/null || echo "no result (see $out/console.log)"
if [ $status -eq 0 ]; then step "soak passed in ${secs}s (VM run, boot included)"; else step "soak FAILED after ${secs}s (logs under $out)"; fi
exit $status
