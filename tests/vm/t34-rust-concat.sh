#!/bin/bash
# Secure channel concatenation (concat) through rnvme_tcp: DH-HMAC-CHAP on a plain admin queue generates a PSK, then every queue runs TLS 1.3 with it (tlshd); fio verifies; a reset generates a new PSK and revokes the old; disconnect and unload leave nothing; the same with read_sock=1 (the data verifies, read_sock() received).
. "$(dirname "$0")/lib.sh"
command -v tlshd >/dev/null || fail "tlshd not installed (ktls-utils is in the rootfs recipe)"
PORT=34 SVC=4434
tls_up || fail "TLS set-up (tlshd) failed"
TARGET_TLS=0 target_up || fail "target set-up failed"
on_exit unload_transports
HOSTNQN=$(cat /etc/nvme/hostnqn) || fail "no /etc/nvme/hostnqn"
HOSTID=$(cat /etc/nvme/hostid 2>/dev/null || true)
HOST=$NVMET/hosts/$HOSTNQN
mkdir "$HOST" || fail "nvmet has no host entries"
on_exit rmdir "$HOST"
echo 0 >"$NVMET/subsystems/$NQN/attr_allow_any_host"
ln -s "$HOST" "$NVMET/subsystems/$NQN/allowed_hosts/$HOSTNQN" || fail "cannot allow $HOSTNQN"
on_exit rm -f "$NVMET/subsystems/$NQN/allowed_hosts/$HOSTNQN"
# The generated PSK needs a DH group (nvmet refuses concat with null).
modprobe dh_generic || fail "no dh_generic"
hkey=$(nvme gen-dhchap-key --nqn="$HOSTNQN") || fail "nvme gen-dhchap-key failed"
ckey=$(nvme gen-dhchap-key --nqn="$NQN" --hmac=1) || fail "nvme gen-dhchap-key failed"
echo "hmac(sha256)" >"$HOST/dhchap_hash" && echo ffdhe2048 >"$HOST/dhchap_dhgroup" &&
	echo "$hkey" >"$HOST/dhchap_key" && echo "$ckey" >"$HOST/dhchap_ctrl_key" || fail "nvmet keys"
# A port that takes TLS 1.3 and plain TCP: the first admin connection is
# plain (authentication), the next ones TLS with the generated PSK.
mkdir "$NVMET/ports/$PORT" || fail "no nvmet port $PORT"
on_exit 'rm -f "$NVMET/ports/$PORT/subsystems/$NQN"; rmdir "$NVMET/ports/$PORT"'
echo ipv4 >"$NVMET/ports/$PORT/addr_adrfam"; echo tcp >"$NVMET/ports/$PORT/addr_trtype"
echo "$TRADDR" >"$NVMET/ports/$PORT/addr_traddr"; echo $SVC >"$NVMET/ports/$PORT/addr_trsvcid"
echo tls1.3 >"$NVMET/ports/$PORT/addr_tsas" && echo "not required" >"$NVMET/ports/$PORT/addr_treq" ||
	fail "cannot set the port's tsas/treq"
ln -s "$NVMET/subsystems/$NQN" "$NVMET/ports/$PORT/subsystems/$NQN" || fail "cannot enable port $PORT"
use_rust_driver || fail "cannot load rnvme_tcp"
no_ctrl_left() {
	! ctrl_for_nqn >/dev/null || { log "a controller for $NQN is left"; return 1; }
	grep -qx 'live_ctrls 0' /sys/kernel/debug/rnvme_tcp/queues || { log "rnvme_tcp still holds a controller"; return 1; }
}
tls_stat() { awk -v k="$1" '$1 == k { print $2 }' /proc/net/tls_stat; }
# The PSK of $1's admin queue, checked: generated (a "psk" key in .nvme
# other than the retained one tls_up made), shown in sysfs.
ctrl_psk() {
	local ctrl=$1 key
	key=$(cat "/sys/class/nvme/$ctrl/tls_key" 2>/dev/null)
	[ -n "$key" ] || { log "$ctrl shows no tls_key"; return 1; }
	keyctl show %:.nvme | grep -q "^ *$((16#$key)) .*psk" || { log "tls_key $key is not a PSK in .nvme"; return 1; }
	echo "$key"
}

tx0=$(tls_stat TlsTxSw)
dmesg_mark
opts="transport=tcp,traddr=$TRADDR,trsvcid=$SVC,nqn=$NQN,hostnqn=$HOSTNQN${HOSTID:+,hostid=$HOSTID},nr_io_queues=2"
opts+=",dhchap_secret=$hkey,dhchap_ctrl_secret=$ckey,concat"
log "\$ echo ...,dhchap_secret=...,dhchap_ctrl_secret=...,concat > /dev/nvme-fabrics"
echo "$opts" >/dev/nvme-fabrics ||
	{ sed 's/^/# tlshd: /' /tmp/tlshd.log | tail -n 20; dmesg_since_mark | sed 's/^/# /'; fail "concat connect failed"; }
ctrl=$(ctrl_for_nqn) || fail "no controller for $NQN"
on_exit nvme disconnect -n "$NQN"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dmesg_since_mark | grep -o "nvme $ctrl: \(qid 0: .*authenticated.*\|queue 0: TLS.*\)" | sed 's/^/# /'
dmesg_since_mark | grep -q "nvme $ctrl: qid 0: authenticated with hash hmac(sha256) dhgroup ffdhe2048" ||
	fail "no DH-HMAC-CHAP on the admin queue"
key=$(ctrl_psk "$ctrl") || fail "no generated PSK"
dmesg_since_mark | grep -q "nvme $ctrl: queue 0: TLS 1.3 session with PSK $key (rnvme_tcp)" || fail "the admin queue runs no TLS with PSK $key"
[ "$(cat "/sys/class/nvme/$ctrl/tls_mode" 2>/dev/null)" = concat ] || fail "tls_mode is '$(cat "/sys/class/nvme/$ctrl/tls_mode" 2>/dev/null)', not concat"
tx=$(tls_stat TlsTxSw)
log "$ctrl: concat, PSK $key; kTLS TX sessions $tx0 -> $tx"
# Admin + 2 I/O queues, host and target side each.
[ $((tx - tx0)) -ge 6 ] || fail "kTLS was not set up on every queue"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
run_fio --name=concat --filename="$dev" --rw=randwrite --bs=4k --size=512k --ioengine=libaio --iodepth=8 --direct=1 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio over concat failed"
# A reset revokes the generated PSK and authenticates again: a new PSK.
dmesg_mark
run nvme reset "/dev/$ctrl" || fail "nvme reset failed"
for i in $(seq 100); do [ "$(cat "/sys/class/nvme/$ctrl/state")" = live ] && break; sleep 0.2; done
[ "$(cat "/sys/class/nvme/$ctrl/state")" = live ] || { dmesg_since_mark | sed 's/^/# /'; fail "$ctrl not live after the reset"; }
key2=$(ctrl_psk "$ctrl") || fail "no generated PSK after the reset"
[ "$key2" != "$key" ] || fail "the reset kept PSK $key"
keyctl describe "$((16#$key))" >/dev/null 2>&1 && fail "the old PSK $key was not revoked"
log "after the reset: PSK $key2, $key revoked"
run_fio --name=concat --filename="$dev" --rw=read --bs=4k --size=512k --ioengine=libaio --iodepth=8 --direct=1 \
	--verify=crc32c --verify_only=1 --verify_fatal=1 || fail "data written before the reset does not verify"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
no_ctrl_left || fail "disconnect left something"
run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload"

# concat with read_sock=1: authentication on the plain admin queue, then TLS on every queue with the
# generated PSK, and io_work pushing with read_sock() (kTLS's tls_sw_read_sock()) on the I/O queues: the
# data written above verifies, a new write verifies, the I/O queues' read_sock_calls moved.
run modprobe rnvme_tcp read_sock=1 || fail "cannot load rnvme_tcp read_sock=1"
dmesg_mark
echo "$opts" >/dev/nvme-fabrics || { dmesg_since_mark | sed 's/^/# /'; fail "concat connect with read_sock=1 failed"; }
ctrl=$(ctrl_for_nqn) || fail "no controller for $NQN (read_sock=1)"
dmesg_since_mark | grep -q "nvme $ctrl: qid 0: authenticated with hash hmac(sha256) dhgroup ffdhe2048" ||
	fail "no DH-HMAC-CHAP on the admin queue (read_sock=1)"
key3=$(ctrl_psk "$ctrl") || fail "no generated PSK (read_sock=1)"
dmesg_since_mark | grep -q "nvme $ctrl: queue 0: TLS 1.3 session with PSK $key3 (rnvme_tcp)" || fail "the admin queue runs no TLS with PSK $key3 (read_sock=1)"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device (read_sock=1)"
rs_sum() { awk -v c="$ctrl" '$1 == c && $3 > 0 { for (f = 4; f <= NF; f++) if ($f ~ /^read_sock_calls=/) { sub(/.*=/, "", $f); n += $f } } END { print n + 0 }' /sys/kernel/debug/rnvme_tcp/queues; }
rs0=$(rs_sum)
run_fio --name=concat-verify --filename="$dev" --rw=read --bs=4k --size=512k --ioengine=libaio --iodepth=8 --direct=1 \
	--verify=crc32c --verify_only=1 --verify_fatal=1 \
	--name=concat-rs --stonewall --filename="$dev" --rw=randwrite --bs=64k --offset=1M --size=1M --ioengine=libaio \
	--iodepth=8 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio over concat with read_sock=1 failed"
rs1=$(rs_sum)
log "$ctrl: concat with read_sock=1, PSK $key3; I/O queues' read_sock_calls $rs0 -> $rs1"
[ "$rs1" -gt "$rs0" ] || fail "the I/O queues' read_sock_calls did not move: not the read_sock path"
dmesg_since_mark | grep -q "nvme $ctrl: .*receive failed" && fail "a receive failed: $(dmesg_since_mark | grep -m1 'receive failed')"
run nvme disconnect -n "$NQN" || fail "disconnect failed (read_sock=1)"
no_ctrl_left || fail "disconnect left something (read_sock=1)"
run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload"
