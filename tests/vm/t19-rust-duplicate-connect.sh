#!/bin/bash
# A second controller to the same target is refused (EALREADY) unless duplicate_connect is given.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
ctrl=$(rust_connect) || fail "connect failed"
on_exit nvme disconnect -n "$NQN"
dmesg_mark
# The same host identity as nvme-cli used, or the options would not match.
opts="transport=tcp,traddr=$TRADDR,trsvcid=$TRSVCID,nqn=$NQN,hostnqn=$(cat /etc/nvme/hostnqn),hostid=$(cat /etc/nvme/hostid)"
log "\$ echo $opts > /dev/nvme-fabrics"
echo "$opts" >/dev/nvme-fabrics 2>/dev/null && fail "a duplicate controller was created"
dmesg_since_mark | grep -q "rnvme_tcp: a controller for $NQN at $TRADDR:$TRSVCID exists" || fail "no clear error for the duplicate"
log "\$ echo $opts,duplicate_connect > /dev/nvme-fabrics"
echo "$opts,duplicate_connect" >/dev/nvme-fabrics || fail "duplicate_connect was refused"
n=$(grep -l "^$NQN\$" /sys/class/nvme/nvme*/subsysnqn 2>/dev/null | wc -l)
[ "$n" -eq 2 ] || fail "expected 2 controllers for $NQN, found $n"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
dmesg_since_mark | grep -o 'rnvme_tcp: a controller.*' | sed 's/^/# /'
