#!/bin/bash
# Native NVMe multipath through rnvme_tcp: one nvmet subsystem behind two
# ports (127.0.0.1 and 127.0.0.2 on lo), both paths connected through the
# Rust transport. nvme list-subsys shows both paths; ANA state changes on
# the target (optimized, non-optimized, inaccessible) steer the I/O of the
# multipath node where nvme-core decides (asserted on the per-path block
# stat counters, which only I/O on that path moves); fio verify on the
# multipath node keeps running while the port of the path in use is removed
# and re-added: I/O fails over to the other path, nothing is lost, and
# everything written then reads back afterwards.
# The suite runs with nvme_core multipath=N (qemu/modprobe-rnvme-tcp.conf):
# this test reloads nvme_core with multipath=Y and unloads it at the end.
. "$(dirname "$0")/lib.sh"
ADDR2=127.0.0.2

# nvme_core with native multipath; at the end, unloaded so the next user
# loads it with the suite's multipath=N again.
unload_transports || fail "cannot unload the transports"
mpath_down() { unload_transports; modprobe -r nvme_fabrics nvme_core; }
on_exit mpath_down
modprobe -r nvme_fabrics nvme_core 2>/dev/null
mod_loaded nvme_core && fail "nvme_core stays loaded: cannot turn native multipath on"
modprobe nvme_core multipath=Y || fail "modprobe nvme_core multipath=Y failed"
[ "$(cat /sys/module/nvme_core/parameters/multipath)" = Y ] || fail "nvme_core multipath is not on"
log "nvme_core multipath=$(cat /sys/module/nvme_core/parameters/multipath)"

target_up || fail "target set-up failed"
port_add() {	# port_add ID ADDR
	local p=$NVMET/ports/$1
	mkdir "$p" || return 1
	echo ipv4 >"$p/addr_adrfam"; echo tcp >"$p/addr_trtype"
	echo "$2" >"$p/addr_traddr"; echo "$TRSVCID" >"$p/addr_trsvcid"
	ln -s "$NVMET/subsystems/$NQN" "$p/subsystems/$NQN"
}
port_del() { rm -f "$NVMET/ports/$1/subsystems/$NQN"; rmdir "$NVMET/ports/$1"; }
port_add 2 "$ADDR2" || fail "second port set-up failed"
on_exit port_del 2
ana() { echo "$2" >"$NVMET/ports/$1/ana_groups/1/ana_state"; }	# ana PORT STATE

dmesg_mark
use_rust_driver || fail "cannot load rnvme_tcp"
opts=(-t tcp -s "$TRSVCID" -n "$NQN" --reconnect-delay=1 --ctrl-loss-tmo=60)
run nvme connect "${opts[@]}" -a "$TRADDR" || fail "connect to $TRADDR failed"
run nvme connect "${opts[@]}" -a "$ADDR2" || fail "connect to $ADDR2 failed"
ctrl_at() {	# the controller of $NQN connected to address $1
	local c
	for c in /sys/class/nvme/nvme*; do
		[ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$NQN" ] || continue
		grep -q "traddr=$1," "$c/address" && { basename "$c"; return 0; }
	done
	return 1
}
c1=$(ctrl_at "$TRADDR") || fail "no controller for $TRADDR"
c2=$(ctrl_at "$ADDR2") || fail "no controller for $ADDR2"
log "paths: $c1 ($TRADDR), $c2 ($ADDR2)"
assert_rust_ctrl "$c1" || fail "$c1 is not served by rnvme_tcp"
assert_rust_ctrl "$c2" || fail "$c2 is not served by rnvme_tcp"
# The path block devices (hidden: no /dev node) and the multipath node.
path_of() {	# path_of CTRL: nvmeScCnN of the controller's namespace 1
	local i d
	for i in $(seq 50); do
		for d in /sys/class/nvme/"$1"/nvme*c*n1; do [ -e "$d" ] && { basename "$d"; return 0; }; done
		sleep 0.2
	done
	return 1
}
p1=$(path_of "$c1") || fail "no path device under $c1"
p2=$(path_of "$c2") || fail "no path device under $c2"
head1=${p1%%c*}n1 head2=${p2%%c*}n1
[ "$head1" = "$head2" ] || fail "the two paths have different heads: $head1, $head2 (no multipath)"
dev=/dev/$head1
for _ in $(seq 50); do [ -b "$dev" ] && break; sleep 0.2; done
[ -b "$dev" ] || fail "no multipath node $dev"
log "multipath node $dev over $p1 and $p2"
on_exit nvme disconnect -n "$NQN"

# nvme list-subsys: one subsystem, both paths live.
ls_out=$(nvme list-subsys 2>&1); sed 's/^/#   /' <<<"$ls_out"
for a in "$TRADDR" "$ADDR2"; do
	grep -E "traddr=$a[, ].*live|traddr=$a,trsvcid=$TRSVCID.*live" <<<"$ls_out" >/dev/null ||
		fail "nvme list-subsys shows no live path to $a"
done
[ "$(grep -c "$NQN" <<<"$ls_out")" -eq 1 ] || fail "nvme list-subsys does not show $NQN once"

# I/O on each path: read+write ios completed (fields 1 and 5 of stat).
ios() { awk '{ print $1 + $5 }' "/sys/block/$1/stat"; }
ana_seen() {	# ana_seen PATH STATE: the host's view caught up (AEN, ANA log)
	local i
	for i in $(seq 100); do [ "$(cat "/sys/block/$1/ana_state")" = "$2" ] && return 0; sleep 0.1; done
	log "$1 ana_state is $(cat "/sys/block/$1/ana_state"), not $2"
	return 1
}
# steer S1 S2 WANT: set the ANA states of ports 1 and 2, wait for the host
# to see them, run a short verified job on the multipath node; all of its
# I/O must go to path WANT (1 or 2), none to the other.
seed=1
steer() {
	local s1=$1 s2=$2 want=$3 a1 a2 b1 b2 d1 d2
	ana 1 "$s1" && ana 2 "$s2" || fail "cannot set ANA states $s1/$s2"
	ana_seen "$p1" "$s1" && ana_seen "$p2" "$s2" || fail "the host did not see ANA $s1/$s2"
	a1=$(ios "$p1") a2=$(ios "$p2")
	seed=$((seed + 1))
	run_fio --name="ana-$s1-$s2" --filename="$dev" --rw=randwrite --bs=4k --size=256k --offset=$((seed * 1024 * 1024)) \
		--ioengine=libaio --iodepth=8 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --randseed=$seed ||
		fail "fio on $dev with ANA $s1/$s2 failed"
	b1=$(ios "$p1") b2=$(ios "$p2")
	d1=$((b1 - a1)) d2=$((b2 - a2))
	log "ANA port1=$s1 port2=$s2: $p1 +$d1 ios, $p2 +$d2 ios"
	case $want in
	1) [ $d1 -gt 0 ] && [ $d2 -eq 0 ] || fail "with ANA $s1/$s2 the I/O did not go to $p1 only" ;;
	2) [ $d2 -gt 0 ] && [ $d1 -eq 0 ] || fail "with ANA $s1/$s2 the I/O did not go to $p2 only" ;;
	esac
}
steer non-optimized optimized 2
steer optimized inaccessible 1
steer inaccessible non-optimized 2
steer optimized non-optimized 1

# Failover: the I/O runs on path 1 (optimized; path 2 non-optimized) when
# port 1 goes away; it moves to path 2 and fio sees no error. The write job
# is rate-limited (about 24 s idle) so that it runs when the port goes; it is
# verified after it ended, and a job of its own shows where I/O goes during
# the outage.
region=(--name=failover --filename="$dev" --offset=64M --size=6M --rw=randwrite --bs=4k --ioengine=libaio --iodepth=16
	--direct=1 --verify=crc32c --randseed=4242)
a1=$(ios "$p1") a2=$(ios "$p2")
fio --verify_state_save=0 "${region[@]}" --do_verify=0 --rate=256k >/tmp/mp-fio.txt 2>&1 &
fio_pid=$!
for _ in $(seq 100); do [ "$(ios "$p1")" -gt "$a1" ] && break; sleep 0.1; done
kill -0 $fio_pid 2>/dev/null || { sed 's/^/#   /' /tmp/mp-fio.txt; fail "the fio job ended before the port went away"; }
b1=$(ios "$p1") b2=$(ios "$p2")
[ $((b1 - a1)) -gt 0 ] && [ $((b2 - a2)) -eq 0 ] || fail "the fio job's I/O did not start on $p1 only"
port_del 1 || fail "cannot remove port 1"
for _ in $(seq 100); do dmesg_since_mark | grep -q "nvme $c1: Failed reconnect attempt" && break; sleep 0.2; done
dmesg_since_mark | grep -q "nvme $c1: Failed reconnect attempt" || fail "$c1 did not lose its path"
c1_state=$(cat /sys/class/nvme/"$c1"/state)
o1=$(ios "$p1") o2=$(ios "$p2")
running=no; kill -0 $fio_pid 2>/dev/null && running=yes
# Only the failover job ran since b2: its I/O moved to path 2 when port 1 went away.
log "port 1 down ($c1 $c1_state): the failover job put $p2 +$((o2 - b2)) ios (still running: $running)"
[ $((o2 - b2)) -gt 0 ] || fail "the failover job's I/O did not move to $p2 when port 1 went away"
# New I/O while port 1 is down goes to path 2 only. A job of its own, so the
# check does not depend on the failover job outliving the wait above (on a
# loaded machine it may not: it is rate-limited, the wait is not).
run_fio --name=outage --filename="$dev" --offset=72M --size=512k --rw=randwrite --bs=4k --ioengine=libaio --iodepth=8 \
	--direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio while port 1 was down failed"
e1=$(ios "$p1") e2=$(ios "$p2")
log "port 1 down: $p1 +$((e1 - o1)) ios, $p2 +$((e2 - o2)) ios"
[ $((e2 - o2)) -gt 0 ] || fail "no I/O failed over to $p2 while port 1 was down"
[ $((e1 - o1)) -eq 0 ] || fail "I/O completed on $p1 while its port was down"
port_add 1 "$TRADDR" || fail "cannot re-add port 1"
for _ in $(seq 100); do dmesg_since_mark | grep -q "nvme $c1: Successfully reconnected" && break; sleep 0.2; done
dmesg_since_mark | grep -q "nvme $c1: Successfully reconnected" || fail "$c1 did not reconnect after port 1 came back"
ana_seen "$p1" optimized || fail "$p1 is not optimized after the reconnect"
wait $fio_pid; rc=$?
grep -E 'err=|READ:|WRITE:|verify' /tmp/mp-fio.txt | sed 's/^ */#   /'
[ $rc -eq 0 ] || { sed 's/^/#   /' /tmp/mp-fio.txt; fail "fio across the failover failed (status $rc)"; }
# Back on path 1, optimized and live again (the failover job may have ended
# before the reconnect on a slow machine: a new job shows where I/O goes).
r1=$(ios "$p1") r2=$(ios "$p2")
run_fio --name=back --filename="$dev" --offset=80M --size=512k --rw=randwrite --bs=4k --ioengine=libaio --iodepth=8 \
	--direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio after path 1 came back failed"
f1=$(ios "$p1") f2=$(ios "$p2")
log "path 1 back: $p1 +$((f1 - r1)) ios, $p2 +$((f2 - r2)) ios"
[ $((f1 - r1)) -gt 0 ] || fail "the I/O did not return to $p1 once it was optimized and live again"
assert_rust_ctrl "$c1" || fail "$c1 is not served by rnvme_tcp after the reconnect"
# Everything written across the failover reads back, through either path.
run_fio "${region[@]}" --verify_only --verify_fatal=1 || fail "data written across the failover differs"
dmesg_since_mark | grep -o "nvme $c1: \(starting error\|Reconnecting\|Failed reconnect\|Successfully\).*" | sort | uniq -c | sed 's/^/# /'
