#!/bin/bash
# Test bed check: the C nvme_tcp connects to the target, fio verifies 64 MiB (crc32c), disconnects.
. "$(dirname "$0")/lib.sh"
command -v fio >/dev/null || skip "fio not installed"
target_up || fail "target set-up failed"
use_c_driver || fail "could not load the C nvme_tcp"
on_exit unload_transports
run nvme connect -t tcp -a "$TRADDR" -s "$TRSVCID" -n "$NQN" || fail "C driver connect failed"
on_exit nvme disconnect -n "$NQN"
ctrl=$(ctrl_for_nqn) || fail "no controller for $NQN"
mod_loaded rnvme_tcp && fail "rnvme_tcp is loaded beside the C driver"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device for $ctrl"
log "$ctrl ($dev) served by the C nvme_tcp"
run_fio --name=verify --filename="$dev" --rw=randwrite --bs=64k --size=8M --ioengine=libaio \
	--iodepth=16 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio verify failed"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
ctrl_for_nqn >/dev/null && fail "controller still present after disconnect"
true
