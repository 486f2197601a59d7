#!/bin/bash
# Options the transport does not implement yet (concat) are refused by name by nvme-fabrics.
. "$(dirname "$0")/lib.sh"
use_rust_driver || fail "could not load rnvme_tcp"
on_exit unload_transports
dmesg_mark
# concat needs a DH-HMAC-CHAP secret to get past option parsing.
expect_refused "concat,dhchap_secret=DHHC-1:00:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYJQBHm:" "invalid parameter 'concat'" ||
	fail "concat was not refused by name"
dmesg_since_mark | grep -q 'rnvme_tcp: queue' && fail "create_ctrl was called despite the refused option"
true
