#!/bin/bash
# No leaks: a controller's life (connect with digests and a poll queue, I/O
# with R2T, nvme reset, disconnect) leaves no unreferenced object that
# rnvme_tcp allocated or that was allocated on its behalf (kmemleak), and the
# module unloads after.
# needs: kmemleak
. "$(dirname "$0")/lib.sh"
KL=/sys/kernel/debug/kmemleak
[ -w $KL ] || fail "no $KL (the test kernel has CONFIG_DEBUG_KMEMLEAK)"
target_up || fail "target set-up failed"
on_exit unload_transports
# kmemleak reports an object once two scans found it unreferenced and it
# is older than 5 s.
scan_twice() { echo scan >$KL; echo scan >$KL; }
# Forget what boot and earlier tests left behind.
unload_transports || fail "cannot unload the transports"
sleep 6
scan_twice
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
# Objects allocated by host-side code: frames in [rnvme_tcp], [nvme_core]
# or [nvme_fabrics] (the target's nvmet frames are not ours). After the
# unload rnvme_tcp's own frames lose their names, but its allocations at
# connect still show nvme-fabrics' nvmf_dev_write.
check_leaks() {
	local report total ours
	sleep 6
	scan_twice
	report=$(cat $KL)
	total=$(grep -c '^unreferenced object' <<<"$report")
	ours=$(awk -v re='\\[(rnvme_tcp|nvme_core|nvme_fabrics)\\]' \
		'/^unreferenced object/ { if (rec ~ re) n++; rec = "" } { rec = rec "\n" $0 } END { if (rec ~ re) n++; print n + 0 }' \
		<<<"$report")
	log "kmemleak $1: $total unreferenced objects since the test began, $ours from host nvme code"
	[ "$total" -gt 0 ] && sed 's/^/#   /' <<<"$report" | head -n 60
	[ "$ours" -eq 0 ] || fail "leak found $1: $ours objects"
	return 0
}
# Scanned while rnvme_tcp is loaded, so its frames have names...
check_leaks "after disconnect"
# rmmod, not modprobe -r: nvme_core and nvme_fabrics stay, so their frames
# keep their names in the report.
rmmod rnvme_tcp || fail "rnvme_tcp cannot be unloaded"
# ...and after the unload, for what lived as long as the module.
check_leaks "after unload"
