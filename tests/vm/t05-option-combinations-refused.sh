#!/bin/bash
# Every nvme-fabrics option is implemented now; combinations that cannot work are refused with a line naming them, before any queue is opened: concat with tls, with tls_key or without dhchap_secret (nvme-fabrics). (concat with read_sock=1 is no longer refused: read_sock=1 serves TLS queues, Documentation/tls.md.)
. "$(dirname "$0")/lib.sh"
on_exit unload_transports
SECRET=DHHC-1:00:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYJQBHm:
unload_transports || fail "cannot unload the transports"
modprobe rnvme_tcp read_sock=1 || fail "cannot load rnvme_tcp read_sock=1"
dmesg_mark
expect_refused "concat,tls,dhchap_secret=$SECRET" "Secure concatenation over TLS is not supported" ||
	fail "concat with tls was not refused"
expect_refused "concat" "Need to enable DH-CHAP for secure concatenation" ||
	fail "concat without dhchap_secret was not refused"
dmesg_since_mark | grep -q 'rnvme_tcp: queue' && fail "a queue was opened despite a refused combination"
true
