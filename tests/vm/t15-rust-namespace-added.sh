#!/bin/bash
# A namespace added on the target appears on the host (asynchronous event through rnvme_tcp).
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
ctrl=$(rust_connect) || fail "connect failed"
on_exit nvme disconnect -n "$NQN"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
[ -e "/sys/class/nvme/$ctrl/${ctrl}n2" ] && fail "namespace 2 exists before it is added"
ns=$NVMET/subsystems/$NQN/namespaces/2
mkdir "$ns" || fail "cannot add namespace 2 on the target"
on_exit "echo 0 > $ns/enable; rmdir $ns"
echo -n /dev/ram1 >"$ns/device_path"
echo 1 >"$ns/enable" || fail "cannot enable namespace 2"
for i in $(seq 100); do
	[ -b "/dev/${ctrl}n2" ] && break
	sleep 0.2
done
[ -b "/dev/${ctrl}n2" ] || fail "/dev/${ctrl}n2 did not appear within 20 s"
run_fio --name=ns2 --filename="/dev/${ctrl}n2" --rw=randwrite --bs=4k --size=512k --ioengine=libaio --iodepth=4 \
	--direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio on the new namespace failed"
log "/dev/${ctrl}n2 appeared after the target added namespace 2"
