#!/bin/bash
# nvme reset while a write job runs: the controller reconnects, fio sees no error, and once it is back every
# block written before, during and after the reset reads back as written (fio --verify_only).
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
dmesg_mark
ctrl=$(rust_connect) || fail "connect failed"
on_exit nvme disconnect -n "$NQN"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
# One region per phase; the same job options write a region and later verify it.
region() {	# region NAME OFFSET SIZE SEED [fio options...]
	local name=$1 off=$2 size=$3 seed=$4; shift 4
	echo --name="$name" --filename="$dev" --offset="$off" --size="$size" --rw=write --bs=4k --ioengine=libaio \
		--iodepth=16 --direct=1 --verify=crc32c --randseed="$seed" "$@"
}
# shellcheck disable=SC2046
run_fio $(region before 0 512k 11 --do_verify=0) || fail "write before the reset failed"
# The write during the reset is rate-limited to last at least 4 s; the reset comes after 2 s.
# shellcheck disable=SC2046
fio --verify_state_save=0 $(region during 16M 1M 13 --do_verify=0 --rate=256k) >/tmp/reset-fio.txt 2>&1 &
fio_pid=$!
sleep 2
kill -0 $fio_pid 2>/dev/null || { sed 's/^/#   /' /tmp/reset-fio.txt; fail "the write job ended before the reset"; }
run nvme reset "/dev/$ctrl" || fail "nvme reset failed"
wait $fio_pid; rc=$?
grep -E 'err=|WRITE:' /tmp/reset-fio.txt | sed 's/^ */#   /'
[ $rc -eq 0 ] || { sed 's/^/#   /' /tmp/reset-fio.txt; fail "the write across the reset failed (fio status $rc)"; }
dmesg_since_mark | grep -q "nvme $ctrl: Successfully reconnected" || fail "no reconnect after reset"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp after the reset"
# shellcheck disable=SC2046
run_fio $(region after 64M 512k 17 --do_verify=1 --verify_fatal=1) || fail "write+verify after the reset failed"
# Every block written before and during the reset, read back now.
# shellcheck disable=SC2046
run_fio $(region before 0 512k 11 --verify_only --verify_fatal=1) || fail "blocks written before the reset differ"
# shellcheck disable=SC2046
run_fio $(region during 16M 1M 13 --verify_only --verify_fatal=1) || fail "blocks written during the reset differ"
dmesg_since_mark | grep -o "nvme $ctrl: \(resetting\|Successfully\).*" | sed 's/^/# /'
