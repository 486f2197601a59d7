#!/bin/bash
# No leaks over TLS: a TLS controller's life (handshakes on every queue, I/O with digests and R2T, nvme reset,
# which shakes hands again, disconnect) and a handshake that times out and is cancelled leave no unreferenced
# object from host nvme code (kmemleak), and the module unloads after.
# needs: kmemleak
. "$(dirname "$0")/lib.sh"
command -v tlshd >/dev/null || fail "tlshd not installed (ktls-utils is in the rootfs recipe)"
tls_up || fail "TLS set-up (key, tlshd) failed"
target_up || fail "target set-up failed"
on_exit unload_transports
unload_transports || fail "cannot unload the transports"
kmemleak_begin || fail "kmemleak is not available"
modprobe rnvme_tcp tls_handshake_timeout=2 || fail "cannot load rnvme_tcp"
dmesg_mark
run nvme connect -t tcp --tls -a "$TRADDR" -s "$TRSVCID" -n "$NQN" --nr-io-queues=1 --hdr-digest --data-digest ||
	fail "TLS connect failed"
ctrl=$(ctrl_for_nqn) || fail "no controller for $NQN"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
run_fio --name=r2t --filename="$dev" --rw=randwrite --bs=64k --size=2M --ioengine=libaio --iodepth=8 --direct=1 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio failed"
key=$(cat /sys/class/nvme/"$ctrl"/tls_key)
run nvme reset "/dev/$ctrl" || fail "nvme reset failed"
for _ in $(seq 50); do [ "$(cat /sys/class/nvme/"$ctrl"/state)" = live ] && break; sleep 0.2; done
[ "$(cat /sys/class/nvme/"$ctrl"/tls_key)" = "$key" ] || fail "tls_key after reset is not $key"
[ "$(dmesg_since_mark | grep -c "nvme $ctrl: queue 0: TLS 1.3 session with PSK $key")" -ge 2 ] ||
	fail "the reset did not shake hands again"
run_fio --name=after-reset --filename="$dev" --rw=randrw --bs=4k --size=512k --ioengine=libaio --iodepth=8 \
	--direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio after reset failed"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
# A handshake nobody answers: timed out and cancelled.
kill -STOP "$_tlshd_pid"
nvme connect -t tcp --tls -a "$TRADDR" -s "$TRSVCID" -n "$NQN" >/dev/null 2>&1 && { kill -CONT "$_tlshd_pid"; fail "connect succeeded with tlshd stopped"; }
kill -CONT "$_tlshd_pid"
dmesg_since_mark | grep -q "rnvme_tcp: queue 0: TLS handshake timed out" || fail "no handshake timeout"
kmemleak_check "after disconnect" || fail "leak after disconnect"
rmmod rnvme_tcp || fail "rnvme_tcp cannot be unloaded"
kmemleak_check "after unload" || fail "leak after unload"
