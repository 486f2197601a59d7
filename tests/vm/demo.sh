#!/bin/bash
# What `make run` shows in the VM: the Rust transport registered, the
# nvmet-tcp target up, a controller connected through rnvme_tcp, its
# namespace, and a short fio run with crc32c verification.
. "$(dirname "$0")/lib.sh"
title() { printf '\n===== %s =====\n' "$*"; }
title "kernel $(uname -r): loading the Rust transport"
use_rust_driver || fail "rnvme_tcp does not load"
lsmod | grep -E '^(Module|rnvme_tcp|nvme)' || true
dmesg | grep 'rnvme_tcp: registered' | tail -n1
title "nvmet-tcp target"
target_up || fail "target set-up failed"
target_listening && echo "listening on $TRADDR:$TRSVCID, subsystem $NQN, namespace /dev/ram0 (brd)"
title "nvme connect -t tcp -a $TRADDR -s $TRSVCID -n $NQN"
nvme connect -t tcp -a "$TRADDR" -s "$TRSVCID" -n "$NQN" || fail "connect failed"
ctrl=$(ctrl_for_nqn) || fail "no controller"
dev=$(ns_dev_of "$ctrl") || fail "no namespace"
dmesg | grep "nvme $ctrl:" | tail -n 4
nvme list
title "fio: 10 s random read/write, 4k, QD 8, verify=crc32c on $dev"
# fio's own status decides (make run fails with it); grep only shows lines.
cd /tmp && fio --name=demo --filename="$dev" --rw=randrw --bs=4k --size=32M --ioengine=libaio --iodepth=8 \
	--direct=1 --verify=crc32c --verify_fatal=1 --verify_state_save=0 --time_based --runtime=10 ${DEMO_FIO_ARGS:-} \
	>/tmp/demo-fio.txt 2>&1
fio_rc=$?
grep -E 'err=|READ:|WRITE:|IOPS|verify|fio:' /tmp/demo-fio.txt
[ $fio_rc -eq 0 ] || fail "fio verify failed (status $fio_rc)"
title "disconnect and unload"
nvme disconnect -n "$NQN" || fail "disconnect failed"
modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload"
echo "rnvme_tcp unloaded"
target_down
