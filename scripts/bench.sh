#!/usr/bin/env bash
# make bench: the C driver and rnvme_tcp in the same VM run, same fio jobs
# (tests/vm/bench.sh), with guest time counting instructions
# (-icount shift=0,sleep=off) so runs repeat. Prints each figure and the
# Rust/C ratio; nothing here is asserted. Results: build/bench/results.txt.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RNVME_ROOT"
bash scripts/setup.sh all
make --no-print-directory module
out=$RNVME_ROOT/build/bench
RNVME_ACCEL=tcg RNVME_QEMU_EXTRA="-icount shift=0,sleep=off" \
	qemu/run-vm.sh --quiet --timeout "${RNVME_BENCH_TIMEOUT:-1800}" --out "$out" -- bash tests/vm/bench.sh
grep -a '^bench ' "$out/console.log" | tr -d '\r' >"$out/raw.txt"
awk '
	{ v[$2 " " $3] = $4; bw[$2 " " $3] = $5; if (!($3 in seen)) { seen[$3] = 1; order[n++] = $3 } }
	END {
		printf "%-20s %12s %12s %10s %10s %8s\n", "job (icount)", "C IOPS", "Rust IOPS", "C MiB/s", "Rust MiB/s", "Rust/C"
		for (i = 0; i < n; i++) {
			j = order[i]; c = v["c " j]; r = v["rust " j]
			printf "%-20s %12s %12s %10s %10s %8.3f\n", j, c, r, bw["c " j], bw["rust " j], (c > 0 ? r / c : 0)
		}
	}' "$out/raw.txt" | tee "$out/results.txt"
