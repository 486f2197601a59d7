#!/bin/bash
# "nvme connect -t tcp" reaches the Rust create_ctrl, which runs ICReq/ICResp with nvmet-tcp.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
use_rust_driver || fail "could not load rnvme_tcp"
on_exit unload_transports
dmesg_mark
if run nvme connect -t tcp -a "$TRADDR" -s "$TRSVCID" -n "$NQN"; then
	fail "connect succeeded, but controller creation is not implemented yet"
fi
dmesg_since_mark | grep -q "rnvme_tcp: queue 0 to $TRADDR:$TRSVCID: ICResp ok, maxh2cdata [0-9]*, digests hdr false data false" ||
	fail "no ICResp line from rnvme_tcp"
dmesg_since_mark | grep -q "rnvme_tcp: connect to $TRADDR:$TRSVCID nqn $NQN: controller creation is not implemented yet" ||
	fail "no create_ctrl line from rnvme_tcp in dmesg"
ctrl_for_nqn >/dev/null && fail "a controller exists for $NQN"
dmesg_since_mark | grep -o 'rnvme_tcp: .*' | sed 's/^/# /'
