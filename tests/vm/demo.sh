#!/bin/bash
# What `make run` shows in the VM: the Rust transport registered, the
# nvmet-tcp target up, and a connect through the Rust module.
. "$(dirname "$0")/lib.sh"
echo 7 >/proc/sys/kernel/printk
title() { printf '\n===== %s =====\n' "$*"; }
title "kernel $(uname -r), modules"
use_rust_driver || fail "rnvme_tcp does not load"
lsmod | grep -E '^(Module|rnvme_tcp|nvme|nvmet)' || true
title "nvmet-tcp target"
target_up || fail "target set-up failed"
target_listening && echo "listening on $TRADDR:$TRSVCID, subsystem $NQN, namespace /dev/ram0"
title "nvme connect -t tcp -a $TRADDR -s $TRSVCID -n $NQN (Rust transport)"
if nvme connect -t tcp -a "$TRADDR" -s "$TRSVCID" -n "$NQN"; then
	nvme list
	ctrl=$(ctrl_for_nqn) && dev=$(ns_dev_of "$ctrl") &&
		fio --name=demo --filename="$dev" --rw=randrw --bs=4k --size=16M --ioengine=libaio \
			--iodepth=8 --direct=1 --verify=crc32c --runtime=10
	nvme disconnect -n "$NQN"
else
	echo "connect refused by the Rust transport: the I/O path is not implemented yet (see dmesg below)"
fi
dmesg | grep -E 'rnvme_tcp|nvme_fabrics|nvmet' | tail -n 8
true
