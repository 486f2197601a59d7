#!/bin/bash
# Unloading rnvme_tcp with controllers still connected deletes them first, as
# the C driver's module exit does, instead of controllers pinning the module;
# the target-side connections close and a later connect works.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
on_exit "nvme disconnect -n $NQN"
use_rust_driver || fail "could not load rnvme_tcp"
dmesg_mark
for i in 1 2; do
	rust_connect --duplicate-connect >/dev/null || fail "connect #$i through rnvme_tcp failed"
done
ctrls=()
for c in /sys/class/nvme/nvme*; do
	[ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$NQN" ] && ctrls+=("$(basename "$c")")
done
[ ${#ctrls[@]} = 2 ] || fail "expected 2 controllers for $NQN, found ${#ctrls[@]}"
for c in "${ctrls[@]}"; do assert_rust_ctrl "$c" || fail "$c is not served by rnvme_tcp"; done
log "connected: ${ctrls[*]}"
for c in "${ctrls[@]}"; do ns_dev_of "$c" >/dev/null || fail "no namespace for $c"; done
# A namespace open keeps the module (nvme-core's own module reference; the
# partition scan after connect opens it for a moment): only idle controllers
# are deleted by unloading. They hold no reference of their own.
for i in $(seq 100); do [ "$(cat /sys/module/rnvme_tcp/refcnt)" = 0 ] && break; sleep 0.1; done
refs=$(cat /sys/module/rnvme_tcp/refcnt)
[ "$refs" = 0 ] || fail "rnvme_tcp has $refs references with ${#ctrls[@]} idle controllers"
dmesg_mark
run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload while controllers are connected"
mod_loaded rnvme_tcp && fail "rnvme_tcp still loaded"
for c in "${ctrls[@]}"; do
	[ -e "/sys/class/nvme/$c" ] && fail "$c still exists after unloading"
done
for c in "${ctrls[@]}"; do
	dmesg_since_mark | grep -q "$c: Removing ctrl" || fail "no 'Removing ctrl' line for $c"
done
dmesg_since_mark | grep -E 'nvme|rnvme' | grep -v rnvme-test | sed 's/^/#   /'
# The target let go of the host's connections.
for i in $(seq 50); do
	[ "$(ss -Htn state established "( sport = :$TRSVCID )" | wc -l)" = 0 ] && break
	sleep 0.1
done
[ "$(ss -Htn state established "( sport = :$TRSVCID )" | wc -l)" = 0 ] || fail "connections to the target are still open"
use_rust_driver || fail "could not load rnvme_tcp again"
ctrl=$(rust_connect) || fail "connect after the unload failed"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
true
