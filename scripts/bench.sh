#!/usr/bin/env bash
# make bench: the C nvme_tcp, rnvme_tcp (recvmsg) and rnvme_tcp read_sock=1
# in the same VM, same target and fio jobs (tests/vm/bench.sh), on a kernel
# without debug options (qemu/kernel-bench.config, built here on first use
# into its own cache dir; `make check` never builds it), BENCH_REPS
# repetitions in rotating order. Method and caveats: Documentation/bench/method.md.
#
#   BENCH_CLOCK=icount (default): -icount shift=0,sleep=off, guest time counts
#                      instructions: the figures do not depend on host load
#   BENCH_CLOCK=wall   no -icount (KVM where the host has it): wall-clock view
#   BENCH_REPS=3 BENCH_RUNTIME=2 BENCH_RAMP=1 BENCH_TLS=1 BENCH_JOBS= BENCH_CONFIGS=
#   BENCH_VARIANTS= BENCH_DRIVERS= (see tests/vm/bench.sh)
#   BENCH_DOC=Documentation/bench  where results.md, results.json and the plots go
#                      (BENCH_DOC= : only build/bench/)
#   BENCH_KERNEL=test  run on the test kernel (debug options on) instead, for
#                      comparison (results*-test-kernel.*)
#   BENCH_LABEL=text   a label for the table and plots (say, a shortened run)
# Output: build/bench/<clock>/{fio/*.json,records.jsonl,meta.json,results.json,
# results.md,console.log}, and the same report under $BENCH_DOC. Nothing is asserted.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RNVME_ROOT"

# Builds the bench kernel if missing: allnoconfig + qemu/kernel.config +
# qemu/kernel-bench.config, into $(kernel_bench_dir)/build, modules under
# .../mods. Niced: it may run while other VMs run.
build_bench_kernel() {
	local src=$RNVME_CACHE/src/linux dir build line sym bad=0 start
	[ -d "$src" ] || die "no kernel source in $src: run scripts/setup.sh kernel-src"
	dir=$(kernel_bench_dir)
	if [ -f "$dir/.done" ]; then step "bench kernel: present ($dir)"; return 0; fi
	rm -rf "$dir"
	mkdir -p "$dir/build"
	build=$dir/build
	kmake() { nice -n 10 make -C "$src" O="$build" LLVM="$KERNEL_LLVM" "$@"; }
	step "bench kernel: configuring (allnoconfig + qemu/kernel.config + qemu/kernel-bench.config)"
	logged "$dir/rustavailable.log" kmake rustavailable
	logged "$dir/config.log" kmake allnoconfig
	KCONFIG_CONFIG=$build/.config logged "$dir/merge.log" "$src/scripts/kconfig/merge_config.sh" -m -O "$build" \
		"$build/.config" "$RNVME_ROOT/qemu/kernel.config" "$RNVME_ROOT/qemu/kernel-bench.config"
	logged "$dir/olddefconfig.log" kmake olddefconfig
	# Every line of the bench fragment, and every line of the test fragment it
	# does not restate, must have taken ("not set": no =y/=m/=value line).
	local bench=$RNVME_ROOT/qemu/kernel-bench.config
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*) sym=${line%%=*}; grep -qxF -- "$line" "$build/.config" && continue ;;
		"# CONFIG_"*" is not set") sym=${line#\# }; sym=${sym%% *}; grep -q "^$sym=" "$build/.config" || continue ;;
		*) continue ;;
		esac
		# a test-fragment line whose symbol the bench fragment restates is overridden
		if ! grep -qxF -- "$line" "$bench" && grep -Eq "^(# )?$sym[= ]" "$bench"; then continue; fi
		note "did not take: $line"; bad=1
	done < <(cat "$bench" "$RNVME_ROOT/qemu/kernel.config")
	[ $bad -eq 0 ] || die "bench kernel config did not apply (see above)"
	step "bench kernel: building with $(nproc) jobs, niced (about 15-25 min on 2 cores; log: $dir/build.log)"
	start=$(date +%s)
	logged "$dir/build.log" kmake -j"$(nproc)" bzImage modules
	logged "$dir/modules_install.log" kmake INSTALL_MOD_PATH="$dir/mods" INSTALL_MOD_STRIP=1 modules_install
	echo $(( $(date +%s) - start )) >"$dir/build-seconds"
	touch "$dir/.done"
	step "bench kernel: built in $(cat "$dir/build-seconds") s"
}

# The module, built in a copy of the tree against the bench kernel: the
# tree's own rnvme_tcp.ko (for the test kernel) is left alone.
build_bench_module() {
	local kdir=$1 m=$RNVME_ROOT/build/bench/module
	mkdir -p "$m"
	rsync -a --delete --exclude target --exclude generated --exclude '*.o' --exclude '*.ko' --exclude '.*.cmd' \
		--exclude '*.mod' --exclude '*.mod.c' --exclude '*.rmeta' --exclude '*.d' \
		Kbuild Makefile rust scripts "$m/"
	step "bench module: building against the bench kernel ($m)"
	logged "$RNVME_ROOT/build/bench/module-build.log" make -C "$kdir/build" M="$m" LLVM="$KERNEL_LLVM" modules
	scripts/build-warnings.sh "$RNVME_ROOT/build/bench/module-build.log" || die "the bench module built with warnings"
}

main() {
	local clock=${BENCH_CLOCK:-icount} kdir out status=0 extra accel=() t0 doc
	# Not `setup.sh all`: the test kernel is not needed for the bench kernel.
	local s
	for s in deps toolchain kernel-src rootfs bench; do bash scripts/setup.sh $s; done
	[ "${BENCH_KERNEL:-bench}" = bench ] || bash scripts/setup.sh kernel
	local kt0 ko=/mnt/src/build/bench/module/rnvme_tcp.ko kind=${BENCH_KERNEL:-bench}
	kt0=$(date +%s)
	case $kind in
	bench)
		build_bench_kernel
		kdir=$(kernel_bench_dir)
		note "bench kernel: $kdir (built in $(cat "$kdir/build-seconds" 2>/dev/null || echo '?') s; this step $(( $(date +%s) - kt0 )) s)"
		build_bench_module "$kdir" ;;
	test)
		# The test kernel (debug options on), with the tree's module: what the
		# debug options weigh, for comparison only.
		kdir=$(kernel_dir)
		make --no-print-directory module >build/module-build.log 2>&1 || die "make module failed (build/module-build.log)"
		ko=/mnt/src/rnvme_tcp.ko ;;
	*) die "BENCH_KERNEL is bench or test" ;;
	esac
	local sub=$clock; [ "$kind" = bench ] || sub=$clock-$kind-kernel
	out=$RNVME_ROOT/build/bench/$sub
	rm -rf "$out"; mkdir -p "$out"
	case $clock in
	icount) extra="-icount shift=0,sleep=off"; accel=(RNVME_ACCEL=tcg) ;;
	wall) extra="" ;;
	*) die "BENCH_CLOCK is icount or wall" ;;
	esac
	local tls=${BENCH_TLS:-1}
	local cmd="BENCH_KO=$ko BENCH_OUT=/mnt/out BENCH_TLS=$tls"
	local v
	for v in BENCH_REPS BENCH_RUNTIME BENCH_RAMP BENCH_JOBS BENCH_CONFIGS BENCH_VARIANTS BENCH_DRIVERS \
		BENCH_TLS_CONFIGS BENCH_LOOPBACK BENCH_SIZE; do
		[ -n "${!v:-}" ] && cmd+=" $v=$(printf '%q' "${!v}")"
	done
	cmd+=" bash tests/vm/bench.sh"
	step "bench: $clock clock; guest command: $cmd"
	t0=$(date +%s)
	env "${accel[@]}" RNVME_KERNEL_DIR="$kdir" RNVME_QEMU_EXTRA="$extra" \
		qemu/run-vm.sh --quiet --timeout "${RNVME_BENCH_TIMEOUT:-14400}" --out "$out" -- "$cmd" || status=$?
	local secs=$(( $(date +%s) - t0 ))
	step "bench: VM run took $secs s (status $status)"
	grep -a '^bench \|^# bench' "$out/console.log" | tr -d '\r' >"$out/raw.txt" || true
	[ -s "$out/records.jsonl" ] || die "no records (console: $out/console.log)"
	local suffix=; [ "$clock" = icount ] || suffix=-$clock
	[ "$kind" = bench ] || suffix+=-$kind-kernel
	local meta=(--meta "clock=$clock" --meta "qemu_extra=$extra" --meta "vm_seconds=$secs" --meta "vm_status=$status"
		--meta "kernel_dir=$(basename "$kdir")" --meta "kernel_kind=$kind" --meta "kernel_build_seconds=$(cat "$kdir/build-seconds" 2>/dev/null || echo)")
	/usr/bin/python3 scripts/bench-report.py report "$out" --json "$out/results.json" --md "$out/results.md" \
		--plots "$out/plot" --label "${BENCH_LABEL:-}" "${meta[@]}" >/dev/null
	doc=${BENCH_DOC-Documentation/bench}
	if [ -n "$doc" ]; then
		mkdir -p "$doc"
		/usr/bin/python3 scripts/bench-report.py report "$out" --json "$doc/results$suffix.json" --md "$doc/results$suffix.md" \
			--plots "$doc/plot$suffix" --label "${BENCH_LABEL:-}" "${meta[@]}" >/dev/null
		step "bench: report in $doc/results$suffix.md (JSON, plots beside it)"
	fi
	cat "$out/results.md"
	# The figures are kept even when the VM run failed after writing them.
	return $status
}

[ "${BASH_SOURCE[0]}" = "$0" ] && main "$@"
