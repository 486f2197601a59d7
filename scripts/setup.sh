#!/usr/bin/env bash
# Installs and builds whatever is missing for rnvme-tcp; idempotent.
#   scripts/setup.sh [deps|toolchain|kernel-src|kernel|rootfs|all|bench]
# (bench: what only `make bench` needs on the host; `all` does not include it)
# One "==>" line per step. Caches live in $RNVME_CACHE (~/.cache/rnvme-tcp).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEBS=(build-essential bc bison flex libelf-dev libssl-dev cpio rsync kmod
      clang-19 libclang-19-dev lld-19 llvm-19 qemu-system-x86 mmdebstrap
      e2fsprogs python3 xz-utils zstd)

setup_deps() {
	local missing=() p
	for p in "${DEBS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then step "Debian packages: present"; return; fi
	step "Debian packages: installing ${missing[*]}"
	local sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
	logged "$RNVME_CACHE/logs/apt-update.log" $sudo apt-get update
	logged "$RNVME_CACHE/logs/apt-install.log" env DEBIAN_FRONTEND=noninteractive \
		$sudo apt-get install -y --no-install-recommends "${missing[@]}"
}

setup_toolchain() {
	command -v rustup >/dev/null || die "rustup not found: install a Rust toolchain with rustup first"
	if [ -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
		step "rust-src: present"
	else
		step "rust-src: installing"
		logged "$RNVME_CACHE/logs/rust-src.log" rustup component add rust-src
	fi
	if command -v clippy-driver >/dev/null; then
		step "clippy: present"
	else
		step "clippy: installing (the module is built with CLIPPY=1)"
		logged "$RNVME_CACHE/logs/clippy.log" rustup component add clippy
	fi
	if command -v bindgen >/dev/null; then
		step "bindgen: present ($(bindgen --version))"
	else
		step "bindgen: cargo install --locked bindgen-cli (takes ~2 min)"
		logged "$RNVME_CACHE/logs/bindgen.log" cargo install --locked bindgen-cli
	fi
}

# Debian's linux-source package from $KERNEL_SUITE, fetched with apt-get
# download against a private apt state directory: the host's apt sources
# are never touched.
setup_kernel_src() {
	local src=$RNVME_CACHE/src
	if [ -f "$src/version" ] && [ -d "$src/linux" ]; then
		step "kernel source: present ($(cat "$src/version"))"
		return
	fi
	step "kernel source: fetching $KERNEL_PKG from $KERNEL_SUITE"
	local apt=$RNVME_CACHE/apt
	rm -rf "$apt" "$src"
	mkdir -p "$apt"/{lists/partial,archives/partial,etc/sources.list.d,etc/preferences.d} "$src"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) $KERNEL_SUITE main" \
		>"$apt/etc/sources.list"
	local opts=(-o "Dir::Etc::sourcelist=$apt/etc/sources.list"
		-o "Dir::Etc::sourceparts=$apt/etc/sources.list.d"
		-o "Dir::Etc::preferencesparts=$apt/etc/preferences.d"
		-o "Dir::State::Lists=$apt/lists"
		-o "Dir::Cache=$apt" -o "Dir::Cache::archives=$apt/archives"
		-o "Dir::State::status=/var/lib/dpkg/status"
		-o "APT::Sandbox::User=root")
	logged "$RNVME_CACHE/logs/apt-private-update.log" apt-get "${opts[@]}" update
	(cd "$apt" && logged "$RNVME_CACHE/logs/apt-download.log" apt-get "${opts[@]}" download "$KERNEL_PKG")
	local deb; deb=$(ls "$apt"/"$KERNEL_PKG"_*.deb | head -n1)
	step "kernel source: unpacking $(basename "$deb")"
	dpkg-deb -x "$deb" "$apt/x"
	tar -C "$src" -xf "$apt"/x/usr/src/"$KERNEL_PKG".tar.*
	mv "$src/$KERNEL_PKG" "$src/linux"
	dpkg-deb -f "$deb" Version >"$src/version"
	rm -rf "$apt"
}

# make bench only: matplotlib for the plots (drawn on the host). The bench
# kernel itself is built by scripts/bench.sh (build_bench_kernel).
setup_bench() {
	# Debian's python3 (/usr/bin), not whichever python3 comes first in PATH.
	if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then step "python3-matplotlib: present"; return; fi
	step "python3-matplotlib: installing (make bench draws its plots with it)"
	local sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
	logged "$RNVME_CACHE/logs/apt-update.log" $sudo apt-get update
	logged "$RNVME_CACHE/logs/apt-install-bench.log" env DEBIAN_FRONTEND=noninteractive \
		$sudo apt-get install -y --no-install-recommends python3-matplotlib
}

setup_kernel() { "$RNVME_ROOT/scripts/build-kernel.sh"; }
setup_rootfs() { "$RNVME_ROOT/qemu/rootfs.sh"; }

mkdir -p "$RNVME_CACHE/logs"
what=${1:-all}
case $what in
deps) setup_deps ;;
toolchain) setup_toolchain ;;
kernel-src) setup_kernel_src ;;
kernel) setup_kernel ;;
rootfs) setup_rootfs ;;
bench) setup_bench ;;
all) setup_deps; setup_toolchain; setup_kernel_src; setup_kernel; setup_rootfs ;;
*) die "unknown step '$what'" ;;
esac
