#!/bin/bash
# nvme discover and connect-all through rnvme_tcp (a discovery controller, then the subsystem).
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
use_rust_driver || fail "could not load rnvme_tcp"
on_exit unload_transports
dmesg_mark
out=$(nvme discover -t tcp -a "$TRADDR" -s "$TRSVCID" 2>&1) || { printf '%s\n' "$out" | sed 's/^/#   /'; fail "discover failed"; }
grep -q "subnqn: *$NQN" <<<"$out" || fail "discovery log does not list $NQN"
dmesg_since_mark | grep -q 'new ctrl: NQN "nqn.2014-08.org.nvmexpress.discovery".*(rnvme_tcp' || fail "discovery controller not served by rnvme_tcp"
run nvme connect-all -t tcp -a "$TRADDR" -s "$TRSVCID" || fail "connect-all failed"
on_exit nvme disconnect-all
ctrl=$(ctrl_for_nqn) || fail "connect-all did not connect $NQN"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
ns_dev_of "$ctrl" >/dev/null || fail "no namespace after connect-all"
run nvme disconnect-all || fail "disconnect-all failed"
ctrl_for_nqn >/dev/null && fail "controller left after disconnect-all"
true
