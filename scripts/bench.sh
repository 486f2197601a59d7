#!/usr/bin/env bash
# make bench: the C driver, rnvme_tcp (recvmsg) and rnvme_tcp read_sock=1 in
# the same VM run, same fio jobs (tests/vm/bench.sh), with guest time
# counting instructions (-icount shift=0,sleep=off) so runs repeat. Prints
# each figure and the ratios; nothing here is asserted. Results: build/bench/results.txt.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RNVME_ROOT"
bash scripts/setup.sh all
make --no-print-directory module
out=$RNVME_ROOT/build/bench
# kmemleak=off: the test kernel tracks every allocation for t21; the
# benchmark measures the drivers, not that bookkeeping.
status=0
RNVME_ACCEL=tcg RNVME_QEMU_EXTRA="-icount shift=0,sleep=off" RNVME_VM_APPEND="kmemleak=off ${RNVME_VM_APPEND:-}" \
	qemu/run-vm.sh --quiet --timeout "${RNVME_BENCH_TIMEOUT:-1800}" --out "$out" -- bash tests/vm/bench.sh || status=$?
{ grep -a '^bench ' "$out/console.log" || true; } | tr -d '\r' >"$out/raw.txt"
awk '
	{ v[$2 " " $3] = $4; bw[$2 " " $3] = $5; if (!($3 in seen)) { seen[$3] = 1; order[n++] = $3 } }
	function ratio(a, b) { return b > 0 ? sprintf("%.3f", a / b) : "-" }
	END {
		print "IOPS under -icount (guest time = instructions): c = C nvme_tcp, rust = rnvme_tcp (recvmsg),"
		print "rust-rs = rnvme_tcp read_sock=1 (same module, only the receive call differs)"
		printf "%-18s %9s %9s %9s %9s %9s %12s\n", "job", "c", "rust", "rust-rs", "rust/c", "rs/c", "rust/rs"
		for (i = 0; i < n; i++) {
			j = order[i]; c = v["c " j]; r = v["rust " j]; s = v["rust-rs " j]
			printf "%-18s %9s %9s %9s %9s %9s %12s\n", j, c, r, s, ratio(r, c), ratio(s, c), ratio(r, s)
		}
	}' "$out/raw.txt" | tee "$out/results.txt"
# The figures are kept even when the VM run failed after printing them.
exit $status
