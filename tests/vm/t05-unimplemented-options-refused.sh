#!/bin/bash
# Options the transport does not implement yet are refused by name by nvme-fabrics.
. "$(dirname "$0")/lib.sh"
use_rust_driver || fail "could not load rnvme_tcp"
on_exit unload_transports
dmesg_mark
run nvme connect -t tcp -a "$TRADDR" -s "$TRSVCID" -n "$NQN" --nr-poll-queues=1 && fail "connect with nr_poll_queues succeeded"
dmesg_since_mark | grep -q "invalid parameter 'nr_poll_queues=%d'" || fail "nvme-fabrics did not name nr_poll_queues"
dmesg_since_mark | grep -q 'rnvme_tcp: connect' && fail "create_ctrl was called despite the refused option"
log "refused: $(dmesg_since_mark | grep -o "invalid parameter.*" | head -n1)"
