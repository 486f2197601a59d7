#!/bin/bash
# "modprobe nvme-tcp" (what nvme-fabrics requests) resolves to rnvme_tcp, not the C driver.
. "$(dirname "$0")/lib.sh"
deps=$(modprobe --show-depends nvme-tcp 2>&1)
log "modprobe --show-depends nvme-tcp:"; printf '%s\n' "$deps" | sed 's/^/#   /'
grep -q '/rnvme_tcp\.ko' <<<"$deps" || fail "nvme-tcp does not resolve to rnvme_tcp.ko"
grep -q '/nvme-tcp\.ko' <<<"$deps" && fail "nvme-tcp still resolves to the C nvme-tcp.ko"
[ "$(modinfo -F license rnvme_tcp)" = "GPL v2" ] || fail "module license is not GPL v2"
modinfo -F alias rnvme_tcp | grep -qx 'nvme-tcp' || fail "module has no nvme-tcp alias"
log "resolves to $(grep -o '[^ ]*rnvme_tcp\.ko' <<<"$deps")"
