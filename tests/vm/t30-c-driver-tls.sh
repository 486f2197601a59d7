#!/bin/bash
# Test bed check for TLS: the C nvme_tcp connects to an nvmet port that requires TLS 1.3 (PSK from
# `nvme gen-tls-key --insert`, handshakes by tlshd), fio verifies through it, and both sides used kTLS.
. "$(dirname "$0")/lib.sh"
command -v tlshd >/dev/null || fail "tlshd not installed (ktls-utils is in the rootfs recipe)"
tls_up || fail "TLS set-up (key, tlshd) failed"
target_up || fail "target set-up failed"
on_exit unload_transports
use_c_driver || fail "cannot load the C nvme_tcp"
dmesg_mark
run nvme connect -t tcp --tls -a "$TRADDR" -s "$TRSVCID" -n "$NQN" || { sed 's/^/# tlshd: /' /tmp/tlshd.log; fail "TLS connect failed"; }
ctrl=$(ctrl_for_nqn) || fail "no controller for $NQN"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device for $ctrl"
key=$(cat /sys/class/nvme/"$ctrl"/tls_key 2>/dev/null)
[ -n "$key" ] || fail "$ctrl shows no tls_key"
log "$ctrl tls_key $key"
run_fio --name=tls --filename="$dev" --rw=randwrite --bs=64k --size=2M --ioengine=libaio --iodepth=8 --direct=1 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio verify over TLS failed"
stat=$(cat /proc/net/tls_stat)
tx=$(awk '$1 == "TlsTxSw" { print $2 }' <<<"$stat"); rx=$(awk '$1 == "TlsRxSw" { print $2 }' <<<"$stat")
log "kTLS sessions: TlsTxSw=$tx TlsRxSw=$rx"
[ "${tx:-0}" -ge 2 ] && [ "${rx:-0}" -ge 2 ] || fail "kTLS was not set up on both sides of the queues"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
