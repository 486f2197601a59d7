#!/bin/bash
# Poll queues (nr_poll_queues) with io_uring hipri: the poll map exists, the
# namespace polls, fio verify passes at 4k/64k/1M and QD 1/32 (64k and 1M
# writes go by R2T), and blk-mq's poll callback completed commands on the
# poll queue (debugfs rnvme_tcp/queues).
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
dmesg_mark
ctrl=$(rust_connect --nr-io-queues=1 --nr-poll-queues=1) || fail "connect with a poll queue failed"
on_exit nvme disconnect -n "$NQN"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dmesg_since_mark | grep -q "nvme $ctrl: mapped 1/0/1 default/read/poll queues" || fail "queues not mapped 1/0/1"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
[ "$(cat "/sys/block/${dev#/dev/}/queue/io_poll")" = 1 ] || fail "$dev does not poll (queue/io_poll)"
stats=/sys/kernel/debug/rnvme_tcp/queues
[ -r $stats ] || fail "no $stats"
# Queue 2 is the poll queue (1 default + 1 poll).
counter() { grep "^$ctrl qid 2 " $stats | tr ' ' '\n' | sed -n "s/^$1=//p"; }
before=$(counter poll_completions)
[ -n "$before" ] || fail "no counters for $ctrl qid 2 in $stats"
jobs=()
for bs in 4k 64k 1M; do
	size=512k; [ "$bs" = 64k ] && size=2M; [ "$bs" = 1M ] && size=8M
	for qd in 1 32; do
		jobs+=(--name="poll-$bs-qd$qd" --stonewall --filename="$dev" --rw=randwrite --bs=$bs --size=$size
			--ioengine=io_uring --hipri=1 --iodepth=$qd --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1)
	done
done
run_fio "${jobs[@]}" || fail "fio hipri verify failed (the job without err= 0 above)"
grep "^$ctrl " $stats | sed 's/^/# /'
after=$(counter poll_completions)
[ "$after" -gt "$before" ] || fail "the poll callback completed no command ($before -> $after)"
log "poll callback completed $((after - before)) commands"
# io_work and the poller meet on the poll queue (io_work sends what
# queue_rq left it, then wants to receive): io_work leaves the socket to a
# poller that holds it and the poller queues io_work when it lets go. A
# lost hand-back would leave bytes unread until a command timed out.
deferred=$(counter work_recv_deferred) kicks=$(counter poll_kicks)
[ -n "$deferred" ] && [ -n "$kicks" ] || fail "no hand-off counters for $ctrl qid 2"
log "io_work left the socket to a poller $deferred times; pollers queued io_work $kicks times"
[ "$kicks" -le "$deferred" ] || fail "pollers queued io_work $kicks times for $deferred hand-offs"
dmesg_since_mark | grep -E "nvme $ctrl: I/O tag [0-9]+ .*timeout|rnvme_tcp.*timed out" && fail "a command timed out on the poll queue"
true
