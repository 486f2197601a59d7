#!/bin/bash
# The target goes away and comes back: the host retries every reconnect_delay and reconnects; data verifies.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
dmesg_mark
ctrl=$(rust_connect --reconnect-delay=1 --ctrl-loss-tmo=30) || fail "connect failed"
on_exit nvme disconnect -n "$NQN"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
run_fio --name=before --filename="$dev" --rw=write --bs=64k --size=4M --ioengine=libaio --iodepth=4 --direct=1 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio before the outage failed"
# Take the port down: nvmet drops the controllers, nothing listens.
rm "$NVMET/ports/1/subsystems/$NQN"
rmdir "$NVMET/ports/1"
for i in $(seq 100); do dmesg_since_mark | grep -q "nvme $ctrl: Failed reconnect attempt" && break; sleep 0.2; done
dmesg_since_mark | grep -q "nvme $ctrl: Failed reconnect attempt" || fail "no reconnect attempt while the target was down"
# Bring it back.
mkdir "$NVMET/ports/1"
echo ipv4 >"$NVMET/ports/1/addr_adrfam"; echo tcp >"$NVMET/ports/1/addr_trtype"
echo "$TRADDR" >"$NVMET/ports/1/addr_traddr"; echo "$TRSVCID" >"$NVMET/ports/1/addr_trsvcid"
ln -s "$NVMET/subsystems/$NQN" "$NVMET/ports/1/subsystems/$NQN"
for i in $(seq 100); do dmesg_since_mark | grep -q "nvme $ctrl: Successfully reconnected" && break; sleep 0.2; done
dmesg_since_mark | grep -q "nvme $ctrl: Successfully reconnected (attempt" || fail "did not reconnect after the target came back"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
run_fio --name=before --filename="$dev" --rw=read --bs=64k --size=4M --ioengine=libaio --iodepth=4 --direct=1 \
	--verify=crc32c --verify_only=1 --verify_fatal=1 || fail "data written before the outage does not verify"
dmesg_since_mark | grep -o "nvme $ctrl: \(starting error\|Reconnecting\|Failed reconnect\|Successfully\).*" | sort | uniq -c | sed 's/^/# /'
