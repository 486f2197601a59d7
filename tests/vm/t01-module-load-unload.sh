#!/bin/bash
# rnvme_tcp loads, registers the "tcp" transport and unloads, 20 times.
. "$(dirname "$0")/lib.sh"
unload_transports || fail "could not unload the tcp transports"
dmesg_mark
for i in $(seq 20); do
	modprobe rnvme_tcp || fail "load #$i failed"
	mod_loaded rnvme_tcp || fail "load #$i: /sys/module/rnvme_tcp missing"
	modprobe -r rnvme_tcp || fail "unload #$i failed"
	mod_loaded rnvme_tcp && fail "unload #$i: module still there"
done
n=$(dmesg_since_mark | grep -c 'registered nvme-fabrics transport "tcp"')
[ "$n" -eq 20 ] || fail "expected 20 registration lines in dmesg, saw $n"
log "20 load/unload cycles, 20 registrations logged"
