#!/bin/bash
# Separate write queues (nr_write_queues): default/read maps, fio verify.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
dmesg_mark
ctrl=$(rust_connect --nr-io-queues=1 --nr-write-queues=1) || fail "connect with write queues failed"
on_exit nvme disconnect -n "$NQN"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dmesg_since_mark | grep -q "nvme $ctrl: mapped 1/1/0 default/read/poll queues" || fail "queues not mapped 1/1/0"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
run_fio --name=wq --filename="$dev" --rw=randwrite --bs=16k --size=2M --ioengine=libaio --iodepth=16 \
	--direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio failed"
dmesg_since_mark | grep -o "nvme $ctrl: mapped.*" | sed 's/^/# /'
