#!/usr/bin/env bash
# Builds the VM kernel (allnoconfig + qemu/kernel.config, Rust enabled) into
# $RNVME_CACHE/kernel-<hash>/build and installs its modules under .../mods.
# The hash covers the source version, the fragment, this script and the
# toolchain versions, so a warm cache rebuilds nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

src=$RNVME_CACHE/src/linux
[ -d "$src" ] || die "no kernel source in $src: run scripts/setup.sh kernel-src"
dir=$(kernel_dir)
if [ -f "$dir/.done" ]; then
	step "kernel: present ($dir)"
	exit 0
fi
rm -rf "$dir"
mkdir -p "$dir/build"
build=$dir/build
kmake() { make -C "$src" O="$build" LLVM="$KERNEL_LLVM" "$@"; }

step "kernel: configuring (allnoconfig + qemu/kernel.config)"
logged "$dir/rustavailable.log" kmake rustavailable
logged "$dir/config.log" kmake allnoconfig
KCONFIG_CONFIG=$build/.config logged "$dir/merge.log" \
	"$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$RNVME_ROOT/qemu/kernel.config"
logged "$dir/olddefconfig.log" kmake olddefconfig
# Every symbol the fragment asks for must have taken.
bad=0
while IFS= read -r line; do
	case $line in CONFIG_*=*) ;; *) continue ;; esac
	grep -qx -- "$line" "$build/.config" || { note "did not take: $line"; bad=1; }
done <"$RNVME_ROOT/qemu/kernel.config"
[ $bad -eq 0 ] || die "kernel config fragment did not apply (see above)"

step "kernel: building with $(nproc) jobs (about 10-20 min on 2 cores; log: $dir/build.log)"
start=$(date +%s)
logged "$dir/build.log" kmake -j"$(nproc)" bzImage modules
logged "$dir/modules_install.log" kmake INSTALL_MOD_PATH="$dir/mods" INSTALL_MOD_STRIP=1 modules_install
echo $(( $(date +%s) - start )) >"$dir/build-seconds"
touch "$dir/.done"
step "kernel: built in $(cat "$dir/build-seconds") s"
