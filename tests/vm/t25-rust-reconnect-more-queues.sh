#!/bin/bash
# A reconnect granted more I/O queues than before starts the added ones: I/O from every CPU completes.
. "$(dirname "$0")/lib.sh"
ncpu=$(nproc)
[ "$ncpu" -ge 2 ] || skip "needs 2 CPUs for 2 I/O queues"
target_up || fail "target set-up failed"
on_exit unload_transports
qid_max=$NVMET/subsystems/$NQN/attr_qid_max
[ -w "$qid_max" ] || skip "nvmet has no attr_qid_max"
echo 1 >"$qid_max" || fail "cannot limit the target to 1 I/O queue"
dmesg_mark
ctrl=$(rust_connect --nr-io-queues="$ncpu" --reconnect-delay=1 --ctrl-loss-tmo=30) || fail "connect failed"
on_exit nvme disconnect -n "$NQN"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
dmesg_since_mark | grep -q "nvme $ctrl: creating 1 I/O queues" || fail "the target granted more than 1 I/O queue"
# Allow more: nvmet drops its controllers, the host reconnects and gets them.
echo "$ncpu" >"$qid_max" || fail "cannot raise attr_qid_max"
for i in $(seq 100); do dmesg_since_mark | grep -q "nvme $ctrl: Successfully reconnected" && break; sleep 0.2; done
dmesg_since_mark | grep -q "nvme $ctrl: Successfully reconnected" || fail "did not reconnect"
dmesg_since_mark | grep -q "nvme $ctrl: creating $ncpu I/O queues" || fail "the reconnect did not get $ncpu I/O queues"
grep "^$ctrl " /sys/kernel/debug/rnvme_tcp/queues | sed 's/^/# /'
# Each CPU submits on its own hardware queue; one never started would hold I/O until the timeout.
for cpu in $(seq 0 $((ncpu - 1))); do
	timeout 20 taskset -c "$cpu" dd if="$dev" of=/dev/null bs=4k count=64 iflag=direct status=none ||
		fail "a read from CPU $cpu did not complete within 20 s"
	log "CPU $cpu: 64 reads completed"
done
dmesg_since_mark | grep -o "nvme $ctrl: \(creating\|starting error\|Reconnecting\|Successfully\|.*timeout\).*" | sed 's/^/# /'
