#!/bin/bash
# host_traddr, tos and host_iface: every queue's socket binds to the given source address (127.0.0.2, not
# the default 127.0.0.1) or interface and carries the given TOS (ss --tos) and, with lockdep, the RNVME socket
# lock classes; a bad address or interface fails clearly.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
dmesg_mark
# All of 127.0.0.0/8 is local on lo: 127.0.0.2 needs no set-up, and a socket
# that ignored host_traddr would show the route's source, 127.0.0.1.
ctrl=$(rust_connect --host-traddr=127.0.0.2 --tos=16) || fail "connect with socket options failed"
on_exit nvme disconnect -n "$NQN"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
socks=$(ss -tnH --tos state established "( dport = :$TRSVCID )")
sed 's/^/#   /' <<<"$socks"
all=$(grep -c . <<<"$socks")
bound=$(awk '$3 ~ /^127\.0\.0\.2:/' <<<"$socks" | grep -c .)
tos=$(grep -c 'tos:0x10' <<<"$socks")
[ "$all" -ge 2 ] || fail "expected the admin and I/O queue sockets, ss shows $all"
[ "$bound" = "$all" ] || fail "$bound of $all queue sockets have source address 127.0.0.2"
[ "$tos" = "$all" ] || fail "$tos of $all queue sockets carry tos 0x10"
log "$all queue sockets from 127.0.0.2 with tos 0x10"
# sysfs address names the admin connection's source address (C:
# nvme_tcp_get_address), so a user can tell which local address a path uses.
addr=$(cat "/sys/class/nvme/$ctrl/address")
log "address: $addr"
grep -q 'src_addr=127\.0\.0\.2$' <<<"$addr" || fail "sysfs address has no src_addr=127.0.0.2: $addr"
run_fio --name=opts --filename="$dev" --rw=randwrite --bs=4k --size=512k --ioengine=libaio --iodepth=4 --direct=1 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio failed"
# lockdep: the queue sockets have their own lock classes (as the C driver's
# sk_lock-AF_INET-NVME), which the socket set-up gives them.
if [ -r /proc/lockdep ]; then
	for class in sk_lock-AF_INET-RNVME slock-AF_INET-RNVME; do
		grep -qF -- " $class" /proc/lockdep || fail "lockdep has no class $class: queue sockets not reclassified"
	done
	log "queue sockets in lockdep classes sk_lock-AF_INET-RNVME, slock-AF_INET-RNVME"
else
	log "no /proc/lockdep (kernel without lockdep): socket lock classes not checked"
fi
run nvme disconnect -n "$NQN" || fail "disconnect failed"
# 192.0.2.1 (TEST-NET-1) is on no interface.
expect_refused host_traddr=192.0.2.1 'rnvme_tcp: failed to bind to host_traddr: -99' ||
	fail "no clear error for a bad host_traddr"
# host_iface: every queue's socket is bound to lo (SO_BINDTODEVICE); an
# interface that does not exist fails the connect with a clear error.
ctrl=$(rust_connect --host-iface=lo) || fail "connect with host_iface=lo failed"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
run ss -tnH state established "( dport = :$TRSVCID )"
bound=$(ss -tnH state established "( dport = :$TRSVCID )" | grep -c '%lo:')
all=$(ss -tnH state established "( dport = :$TRSVCID )" | wc -l)
[ "$all" -ge 2 ] && [ "$bound" = "$all" ] || fail "$bound of $all queue sockets are bound to lo"
run_fio --name=iface --filename="$dev" --rw=randwrite --bs=4k --size=512k --ioengine=libaio --iodepth=4 --direct=1 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio over host_iface=lo failed"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
expect_refused host_iface=nosuch0 'rnvme_tcp: invalid interface passed: nosuch0' ||
	fail "no clear error for a bad host_iface"
