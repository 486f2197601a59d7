#!/bin/bash
# The read_sock receive mode (module parameter read_sock=1, for the A/B
# benchmark): io_work pushes skbs through the same receive machine; fio
# verify at 4k/64k/1M with and without digests, and io_work's counters show
# it completed the commands.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
unload_transports || fail "cannot unload the transports"
modprobe rnvme_tcp read_sock=1 || fail "cannot load rnvme_tcp read_sock=1"
for digests in "" "--hdr-digest --data-digest"; do
	dmesg_mark
	# shellcheck disable=SC2086
	ctrl=$(rust_connect $digests) || fail "connect ($digests) failed"
	dmesg_since_mark | grep -q "nvme $ctrl: new ctrl: .*(rnvme_tcp, read_sock receive path)" ||
		fail "$ctrl was not created in read_sock mode"
	assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
	dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
	for bs in 4k 64k 1M; do
		run_fio --name="rs-$bs" --filename="$dev" --rw=randwrite --bs=$bs --size=8M --ioengine=libaio --iodepth=16 \
			--direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio $bs ($digests) failed"
	done
	line=$(grep "^$ctrl qid 1 " /sys/kernel/debug/rnvme_tcp/queues) || fail "no counters for $ctrl qid 1"
	log "$line"
	done_cmds=$(tr ' ' '\n' <<<"$line" | sed -n 's/^work_completions=//p')
	[ "${done_cmds:-0}" -gt 0 ] || fail "io_work completed no command in read_sock mode"
	run nvme disconnect -n "$NQN" || fail "disconnect failed"
done
