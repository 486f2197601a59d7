#!/bin/bash
# A connect to a port where nothing listens fails with a clear error naming the queue.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
use_rust_driver || fail "could not load rnvme_tcp"
on_exit unload_transports
dmesg_mark
run nvme connect -t tcp -a "$TRADDR" -s 4421 -n "$NQN" && fail "connect to a closed port succeeded"
dmesg_since_mark | grep -q 'rnvme_tcp: queue 0: failed to connect socket: -111' || fail "no clear error in dmesg"
# nvme-cli resolves addresses itself; write the options to the fabrics device directly.
log "\$ echo transport=tcp,traddr=300.1.2.3,... > /dev/nvme-fabrics"
echo "transport=tcp,traddr=300.1.2.3,trsvcid=4420,nqn=$NQN" >/dev/nvme-fabrics 2>/dev/null && fail "connect to a malformed address succeeded"
dmesg_since_mark | grep -q 'rnvme_tcp: malformed address 300.1.2.3:4420' || fail "no clear error for a malformed address"
dmesg_since_mark | grep -o 'rnvme_tcp: .*' | sed 's/^/# /'
