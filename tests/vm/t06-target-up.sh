#!/bin/bash
# The nvmet-tcp target comes up on 127.0.0.1:4420 over a memory-backed brd namespace.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
target_listening || fail "nothing listens on $TRADDR:$TRSVCID"
[ "$(cat "$NVMET/subsystems/$NQN/namespaces/1/enable")" = 1 ] || fail "namespace not enabled"
size=$(blockdev --getsize64 /dev/ram0)
log "target $NQN on $TRADDR:$TRSVCID, namespace /dev/ram0 ($size bytes)"
