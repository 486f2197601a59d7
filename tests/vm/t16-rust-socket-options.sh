#!/bin/bash
# host_traddr and tos: the queues bind to the given source address; a bad address fails clearly.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
dmesg_mark
ctrl=$(rust_connect --host-traddr=127.0.0.1 --tos=16) || fail "connect with socket options failed"
on_exit nvme disconnect -n "$NQN"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
run_fio --name=opts --filename="$dev" --rw=randwrite --bs=4k --size=2M --ioengine=libaio --iodepth=4 --direct=1 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio failed"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
# 127.0.0.2 is not bound to lo by default, 192.0.2.1 (TEST-NET-1) is on no interface.
log "\$ echo ...,host_traddr=192.0.2.1 > /dev/nvme-fabrics"
echo "transport=tcp,traddr=$TRADDR,trsvcid=$TRSVCID,nqn=$NQN,host_traddr=192.0.2.1" >/dev/nvme-fabrics 2>/dev/null &&
	fail "connect from an address of no interface succeeded"
dmesg_since_mark | grep -q 'rnvme_tcp: failed to bind to host_traddr: -99' || fail "no clear error for a bad host_traddr"
dmesg_since_mark | grep -o 'rnvme_tcp: failed to bind.*' | sed 's/^/# /'
