#!/bin/bash
# Options the transport does not implement yet (tls) are refused by name by nvme-fabrics.
. "$(dirname "$0")/lib.sh"
use_rust_driver || fail "could not load rnvme_tcp"
on_exit unload_transports
dmesg_mark
expect_refused tls "invalid parameter 'tls'" || fail "tls was not refused by name"
dmesg_since_mark | grep -q 'rnvme_tcp: queue' && fail "create_ctrl was called despite the refused option"
true
