#!/bin/bash
# PID 1 of the test VM (exec'd by /sbin/rnvme-init from the rootfs).
# Prepares /lib/modules with the kernel's modules plus rnvme_tcp.ko, runs
# the command the host left in /mnt/out/cmd, records its exit status and
# powers the VM off. Never returns.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb RNVME_IN_VM=1

finish() {
	echo "RNVME-EXIT=$1"
	# Let the dmesg stream catch up, then stop it.
	if [ -n "${dmesg_pid:-}" ]; then sleep 1; kill "$dmesg_pid" 2>/dev/null; wait "$dmesg_pid" 2>/dev/null; fi
	echo "$1" >/mnt/out/exit-status 2>/dev/null
	sync
	mount -o remount,ro / 2>/dev/null
	echo o >/proc/sysrq-trigger
	# Wait for the power-off with builtins only: by now the root disk may
	# be gone, an exec of sleep from it fails, and PID 1 returning panics
	# the kernel (seen after a make bench run: "sleep: command not found").
	while :; do read -r -t 30 _ </dev/console; done
}

mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
mount -t configfs configfs /sys/kernel/config
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L out /mnt/out || { echo "guest-init: no out share"; finish 125; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro kmod /mnt/kmod || { echo "guest-init: no kmod share"; finish 125; }
# The kernel log streams to the out share while the run goes on (the ring
# buffer, log_buf_len=16M, holds the whole suite too): a hung or killed VM
# still leaves every line it logged.
stdbuf -oL dmesg -w >/mnt/out/dmesg.txt 2>&1 &
dmesg_pid=$!
ip link set lo up
hostname rnvme-vm

# Modules: a writable copy so depmod can index rnvme_tcp.ko beside them.
kver=$(uname -r)
mkdir -p /lib/modules && mount -t tmpfs tmpfs /lib/modules
cp -a /mnt/kmod/lib/modules/"$kver" /lib/modules/
if [ -f /mnt/src/rnvme_tcp.ko ]; then
	mkdir -p /lib/modules/"$kver"/extra
	cp /mnt/src/rnvme_tcp.ko /lib/modules/"$kver"/extra/
fi
mkdir -p /etc/modprobe.d
cp /mnt/src/qemu/modprobe-rnvme-tcp.conf /etc/modprobe.d/rnvme-tcp.conf
depmod -a

# The console shows warnings and worse (KERN_WARNING is 4: WARN() splats and
# lockdep reports); everything else is in dmesg.txt.
echo 5 >/proc/sys/kernel/printk

cd /mnt/src || finish 125
if [ -s /mnt/out/cmd ]; then
	bash /mnt/out/cmd
	rc=$?
else
	echo "guest-init: no command given"; rc=125
fi
finish "$rc"
