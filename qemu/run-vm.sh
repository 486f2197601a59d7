#!/usr/bin/env bash
# Boots the test VM, runs one command in it and returns its exit status.
#
#   qemu/run-vm.sh [--timeout SEC] [--out DIR] [--quiet] -- COMMAND...
#
# The guest sees the project read-only at /mnt/src (its working directory),
# DIR read-write at /mnt/out and the kernel's modules at /lib/modules.
# The full console log is kept at DIR/console.log (default DIR: build/vm).
# The run fails when the command fails, the timeout hits, or the console or
# the guest's dmesg (streamed to DIR/dmesg.txt during the run) shows a kernel
# problem (tests/kernel-problems.ere: oops, BUG, KASAN, UBSAN, lockdep, WARN...).
# KVM is used only if a short probe boot succeeds; otherwise TCG.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"
# Never die silently: name the command that failed.
trap 'echo "run-vm: unexpected failure (status $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

timeout=${RNVME_VM_TIMEOUT:-900}
out=${RNVME_VM_OUT:-$RNVME_ROOT/build/vm}
quiet=0
accel_only=0
while [ $# -gt 0 ]; do
	case $1 in
	--accel-only) accel_only=1; shift ;;
	--timeout) timeout=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--quiet) quiet=1; shift ;;
	--) shift; break ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || [ $accel_only = 1 ] || die "usage: run-vm.sh [--timeout SEC] [--out DIR] [--quiet] -- COMMAND... | --accel-only"

# RNVME_KERNEL_DIR boots another cached build (e.g. the previous one while a new one builds).
kdir=${RNVME_KERNEL_DIR:-$(kernel_dir)}
img=$(rootfs_img)
[ -f "$kdir/.done" ] || die "kernel not built ($kdir): run scripts/setup.sh"
[ -f "$img" ] || die "rootfs not built ($img): run scripts/setup.sh"
bzimage=$kdir/build/arch/x86/boot/bzImage

# acpi=noirq: no PCI interrupt routing through ACPI. With KASAN under TCG,
# SeaBIOS's _PRT methods ran into AML loop timeouts and the boot took 123 s
# to init instead of 6 s; virtio devices use MSI-X and need no routing.
# no5lvl: 4-level paging although -cpu max offers LA57. With 5-level paging
# the KASAN kernel reported, in 4 of 23 boots, a "wild-memory-access" on an
# irq_desc lock (an address in the LA57 direct map) from an interrupt during
# identify_boot_cpu, before any module was loaded; none in 10 boots since.
# boot ACCEL OUTDIR TIMEOUT CMD -> qemu's status; guest status in OUTDIR/exit-status
boot() {
	local accel=$1 dir=$2 tmo=$3 cmd=$4
	mkdir -p "$dir"
	rm -f "$dir/exit-status" "$dir/console.log" "$dir/dmesg.txt"
	printf '%s\n' "$cmd" >"$dir/cmd"
	local accel_args
	case $accel in
	kvm) accel_args=(-accel kvm -cpu host) ;;
	# Single-threaded TCG: multi-threaded TCG oopsed in early text patching
	# about one boot in three on these machines.
	tcg) accel_args=(-accel "tcg,thread=${RNVME_TCG_THREAD:-single}" -cpu max) ;;
	esac
	local status=0
	timeout --foreground -k 10 "$tmo" qemu-system-x86_64 \
		"${accel_args[@]}" -m "${RNVME_VM_MEM:-2048}" -smp "${RNVME_VM_CPUS:-2}" \
		-nodefaults -no-reboot -display none -monitor none -serial stdio \
		-kernel "$bzimage" \
		-append "console=ttyS0 root=/dev/vda rw init=/sbin/rnvme-init panic=-1 loglevel=6 log_buf_len=16M acpi=noirq no5lvl ${RNVME_VM_APPEND:-}" \
		-drive "file=$img,if=virtio,format=raw,snapshot=on" \
		-virtfs "local,path=$RNVME_ROOT,mount_tag=src,security_model=none,readonly=on" \
		-virtfs "local,path=$dir,mount_tag=out,security_model=none" \
		-virtfs "local,path=$kdir/mods,mount_tag=kmod,security_model=none,readonly=on" \
		-device virtio-rng-pci ${RNVME_QEMU_EXTRA:-} \
		</dev/null >"$dir/console.log" 2>&1 &
	local qpid=$! tpid=
	if [ $quiet -eq 0 ]; then
		tail -n +1 -F "$dir/console.log" 2>/dev/null &
		tpid=$!
	fi
	wait $qpid || status=$?
	if [ -n "$tpid" ]; then sleep 0.5; kill "$tpid" 2>/dev/null || true; wait "$tpid" 2>/dev/null || true; fi
	return $status
}

pick_accel() {
	if [ -n "${RNVME_ACCEL:-}" ]; then echo "$RNVME_ACCEL"; return; fi
	local probe=$RNVME_CACHE/accel-$(kernel_hash)
	if [ -f "$probe" ]; then cat "$probe"; return; fi
	local accel=tcg
	if [ -w /dev/kvm ]; then
		local pdir; pdir=$(mktemp -d)
		if quiet=1 boot kvm "$pdir" 40 true >/dev/null 2>&1 && [ "$(cat "$pdir/exit-status" 2>/dev/null)" = 0 ]; then
			accel=kvm
		fi
		rm -rf "$pdir"
	fi
	echo "$accel" >"$probe"
	echo "$accel"
}

accel=$(quiet=1 pick_accel)
# --accel-only: pick (and cache) the accelerator, print it, boot nothing;
# parallel runs call this first so that they do not probe at once.
if [ $accel_only = 1 ]; then echo "$accel"; exit 0; fi
case $accel in
kvm) step "vm: KVM (probe boot succeeded)" ;;
*) step "vm: TCG (no KVM, or the KVM probe boot failed: /dev/kvm here may be kvm_pvm)" ;;
esac
mkdir -p "$out"
out=$(cd "$out" && pwd)
step "vm: booting, timeout ${timeout}s, console log: $out/console.log"
start=$(date +%s)
qstatus=0
boot "$accel" "$out" "$timeout" "$*" || qstatus=$?
elapsed=$(( $(date +%s) - start ))

fail=0
if [ $qstatus -eq 124 ] || [ $qstatus -eq 137 ]; then
	step "vm: TIMEOUT after ${timeout}s"
	fail=1
fi
gstatus=$(cat "$out/exit-status" 2>/dev/null || echo missing)
if [ "$gstatus" != 0 ]; then
	step "vm: guest command exit status: $gstatus"
	fail=1
fi
# Problems in the kernel's log fail the run even when the command passed
# (tests/kernel-problems.ere); the scan goes to a file before it is shown.
if ! "$RNVME_ROOT/scripts/console-scan.sh" "$out/console-problems.txt" "$out/console.log" "$out/dmesg.txt"; then
	step "vm: kernel problems in console.log/dmesg.txt (all of them: $out/console-problems.txt)"
	fail=1
fi
step "vm: done in ${elapsed}s ($accel), $( [ $fail -eq 0 ] && echo ok || echo FAILED )"
exit $fail
