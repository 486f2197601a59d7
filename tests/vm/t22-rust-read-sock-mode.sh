#!/bin/bash
# The read_sock receive mode (module parameter read_sock=1, for the A/B
# benchmark): io_work pushes skbs through the same receive machine; fio
# verify at 4k/64k/1M with and without digests. The I/O queue's counters show
# read_sock() calls and no sock_recvmsg() call in that mode, and the reverse
# in the default mode.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
unload_transports || fail "cannot unload the transports"
modprobe rnvme_tcp read_sock=1 || fail "cannot load rnvme_tcp read_sock=1"
counter() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
for digests in "" "--hdr-digest --data-digest"; do
	dmesg_mark
	# shellcheck disable=SC2086
	ctrl=$(rust_connect $digests) || fail "connect ($digests) failed"
	dmesg_since_mark | grep -q "nvme $ctrl: new ctrl: .*(rnvme_tcp, read_sock receive path)" ||
		fail "$ctrl was not created in read_sock mode"
	assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
	dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
	jobs=()
	for bs in 4k 64k 1M; do
		size=512k; [ "$bs" = 64k ] && size=2M; [ "$bs" = 1M ] && size=4M
		jobs+=(--name="rs-$bs" --stonewall --filename="$dev" --rw=randwrite --bs=$bs --size=$size --ioengine=libaio
			--iodepth=16 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1)
	done
	run_fio "${jobs[@]}" || fail "fio ($digests) failed (the job without err= 0 above)"
	line=$(grep "^$ctrl qid 1 " /sys/kernel/debug/rnvme_tcp/queues) || fail "no counters for $ctrl qid 1"
	log "$line"
	done_cmds=$(counter "$line" work_completions)
	[ "${done_cmds:-0}" -gt 0 ] || fail "io_work completed no command in read_sock mode"
	[ "$(counter "$line" read_sock_calls)" -gt 0 ] || fail "no read_sock() call in read_sock mode"
	[ "$(counter "$line" recvmsg_calls)" -eq 0 ] || fail "sock_recvmsg() calls in read_sock mode"
	run nvme disconnect -n "$NQN" || fail "disconnect failed"
done
# The default mode moves the other counter only.
unload_transports || fail "cannot unload rnvme_tcp"
ctrl=$(rust_connect) || fail "connect in recvmsg mode failed"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
run_fio --name=rm-4k --filename="$dev" --rw=randwrite --bs=4k --size=512k --ioengine=libaio --iodepth=16 \
	--direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio in recvmsg mode failed"
line=$(grep "^$ctrl qid 1 " /sys/kernel/debug/rnvme_tcp/queues) || fail "no counters for $ctrl qid 1"
log "$line"
[ "$(counter "$line" recvmsg_calls)" -gt 0 ] || fail "no sock_recvmsg() call in recvmsg mode"
[ "$(counter "$line" read_sock_calls)" -eq 0 ] || fail "read_sock() calls in recvmsg mode"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
