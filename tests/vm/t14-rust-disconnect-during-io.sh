#!/bin/bash
# Disconnect while fio has I/O in flight: the I/O fails (fio ends with errors, it does not hang), the
# controller goes away and the module unloads.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
ctrl=$(rust_connect) || fail "connect failed"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
blk=$(basename "$dev")
fio --name=busy --filename="$dev" --rw=randrw --bs=64k --size=16M --ioengine=libaio --iodepth=16 --direct=1 \
	--time_based --runtime=60 >/tmp/disc-fio.txt 2>&1 &
fio_pid=$!
on_exit kill -9 $fio_pid
# Disconnect only once requests are in flight on the device.
inflight=0
for i in $(seq 100); do
	read -r r w <"/sys/block/$blk/inflight" 2>/dev/null || break
	inflight=$((r + w)); [ $inflight -gt 0 ] && break
	sleep 0.1
done
[ $inflight -gt 0 ] || fail "no request was in flight on $blk"
log "$inflight requests in flight at disconnect"
run timeout 60 nvme disconnect -n "$NQN" || fail "disconnect during I/O failed"
# fio is this shell's child: poll until it has exited, then collect its status.
for i in $(seq 600); do kill -0 $fio_pid 2>/dev/null || break; sleep 0.1; done
kill -0 $fio_pid 2>/dev/null && fail "fio still running 60 s after the disconnect"
wait $fio_pid; rc=$?
grep -E 'err=|error' /tmp/disc-fio.txt | head -n 3 | sed 's/^ */#   /'
[ $rc -ne 0 ] || fail "fio ended with status 0: its I/O did not fail at the disconnect"
grep -q -E 'err= *[1-9]|error' /tmp/disc-fio.txt || fail "fio reported no I/O error"
ctrl_for_nqn >/dev/null && fail "controller still present"
run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload after the disconnect"
true
