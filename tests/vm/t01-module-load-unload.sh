#!/bin/bash
# rnvme_tcp loads, registers the "tcp" transport and unloads, 3 times (make soak does it 100 times).
. "$(dirname "$0")/lib.sh"
unload_transports || fail "could not unload the tcp transports"
dmesg_mark
for i in $(seq 3); do
	modprobe rnvme_tcp || fail "load #$i failed"
	mod_loaded rnvme_tcp || fail "load #$i: /sys/module/rnvme_tcp missing"
	modprobe -r rnvme_tcp || fail "unload #$i failed"
	mod_loaded rnvme_tcp && fail "unload #$i: module still there"
done
n=$(dmesg_since_mark | grep -c 'registered nvme-fabrics transport "tcp"')
[ "$n" -eq 3 ] || fail "expected 3 registration lines in dmesg, saw $n"
log "3 load/unload cycles, 3 registrations logged"
