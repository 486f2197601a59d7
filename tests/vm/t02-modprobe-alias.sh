#!/bin/bash
# "modprobe nvme-tcp" resolves to rnvme_tcp, not the C driver, and never loads it beside the C driver.
. "$(dirname "$0")/lib.sh"
deps=$(modprobe --show-depends --ignore-install nvme-tcp 2>&1)
log "modprobe --show-depends --ignore-install nvme-tcp:"; printf '%s\n' "$deps" | sed 's/^/#   /'
grep -q '/rnvme_tcp\.ko' <<<"$deps" || fail "nvme-tcp does not resolve to rnvme_tcp.ko"
grep -q '/nvme-tcp\.ko' <<<"$deps" && fail "nvme-tcp still resolves to the C nvme-tcp.ko"
[ "$(modinfo -F license rnvme_tcp)" = "GPL v2" ] || fail "module license is not GPL v2"
modinfo -F alias rnvme_tcp | grep -qx 'nvme-tcp' || fail "module has no nvme-tcp alias"
log "resolves to $(grep -o '[^ ]*rnvme_tcp\.ko' <<<"$deps")"
# And modprobe refuses rnvme_tcp while the C driver holds "tcp".
unload_transports || fail "could not unload the tcp transports"
use_c_driver || fail "could not load the C nvme_tcp"
on_exit unload_transports
modprobe rnvme_tcp 2>&1 | sed 's/^/#   /' && mod_loaded rnvme_tcp && fail "rnvme_tcp loaded beside the C nvme_tcp"
log "modprobe rnvme_tcp refused while nvme_tcp is loaded"
