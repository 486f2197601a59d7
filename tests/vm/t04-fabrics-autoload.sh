#!/bin/bash
# With no tcp transport loaded, nvme-fabrics' autoload brings in rnvme_tcp.
. "$(dirname "$0")/lib.sh"
unload_transports || fail "could not unload the tcp transports"
modprobe nvme-fabrics || fail "nvme-fabrics does not load"
on_exit unload_transports
dmesg_mark
run nvme connect -t tcp -a "$TRADDR" -s "$TRSVCID" -n "$NQN" && fail "connect unexpectedly succeeded"
mod_loaded rnvme_tcp || fail "rnvme_tcp was not autoloaded"
mod_loaded nvme_tcp && fail "the C nvme_tcp was loaded"
# No target listens: the Rust create_ctrl reports the refused connection.
dmesg_since_mark | grep -q 'rnvme_tcp: queue 0: failed to connect socket: -111' || fail "create_ctrl not reached"
log "request_module(\"nvme-tcp\") loaded rnvme_tcp"
