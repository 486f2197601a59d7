#!/bin/bash
# fio verify=crc32c through rnvme_tcp: 4k (in-capsule writes), 64k and 1M (R2T/H2CData), libaio and io_uring, QD 1 and 32.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
ctrl=$(rust_connect) || fail "connect through rnvme_tcp failed"
on_exit nvme disconnect -n "$NQN"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
# One fio run, the jobs one after the other (--stonewall): starting fio
# costs seconds in the guest.
n=0 jobs=()
for bs in 4k 64k 1M; do
	for engine in libaio io_uring; do
		for qd in 1 32; do
			n=$((n + 1))
			size=512k; [ "$bs" = 64k ] && size=2M; [ "$bs" = 1M ] && size=8M
			jobs+=(--name="v$n-$bs-$engine-qd$qd" --stonewall --filename="$dev" --offset=$(((n - 1) * 20))M --rw=randwrite
				--bs="$bs" --size="$size" --ioengine="$engine" --iodepth="$qd" --direct=1 --verify=crc32c --do_verify=1
				--verify_fatal=1)
		done
	done
done
run_fio "${jobs[@]}" || fail "fio verify failed (the job without err= 0 above)"
inline=$(cat "$NVMET/ports/1/param_inline_data_size" 2>/dev/null || echo "?")
log "$n fio verify jobs passed on $dev (target in-capsule limit $inline bytes: 64k and 1M writes use R2T/H2CData)"
