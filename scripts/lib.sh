# Shared helpers for rnvme-tcp scripts. Source it; it sets no traps.
# shellcheck shell=bash

RNVME_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RNVME_CACHE=${RNVME_CACHE:-$HOME/.cache/rnvme-tcp}
KERNEL_PKG=${KERNEL_PKG:-linux-source-7.3}
KERNEL_SUITE=${KERNEL_SUITE:-trixie-backports}
ROOTFS_SUITE=${ROOTFS_SUITE:-trixie}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
# The kernel is built with clang/lld 19 (Rust-for-Linux's supported toolchain).
KERNEL_LLVM=${KERNEL_LLVM:--19}
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"

step() { printf '==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs "$@" with its output in a log; on failure prints the tail and dies.
logged() {
	local log=$1; shift
	mkdir -p "$(dirname "$log")"
	if ! "$@" >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		die "'$*' failed; full log: $log"
	fi
}

# The Debian archive URI the host's apt already uses, so no mirror is named
# here: the first non-security "URIs:" (deb822) or "deb" line.
debian_mirror() {
	if [ -n "${RNVME_DEBIAN_MIRROR:-}" ]; then echo "$RNVME_DEBIAN_MIRROR"; return; fi
	local uri
	uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/ && $i ~ /\/debian\/?$/) { print $i; exit } }')
	[ -n "$uri" ] || uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/ && $i !~ /security/ && $i ~ /\/debian\/?$/) { print $i; exit } }')
	[ -n "$uri" ] || die "no Debian archive in the host's apt sources; set RNVME_DEBIAN_MIRROR"
	echo "${uri%/}"
}

toolchain_id() {
	{ rustc --version; bindgen --version; "clang$KERNEL_LLVM" --version | head -n1; } 2>/dev/null
}

# Hash of everything that determines the kernel build.
kernel_hash() {
	{
		cat "$RNVME_CACHE/src/version" 2>/dev/null
		cat "$RNVME_ROOT/qemu/kernel.config" "$RNVME_ROOT/scripts/build-kernel.sh"
		toolchain_id
	} | sha256sum | cut -c1-16
}

rootfs_hash() {
	cat "$RNVME_ROOT/qemu/rootfs.sh" "$RNVME_ROOT/qemu/rootfs-init" "$RNVME_ROOT/qemu/fio-stubs.sh" | sha256sum | cut -c1-16
}

kernel_dir() { echo "$RNVME_CACHE/kernel-$(kernel_hash)"; }
rootfs_img() { echo "$RNVME_CACHE/rootfs-$(rootfs_hash).ext4"; }

# The bench-only kernel (make bench; never make check): the same source,
# toolchain and qemu/kernel.config, then qemu/kernel-bench.config on top (the
# debug options off). Its own dir; the hash covers both fragments and the
# builder (build_bench_kernel in scripts/bench.sh), not the rest of bench.sh.
# scripts/build-kernel.sh is left as it is: it is hashed into the test
# kernel's dir name, so touching it would rebuild every clone's test kernel.
kernel_bench_hash() {
	{
		cat "$RNVME_CACHE/src/version" 2>/dev/null
		cat "$RNVME_ROOT/qemu/kernel.config" "$RNVME_ROOT/qemu/kernel-bench.config"
		sed -n '/^build_bench_kernel()/,/^}/p' "$RNVME_ROOT/scripts/bench.sh"
		toolchain_id
	} | sha256sum | cut -c1-16
}
kernel_bench_dir() { echo "$RNVME_CACHE/kernel-bench-$(kernel_bench_hash)"; }
