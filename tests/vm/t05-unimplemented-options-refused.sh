#!/bin/bash
# Options the transport does not implement yet (tls) are refused by name by nvme-fabrics.
. "$(dirname "$0")/lib.sh"
use_rust_driver || fail "could not load rnvme_tcp"
on_exit unload_transports
dmesg_mark
log "\$ echo transport=tcp,...,tls > /dev/nvme-fabrics"
echo "transport=tcp,traddr=$TRADDR,trsvcid=$TRSVCID,nqn=$NQN,tls" >/dev/nvme-fabrics 2>/dev/null && fail "connect with tls succeeded"
dmesg_since_mark | grep -q "invalid parameter 'tls'" || fail "nvme-fabrics did not name tls"
dmesg_since_mark | grep -q 'rnvme_tcp: queue' && fail "create_ctrl was called despite the refused option"
log "refused: $(dmesg_since_mark | grep -o "invalid parameter.*" | head -n1)"
