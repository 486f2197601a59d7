#!/bin/bash
# nvme connect creates a controller served by rnvme_tcp; its namespace appears;
# I/O queues run io_work on distinct CPUs; disconnect removes it.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
dmesg_mark
ctrl=$(rust_connect) || fail "connect through rnvme_tcp failed"
on_exit nvme disconnect -n "$NQN"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device for $ctrl"
size=$(blockdev --getsize64 "$dev")
[ "$size" = "$(blockdev --getsize64 /dev/ram0)" ] || fail "$dev has $size bytes, the target namespace has $(blockdev --getsize64 /dev/ram0)"
nvme list | sed 's/^/#   /'
# Each I/O queue's io_work is pinned to a CPU blk-mq maps to it, one per CPU.
grep "^$ctrl " /sys/kernel/debug/rnvme_tcp/queues | sed 's/^/# /'
ioq=$(grep "^$ctrl qid [1-9]" /sys/kernel/debug/rnvme_tcp/queues)
[ -n "$ioq" ] || fail "no I/O queues of $ctrl in debugfs"
grep -q 'cpu=any' <<<"$ioq" && fail "an I/O queue's io_work is not pinned to a CPU"
[ "$(grep -o 'cpu=[0-9]*' <<<"$ioq" | sort -u | wc -l)" = "$(wc -l <<<"$ioq")" ] || fail "I/O queues share a CPU"

dmesg_since_mark | grep -o 'nvme nvme[0-9]*: .*' | sed 's/^/# /'
run nvme disconnect -n "$NQN" || fail "disconnect failed"
ctrl_for_nqn >/dev/null && fail "controller still present after disconnect"
modprobe -r rnvme_tcp || fail "rnvme_tcp cannot be unloaded after disconnect"
true
