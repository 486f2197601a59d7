#!/bin/bash
# Batched header receive (module parameter recv_batch, default 1024 bytes):
# at a PDU header one recvmsg fills the queue's staging buffer and every
# PDU in it is parsed. fio verify reads back 4k blocks at QD32 and 128k
# blocks (payload partly copied from the staging buffer, the rest
# received into the request), the 128k ones with digests; the I/O queue's
# counters show headers parsed from the staging buffer (stage_pdus, which
# only this path moves) and fewer recvmsg calls per completion than the
# same job with recv_batch=0 (10% fewer at least), which leaves the stage counters at 0.
# Payload tails (recv_tail, default 128): the receive of a payload's end
# also fills the staging buffer's first bytes with the headers behind it;
# the default 4k job moves stage_tails and makes at least 20% fewer calls
# per completion than the same job with recv_tail=0, which leaves it at 0.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
counter() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
qline() { grep "^$1 qid 1 " /sys/kernel/debug/rnvme_tcp/queues; }
# Writes the namespace's first $4 with verify headers at $3 blocks, then
# reads them back at random, QD32, verifying; prints the qid 1 counters
# from before and after the read job.
write_then_read() {
	local ctrl=$1 dev=$2 bs=$3 size=$4 before after
	run_fio --name="w-$bs" --filename="$dev" --rw=write --bs="$bs" --size="$size" --ioengine=libaio --iodepth=16 \
		--direct=1 --verify=crc32c --do_verify=0 >&2 || return 1
	before=$(qline "$ctrl") || return 1
	run_fio --name="r-$bs" --filename="$dev" --rw=randread --bs="$bs" --size="$size" --ioengine=libaio --iodepth=32 \
		--direct=1 --verify=crc32c --verify_fatal=1 >&2 || return 1
	after=$(qline "$ctrl") || return 1
	echo "$before"
	echo "$after"
}
delta() { echo $(( $(counter "$2" "$3") - $(counter "$1" "$3") )); }
# Per-mille recvmsg calls per completed command of the read job.
calls_per_io() {
	local c n
	c=$(delta "$1" "$2" recvmsg_calls); n=$(delta "$1" "$2" work_completions)
	[ "$n" -gt 0 ] || { log "no completions"; echo 0; return; }
	echo $(( c * 1000 / n ))
}

unload_transports || fail "cannot unload the transports"
modprobe rnvme_tcp || fail "cannot load rnvme_tcp"
for run in "4k 2M" "128k 4M --hdr-digest --data-digest"; do
	read -r bs size digests <<<"$run"
	# shellcheck disable=SC2086
	ctrl=$(rust_connect --nr-io-queues=1 $digests) || fail "connect ($digests) failed"
	assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
	dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
	lines=$(write_then_read "$ctrl" "$dev" "$bs" "$size") || fail "fio verify at $bs ($digests) failed"
	b=$(sed -n 1p <<<"$lines"); a=$(sed -n 2p <<<"$lines")
	log "after $bs: $a"
	[ "$(delta "$b" "$a" stage_pdus)" -gt 0 ] || fail "$bs reads: no header parsed from the staging buffer"
	[ "$(delta "$b" "$a" stage_payload)" -gt 0 ] || fail "$bs reads: no payload copied from the staging buffer"
	if [ "$bs" = 4k ]; then
		batched=$(calls_per_io "$b" "$a")
		[ "$(delta "$b" "$a" stage_tails)" -gt 0 ] || fail "4k reads: no payload end received with a tail"
	fi
	run nvme disconnect -n "$NQN" || fail "disconnect failed"
done
log "4k QD32 reads, batched with payload tails: $batched recvmsg calls per 1000 completions"
# The same 4k job without payload tails.
unload_transports || fail "cannot unload rnvme_tcp"
modprobe rnvme_tcp recv_tail=0 || fail "cannot load rnvme_tcp recv_tail=0"
ctrl=$(rust_connect --nr-io-queues=1) || fail "connect with recv_tail=0 failed"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
lines=$(write_then_read "$ctrl" "$dev" 4k 2M) || fail "fio verify with recv_tail=0 failed"
b=$(sed -n 1p <<<"$lines"); a=$(sed -n 2p <<<"$lines")
log "recv_tail=0: $a"
untailed=$(calls_per_io "$b" "$a")
log "4k QD32 reads, batched without payload tails: $untailed recvmsg calls per 1000 completions"
[ "$(delta "$b" "$a" stage_tails)" -eq 0 ] || fail "stage_tails moved with recv_tail=0"
[ "$batched" -gt 0 ] && [ $((batched * 10)) -lt $((untailed * 8)) ] ||
	fail "payload tails made $batched calls per 1000 I/Os, without them $untailed: not 20% fewer"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
# The same 4k job unbatched: more calls per I/O, and the stage counters stay.
unload_transports || fail "cannot unload rnvme_tcp"
modprobe rnvme_tcp recv_batch=0 || fail "cannot load rnvme_tcp recv_batch=0"
ctrl=$(rust_connect --nr-io-queues=1) || fail "connect with recv_batch=0 failed"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
lines=$(write_then_read "$ctrl" "$dev" 4k 2M) || fail "fio verify with recv_batch=0 failed"
b=$(sed -n 1p <<<"$lines"); a=$(sed -n 2p <<<"$lines")
log "recv_batch=0: $a"
plain=$(calls_per_io "$b" "$a")
log "4k QD32 reads, unbatched: $plain recvmsg calls per 1000 completions"
[ "$(counter "$a" stage_fills)" -eq 0 ] || fail "stage_fills moved with recv_batch=0"
[ "$(counter "$a" stage_pdus)" -eq 0 ] || fail "stage_pdus moved with recv_batch=0"
[ "$batched" -gt 0 ] && [ $((batched * 10)) -lt $((plain * 9)) ] ||
	fail "batched receive made $batched calls per 1000 I/Os, unbatched $plain: not 10% fewer"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
