#!/bin/bash
# Controllers do not pin rnvme_tcp: unloading it deletes the controllers left,
# as the C driver's module exit does. On this lockdep kernel every queue socket
# holds a module reference for its lock class (sock_lock_init_class_and_name,
# as for the C driver), so the module's references are exactly its sockets,
# and a controller that lost its connection (reconnecting to a target that
# is gone) holds none: unloading then deletes it.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
on_exit "nvme disconnect -n $NQN"
port_down() { rm "$NVMET/ports/1/subsystems/$NQN" && rmdir "$NVMET/ports/1"; }
port_up() {
	mkdir "$NVMET/ports/1" && echo ipv4 >"$NVMET/ports/1/addr_adrfam" && echo tcp >"$NVMET/ports/1/addr_trtype" &&
		echo "$TRADDR" >"$NVMET/ports/1/addr_traddr" && echo "$TRSVCID" >"$NVMET/ports/1/addr_trsvcid" &&
		ln -s "$NVMET/subsystems/$NQN" "$NVMET/ports/1/subsystems/$NQN"
}
refcnt() { cat /sys/module/rnvme_tcp/refcnt; }
host_socks() { ss -Htn state established "( dport = :$TRSVCID )" | wc -l; }
dmesg_mark
ctrl=$(rust_connect --reconnect-delay=10 --ctrl-loss-tmo=300) || fail "connect through rnvme_tcp failed"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
ns_dev_of "$ctrl" >/dev/null || fail "no namespace for $ctrl"
# The partition scan after connect opens the namespace for a moment (a
# reference of nvme-core's): wait until only the sockets hold the module.
for i in $(seq 100); do [ "$(refcnt)" = "$(host_socks)" ] && break; sleep 0.1; done
log "$(host_socks) queue sockets, $(refcnt) module references"
[ "$(refcnt)" = "$(host_socks)" ] || fail "$(refcnt) module references for $(host_socks) queue sockets: the controller holds some"
# The target goes away: the queues are torn down, the controller reconnects.
port_down || fail "cannot remove the target port"
for i in $(seq 150); do dmesg_since_mark | grep -q "nvme $ctrl: Failed reconnect attempt" && break; sleep 0.2; done
dmesg_since_mark | grep -q "nvme $ctrl: Failed reconnect attempt" || fail "no failed reconnect attempt"
for i in $(seq 50); do [ "$(refcnt)" = 0 ] && break; sleep 0.1; done
[ "$(refcnt)" = 0 ] || fail "rnvme_tcp has $(refcnt) references with $ctrl reconnecting"
dmesg_mark
run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload while $ctrl is reconnecting"
mod_loaded rnvme_tcp && fail "rnvme_tcp still loaded"
[ -e "/sys/class/nvme/$ctrl" ] && fail "$ctrl still exists after unloading"
dmesg_since_mark | grep -q "nvme $ctrl: Removing ctrl" || fail "no 'Removing ctrl' line for $ctrl"
dmesg_since_mark | grep -E 'nvme|rnvme' | grep -v rnvme-test | sed 's/^/#   /'
port_up || fail "cannot bring the target port back"
ctrl=$(rust_connect) || fail "connect after the unload failed"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
true
