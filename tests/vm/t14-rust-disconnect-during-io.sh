#!/bin/bash
# Disconnect while fio runs: I/O fails cleanly, the controller goes away, the module unloads.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
ctrl=$(rust_connect) || fail "connect failed"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
fio --name=busy --filename="$dev" --rw=randrw --bs=64k --size=16M --ioengine=libaio --iodepth=16 --direct=1 \
	--time_based --runtime=30 >/tmp/disc-fio.txt 2>&1 &
fio_pid=$!
sleep 3
run timeout 60 nvme disconnect -n "$NQN" || fail "disconnect during I/O failed"
timeout 60 bash -c "wait $fio_pid" 2>/dev/null
sleep 1
kill -0 $fio_pid 2>/dev/null && fail "fio still running 60 s after the disconnect"
grep -E 'err=' /tmp/disc-fio.txt | head -n 2 | sed 's/^ */#   /'
ctrl_for_nqn >/dev/null && fail "controller still present"
run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload after the disconnect"
true
