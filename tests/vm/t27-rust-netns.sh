#!/bin/bash
# A controller created in another network namespace keeps every queue socket there, on reset and reconnect too (they run in kworkers, in init_net), and checks host_iface there once; data verifies.
. "$(dirname "$0")/lib.sh"
NS=rnvme27
PORT=27
ADDR=10.9.0.1 PEER=10.9.0.2
# No veth or dummy in the kernel config: the link between init_net and $NS
# is a pair of sit tunnels (IPv4 in IPv4, "mode any") over lo. Both are
# created in init_net, whose lo carries the encapsulated packets; sit27b
# then moves into $NS, so what it decapsulates arrives in $NS.
modprobe sit || skip "no sit module"
target_up || fail "target set-up failed"
on_exit unload_transports
ip netns add $NS || fail "ip netns add failed"
on_exit ip netns del $NS
on_exit ip -n $NS link del sit27b
on_exit ip link del sit27a
ip link add sit27a type sit mode any local 127.0.0.1 remote 127.0.0.2 || fail "no sit tunnel"
ip link add sit27b type sit mode any local 127.0.0.2 remote 127.0.0.1 || fail "no second sit tunnel"
ip link set sit27b netns $NS || fail "cannot move sit27b into $NS"
ip addr add $ADDR peer $PEER dev sit27a && ip link set sit27a up || fail "sit27a set-up failed"
ip -n $NS link set lo up && ip -n $NS addr add $PEER peer $ADDR dev sit27b && ip -n $NS link set sit27b up ||
	fail "sit27b set-up failed"
# A second nvmet port, on init_net's end of the pair.
port_up() {
	mkdir "$NVMET/ports/$PORT" || return 1
	echo ipv4 >"$NVMET/ports/$PORT/addr_adrfam"; echo tcp >"$NVMET/ports/$PORT/addr_trtype"
	echo $ADDR >"$NVMET/ports/$PORT/addr_traddr"; echo "$TRSVCID" >"$NVMET/ports/$PORT/addr_trsvcid"
	ln -s "$NVMET/subsystems/$NQN" "$NVMET/ports/$PORT/subsystems/$NQN"
}
port_down() { rm -f "$NVMET/ports/$PORT/subsystems/$NQN"; rmdir "$NVMET/ports/$PORT"; }
port_up || fail "nvmet port on $ADDR failed"
on_exit port_down
# No ping in the rootfs: a TCP connect to the port shows the pair carries.
ip netns exec $NS timeout 10 bash -c "exec 3<>/dev/tcp/$ADDR/$TRSVCID" || fail "$NS cannot reach $ADDR:$TRSVCID over the sit pair"
use_rust_driver || fail "rnvme_tcp does not load"
on_exit nvme disconnect -n "$NQN"

# The host's queue sockets in $NS (established, to the port) and those in
# init_net going to it: a socket created in init_net reaches $ADDR, a local
# address there, through lo.
socks_in_ns() { ip netns exec $NS ss -tnH state established "( dport = :$TRSVCID )" | grep -c .; }
socks_in_init() { ss -tnH state established "( dst $ADDR and dport = :$TRSVCID )" | grep -c .; }
wait_live() {
	local i
	for i in $(seq 100); do [ "$(cat "/sys/class/nvme/$1/state" 2>/dev/null)" = live ] && return 0; sleep 0.2; done
	return 1
}
# Every queue (admin + I/O, as debugfs lists them) has its socket in $NS.
check_sockets() {
	local ctrl=$1 what=$2 nq in_ns in_init
	nq=$(grep -c "^$ctrl qid " /sys/kernel/debug/rnvme_tcp/queues)
	in_ns=$(socks_in_ns) in_init=$(socks_in_init)
	ip netns exec $NS ss -tnH state established "( dport = :$TRSVCID )" | sed 's/^/#   ns: /'
	log "$what: $in_ns queue sockets in $NS, $in_init from init_net, $nq queues"
	[ "$in_init" = 0 ] || fail "$what: $in_init queue sockets were created in init_net"
	[ "$in_ns" -ge 2 ] && [ "$in_ns" = "$nq" ] || fail "$what: $in_ns sockets in $NS for $nq queues"
}
fio_verify() {
	run_fio --name="$2" --filename="$1" --rw=randwrite --bs=4k --size=512k --ioengine=libaio --iodepth=8 --direct=1 \
		--verify=crc32c --do_verify=1 --verify_fatal=1
}

# host_iface names an interface of $NS, which init_net does not have.
dmesg_mark
run ip netns exec $NS nvme connect -t tcp -a $ADDR -s "$TRSVCID" -n "$NQN" --host-iface=sit27b \
	--reconnect-delay=1 --ctrl-loss-tmo=30 || fail "connect from $NS with host_iface=sit27b failed"
ctrl=$(ctrl_for_nqn) || fail "no controller after the connect"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
bound=$(ip netns exec $NS ss -tnH state established "( dport = :$TRSVCID )" | grep -c '%sit27b:')
check_sockets "$ctrl" connect
[ "$bound" = "$(socks_in_ns)" ] || fail "$bound queue sockets bound to sit27b"
fio_verify "$dev" connect || fail "fio after the connect failed"
# Reset: nvme-core's reset work re-creates every queue, from a kworker.
run nvme reset "/dev/$ctrl" || fail "nvme reset failed"
wait_live "$ctrl" || { dmesg_since_mark | tail -n 20 | sed 's/^/# /'; fail "$ctrl not live after the reset"; }
check_sockets "$ctrl" reset
fio_verify "$dev" reset || fail "fio after the reset failed"
# Reconnect: the port goes away and comes back; connect_work reconnects.
dmesg_mark
port_down
for i in $(seq 100); do dmesg_since_mark | grep -q "nvme $ctrl: Failed reconnect attempt" && break; sleep 0.2; done
dmesg_since_mark | grep -q "nvme $ctrl: Failed reconnect attempt" || fail "no reconnect attempt while the port was down"
port_up || fail "nvmet port did not come back"
for i in $(seq 100); do dmesg_since_mark | grep -q "nvme $ctrl: Successfully reconnected" && break; sleep 0.2; done
dmesg_since_mark | grep -q "nvme $ctrl: Successfully reconnected" ||
	{ dmesg_since_mark | tail -n 20 | sed 's/^/# /'; fail "did not reconnect after the port came back"; }
wait_live "$ctrl" || fail "$ctrl not live after the reconnect"
check_sockets "$ctrl" reconnect
fio_verify "$dev" reconnect || fail "fio after the reconnect failed"
run nvme disconnect -n "$NQN" || fail "disconnect failed"

# Without host_iface the namespace matters as much: a reset's sockets in
# init_net would connect to $ADDR through lo there and "work" unnoticed.
run ip netns exec $NS nvme connect -t tcp -a $ADDR -s "$TRSVCID" -n "$NQN" || fail "connect from $NS failed"
ctrl=$(ctrl_for_nqn) || fail "no controller after the second connect"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
run nvme reset "/dev/$ctrl" || fail "nvme reset failed"
wait_live "$ctrl" || fail "$ctrl not live after the reset"
check_sockets "$ctrl" "reset, no host_iface"
fio_verify "$dev" noiface || fail "fio after the reset failed"
run nvme disconnect -n "$NQN" || fail "disconnect failed"

# An interface of init_net is not one of $NS: refused at create, clearly.
dmesg_mark
if ip netns exec $NS sh -c "echo transport=tcp,traddr=$ADDR,trsvcid=$TRSVCID,nqn=$NQN,host_iface=sit27a >/dev/nvme-fabrics" 2>/dev/null; then
	fail "a connect from $NS with init_net's host_iface=sit27a succeeded"
fi
line=$(dmesg_since_mark | grep -o 'rnvme_tcp: invalid interface passed: sit27a' | head -n1)
[ -n "$line" ] || { dmesg_since_mark | sed 's/^/# /'; fail "no 'invalid interface passed: sit27a' line"; }
log "$line"
ctrl_for_nqn >/dev/null && fail "a controller is left after the refused connect"
log "no controller left"
