#!/bin/bash
# nvme reset during a verifying fio run: the controller reconnects, I/O completes, data verifies after.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
dmesg_mark
ctrl=$(rust_connect) || fail "connect failed"
on_exit nvme disconnect -n "$NQN"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
fio --name=busy --filename="$dev" --rw=randwrite --bs=4k --size=16M --ioengine=libaio --iodepth=16 --direct=1 \
	--time_based --runtime=8 --verify=crc32c --verify_fatal=1 --verify_state_save=0 >/tmp/reset-fio.txt 2>&1 &
fio_pid=$!
sleep 3
run nvme reset "/dev/$ctrl" || fail "nvme reset failed"
wait $fio_pid || { sed 's/^/#   /' /tmp/reset-fio.txt; fail "fio across the reset failed"; }
grep -E 'err=' /tmp/reset-fio.txt | sed 's/^ */#   /'
dmesg_since_mark | grep -q "nvme $ctrl: Successfully reconnected" || fail "no reconnect after reset"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp after the reset"
run_fio --name=after --filename="$dev" --rw=randwrite --bs=64k --size=8M --ioengine=libaio --iodepth=16 --direct=1 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "verify after reset failed"
dmesg_since_mark | grep -o "nvme $ctrl: \(resetting\|Successfully\).*" | sed 's/^/# /'
