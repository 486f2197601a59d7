#!/bin/bash
# No leaks: a controller's life (connect with digests and a poll queue, I/O
# with R2T, nvme reset, disconnect) leaves no unreferenced object that
# rnvme_tcp allocated or that was allocated on its behalf (kmemleak), and the
# module unloads after.
# needs: kmemleak
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
unload_transports || fail "cannot unload the transports"
kmemleak_begin || fail "kmemleak is not available"
dmesg_mark
ctrl=$(rust_connect --nr-io-queues=1 --nr-poll-queues=1 --hdr-digest --data-digest) || fail "connect failed"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
run_fio --name=r2t --filename="$dev" --rw=randwrite --bs=64k --size=2M --ioengine=libaio --iodepth=8 --direct=1 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio failed"
run nvme reset "/dev/$ctrl" || fail "nvme reset failed"
for _ in $(seq 50); do [ "$(cat /sys/class/nvme/"$ctrl"/state)" = live ] && break; sleep 0.2; done
run_fio --name=polled --filename="$dev" --rw=randwrite --bs=4k --size=512k --ioengine=io_uring --hipri=1 --iodepth=8 \
	--direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio after reset failed"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
# Scanned while rnvme_tcp is loaded, so its frames have names...
kmemleak_check "after disconnect" || fail "leak after disconnect"
# rmmod, not modprobe -r: nvme_core and nvme_fabrics stay, so their frames
# keep their names in the report.
rmmod rnvme_tcp || fail "rnvme_tcp cannot be unloaded"
# ...and after the unload, for what lived as long as the module.
kmemleak_check "after unload" || fail "leak after unload"
