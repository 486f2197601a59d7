#!/usr/bin/env bash
# Builds the VM root filesystem image: Debian trixie minbase with the NVMe
# user-space tools, as an ext4 image in $RNVME_CACHE keyed by this recipe.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

PACKAGES=nvme-cli,fio,ktls-utils,kmod,keyutils,iproute2,python3,procps,mount,util-linux,coreutils,grep,sed,gawk

img=$(rootfs_img)
if [ -f "$img" ]; then
	step "rootfs: present ($img)"
	exit 0
fi
dir=$RNVME_CACHE/rootfs.tmp
rm -rf "$dir"
step "rootfs: mmdebstrap $ROOTFS_SUITE minbase (about 90 s)"
logged "$RNVME_CACHE/logs/mmdebstrap.log" mmdebstrap --variant=minbase --include="$PACKAGES" \
	--keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
	"$ROOTFS_SUITE" "$dir" "$(debian_mirror)"
install -m 0755 "$RNVME_ROOT/qemu/rootfs-init" "$dir/sbin/rnvme-init"
# fio without its optional engines' libraries: a start costs 2-3 s less.
step "rootfs: fio engine-library stubs (qemu/fio-stubs.sh)"
bash "$RNVME_ROOT/qemu/fio-stubs.sh" "$dir"
mkdir -p "$dir/mnt/src" "$dir/mnt/out" "$dir/mnt/kmod" "$dir/etc/nvme"
echo rnvme-vm >"$dir/etc/hostname"
# Fixed host NQN/ID so nvme-cli does not have to guess.
echo "nqn.2014-08.org.nvmexpress:uuid:7d1c6d6a-5c34-4a1b-9b8e-000000000001" >"$dir/etc/nvme/hostnqn"
echo "7d1c6d6a-5c34-4a1b-9b8e-000000000001" >"$dir/etc/nvme/hostid"
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
step "rootfs: mkfs.ext4 -d"
logged "$RNVME_CACHE/logs/mkfs.log" mkfs.ext4 -q -F -L rnvme-root -d "$dir" "$img.tmp" 2G
mv "$img.tmp" "$img"
rm -rf "$dir"
step "rootfs: built ($img)"
