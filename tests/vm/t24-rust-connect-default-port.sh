#!/bin/bash
# A connect without trsvcid goes to port 4420, and a second one is refused as a duplicate (no oops in the
# option matching, which compares trsvcid): the default port is set in the options, as in the C driver.
. "$(dirname "$0")/lib.sh"
[ "$TRSVCID" = 4420 ] || skip "the target is not on the default port"
target_up || fail "target set-up failed"
on_exit unload_transports
use_rust_driver || fail "could not load rnvme_tcp"
on_exit nvme disconnect -n "$NQN"
dmesg_mark
opts="transport=tcp,traddr=$TRADDR,nqn=$NQN,hostnqn=$(cat /etc/nvme/hostnqn),hostid=$(cat /etc/nvme/hostid)"
log "\$ echo $opts > /dev/nvme-fabrics"
echo "$opts" >/dev/nvme-fabrics || fail "the connect without trsvcid failed"
ctrl=$(ctrl_for_nqn) || fail "no controller for $NQN"
log "\$ echo $opts > /dev/nvme-fabrics (again)"
echo "$opts" >/dev/nvme-fabrics 2>/dev/null && fail "a duplicate controller was created"
dmesg_since_mark | grep -q "rnvme_tcp: a controller for $NQN at $TRADDR:4420 exists" || fail "no clear error for the duplicate"
n=$(grep -l "^$NQN\$" /sys/class/nvme/nvme*/subsysnqn 2>/dev/null | wc -l)
[ "$n" -eq 1 ] || fail "expected 1 controller for $NQN, found $n"
grep -q "trsvcid=4420" /sys/class/nvme/"$ctrl"/address || fail "address is '$(cat /sys/class/nvme/"$ctrl"/address)', not port 4420"
log "$ctrl: $(cat /sys/class/nvme/"$ctrl"/address)"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
