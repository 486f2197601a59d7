#!/bin/bash
# No leaks: a controller's life (connect with digests and a poll queue, I/O
# with R2T, nvme reset, disconnect) leaves no unreferenced object that
# rnvme_tcp allocated or that was allocated on its behalf (kmemleak), and the
# module unloads after.
. "$(dirname "$0")/lib.sh"
KL=/sys/kernel/debug/kmemleak
[ -w $KL ] || fail "no $KL (the test kernel has CONFIG_DEBUG_KMEMLEAK)"
target_up || fail "target set-up failed"
on_exit unload_transports
# Forget what boot and earlier tests left behind.
echo scan >$KL
echo clear >$KL
dmesg_mark
ctrl=$(rust_connect --nr-io-queues=1 --nr-poll-queues=1 --hdr-digest --data-digest) || fail "connect failed"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
run_fio --name=r2t --filename="$dev" --rw=randwrite --bs=64k --size=4M --ioengine=libaio --iodepth=8 --direct=1 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio failed"
run nvme reset "/dev/$ctrl" || fail "nvme reset failed"
for _ in $(seq 50); do [ "$(cat /sys/class/nvme/"$ctrl"/state)" = live ] && break; sleep 0.2; done
run_fio --name=polled --filename="$dev" --rw=randwrite --bs=4k --size=2M --ioengine=io_uring --hipri=1 --iodepth=8 \
	--direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio after reset failed"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
# kmemleak reports objects older than 5 s only; scan while rnvme_tcp is
# still loaded so its frames have names.
sleep 6
echo scan >$KL
report=$(cat $KL)
total=$(grep -c '^unreferenced object' <<<"$report")
# Host-side frames only: [rnvme_tcp], [nvme_core], [nvme_fabrics] (the
# target's nvmet frames are not ours).
ours=$(awk -v re='\\[(rnvme_tcp|nvme_core|nvme_fabrics)\\]' \
	'/^unreferenced object/ { if (rec ~ re) n++; rec = "" } { rec = rec "\n" $0 } END { if (rec ~ re) n++; print n + 0 }' \
	<<<"$report")
log "kmemleak: $total unreferenced objects since the test began, $ours from nvme/rnvme_tcp code"
if [ "$ours" -gt 0 ]; then
	sed 's/^/#   /' <<<"$report" | head -n 80
	fail "rnvme_tcp leaked $ours objects"
fi
modprobe -r rnvme_tcp || fail "rnvme_tcp cannot be unloaded"
