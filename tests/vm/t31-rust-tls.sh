#!/bin/bash
# rnvme_tcp over TLS 1.3 (PSK from `nvme gen-tls-key --insert`, handshakes by tlshd): connect --tls shows
# the key in sysfs, fio verifies at 4k/64k/1M with and without digests (with: on separate write and read
# queues, the read queue completes the verify reads), kTLS carried every queue, fio
# verifies with read_sock=1 (io_work pushes with read_sock(), with and without data digest), the target's
# port removed mid-I/O and re-added (reconnect with new handshakes, the data verifies), and a
# handshake that cannot happen (tlshd stopped: timeout; no tlshd; no PSK) fails the connect with a line
# naming the queue and leaves no controller behind.
. "$(dirname "$0")/lib.sh"
command -v tlshd >/dev/null || fail "tlshd not installed (ktls-utils is in the rootfs recipe)"
tls_up || fail "TLS set-up (key, tlshd) failed"
target_up || fail "target set-up failed"
on_exit unload_transports
use_rust_driver || fail "cannot load rnvme_tcp"
tls_stat() { awk -v k="$1" '$1 == k { print $2 }' /proc/net/tls_stat; }
no_ctrl_left() {
	! ctrl_for_nqn >/dev/null || { log "a controller for $NQN is left"; return 1; }
	grep -qx 'live_ctrls 0' /sys/kernel/debug/rnvme_tcp/queues || { log "rnvme_tcp still holds a controller ($(grep live_ctrls /sys/kernel/debug/rnvme_tcp/queues))"; return 1; }
}

for digest in "" "--hdr-digest --data-digest"; do
	tx0=$(tls_stat TlsTxSw) rx0=$(tls_stat TlsRxSw)
	dmesg_mark
	# With digests, separate read queues: qid 1 takes the writes, qid 2 (the read queue) fio's verify reads.
	queues=--nr-io-queues=2; [ -n "$digest" ] && queues="--nr-io-queues=1 --nr-write-queues=1"
	# shellcheck disable=SC2086
	run nvme connect -t tcp --tls -a "$TRADDR" -s "$TRSVCID" -n "$NQN" $queues $digest ||
		{ sed 's/^/# tlshd: /' /tmp/tlshd.log; dmesg_since_mark | sed 's/^/# /'; fail "TLS connect ${digest:-without digests} failed"; }
	ctrl=$(ctrl_for_nqn) || fail "no controller for $NQN"
	assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
	key=$(cat /sys/class/nvme/"$ctrl"/tls_key 2>/dev/null)
	[ -n "$key" ] || fail "$ctrl shows no tls_key"
	keyctl show %:.nvme | grep -q "^ *$((16#$key)) .*psk" || fail "tls_key $key is not the PSK in the .nvme keyring"
	dmesg_since_mark | grep -q "nvme $ctrl: queue 0: TLS 1.3 session with PSK $key (rnvme_tcp)" ||
		fail "no TLS session line for $ctrl"
	log "$ctrl tls_key $key ${digest:-(no digests)}"
	dev=$(ns_dev_of "$ctrl") || fail "no namespace block device for $ctrl"
	jobs=()
	for bs in 4k 64k 1M; do
		size=512k; [ "$bs" = 64k ] && size=2M; [ "$bs" = 1M ] && size=4M
		jobs+=(--name="tls-$bs" --stonewall --filename="$dev" --rw=randwrite --bs=$bs --size=$size --ioengine=libaio
			--iodepth=8 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1)
	done
	run_fio "${jobs[@]}" || fail "fio verify over TLS failed (the job without err= 0 above)"
	if [ -n "$digest" ]; then
		dmesg_since_mark | grep -q "nvme $ctrl: mapped 1/1/0 default/read/poll queues" || fail "TLS queues not mapped 1/1/0"
		rq=$(awk -v c="$ctrl" '$1 == c && $3 == 2 { for (f = 4; f <= NF; f++) if ($f ~ /^work_completions=/) { sub(/.*=/, "", $f); print $f } }' /sys/kernel/debug/rnvme_tcp/queues)
		log "TLS read queue (qid 2): $(grep "^$ctrl qid 2 " /sys/kernel/debug/rnvme_tcp/queues)"
		[ "${rq:-0}" -gt 0 ] || fail "the TLS read queue completed nothing"
	fi
	tx=$(tls_stat TlsTxSw) rx=$(tls_stat TlsRxSw)
	log "kTLS sessions set up: TlsTxSw $tx0 -> $tx, TlsRxSw $rx0 -> $rx"
	# Three queues (admin + 2 I/O), each with kTLS on the host and the target side.
	[ $((tx - tx0)) -ge 6 ] && [ $((rx - rx0)) -ge 6 ] || fail "kTLS was not set up on every queue"
	run nvme disconnect -n "$NQN" || fail "disconnect failed"
	no_ctrl_left || fail "disconnect left something"
done

# tls_key= and keyring= as nvme-fabrics takes them (key serials): that PSK, looked up in that keyring.
psk=$(keyctl show %:.nvme | awk '/psk: / { print $1; exit }')
ring=$(keyctl show %:.nvme | awk '/keyring: \.nvme/ { print $1; exit }')
[ -n "$psk" ] && [ -n "$ring" ] || fail "no PSK or .nvme keyring serial in: $(keyctl show %:.nvme | tr '\n' ' ')"
# The host NQN the PSK was made for, with the host id nvme-cli paired it with.
hostid=$(cat /etc/nvme/hostid 2>/dev/null || true)
opts="transport=tcp,traddr=$TRADDR,trsvcid=$TRSVCID,nqn=$NQN,hostnqn=$(cat /etc/nvme/hostnqn)${hostid:+,hostid=$hostid},tls,tls_key=$psk,keyring=$ring"
log "\$ echo $opts > /dev/nvme-fabrics"
echo "$opts" >/dev/nvme-fabrics || fail "connect with tls_key=$psk keyring=$ring failed"
ctrl=$(ctrl_for_nqn) || fail "no controller for $NQN"
[ "$(cat /sys/class/nvme/"$ctrl"/tls_key)" = "$(printf '%08x' "$psk")" ] || fail "tls_key is not the given key $psk"
[ "$(cat /sys/class/nvme/"$ctrl"/tls_mode)" = tls ] || fail "tls_mode is not tls"
[ "$(cat /sys/class/nvme/"$ctrl"/tls_keyring)" = .nvme ] || fail "tls_keyring is not .nvme"
log "$ctrl tls_key $(cat /sys/class/nvme/"$ctrl"/tls_key), tls_mode tls, tls_keyring .nvme"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
no_ctrl_left || fail "disconnect left something"

# A poll queue over TLS: its poller leaves receiving to io_work (recvmsg, record types seen).
run nvme connect -t tcp --tls -a "$TRADDR" -s "$TRSVCID" -n "$NQN" --nr-io-queues=1 --nr-poll-queues=1 ||
	fail "TLS connect with a poll queue failed"
ctrl=$(ctrl_for_nqn) || fail "no controller for $NQN"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device for $ctrl"
jobs=()
for bs in 4k 64k; do
	size=512k; [ "$bs" = 64k ] && size=2M
	jobs+=(--name="tls-poll-$bs" --stonewall --filename="$dev" --rw=randwrite --bs=$bs --size=$size --ioengine=io_uring
		--hipri=1 --iodepth=8 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1)
done
run_fio "${jobs[@]}" || fail "fio hipri over TLS failed (the job without err= 0 above)"
grep "^$ctrl " /sys/kernel/debug/rnvme_tcp/queues | sed 's/^/# /'
run nvme disconnect -n "$NQN" || fail "disconnect failed"
no_ctrl_left || fail "disconnect left something"

# The target's TLS port removed mid-I/O and re-added: the queues fail, reconnect attempts fail while it is
# gone, then every queue shakes hands again; a rate-limited write job across the outage ends without error
# and reads back everything it wrote (fio verify after the writes).
run nvme connect -t tcp --tls -a "$TRADDR" -s "$TRSVCID" -n "$NQN" --nr-io-queues=1 --reconnect-delay=1 --ctrl-loss-tmo=-1 ||
	fail "TLS connect for the port removal failed"
ctrl=$(ctrl_for_nqn) || fail "no controller for $NQN"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device for $ctrl"
dmesg_mark
rx0=$(tls_stat TlsRxSw)
fio --name=tls-flap --filename="$dev" --rw=randwrite --bs=4k --size=1M --ioengine=libaio --iodepth=16 --direct=1 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --rate=256k >/tmp/tls-flap.txt 2>&1 &
fpid=$!
w0=$(awk '{ print $5 }' "/sys/block/${dev#/dev/}/stat")
for _ in $(seq 100); do [ "$(awk '{ print $5 }' "/sys/block/${dev#/dev/}/stat")" -gt "$w0" ] && break; sleep 0.1; done
kill -0 "$fpid" 2>/dev/null || fail "the write job ended before the port went away"
rm -f "$NVMET/ports/1/subsystems/$NQN" && rmdir "$NVMET/ports/1" || fail "cannot remove the TLS port"
for _ in $(seq 150); do dmesg_since_mark | grep -q "nvme $ctrl: Failed reconnect attempt" && break; sleep 0.2; done
dmesg_since_mark | grep -q "nvme $ctrl: Failed reconnect attempt" || fail "no failed reconnect while the port was gone"
mkdir "$NVMET/ports/1" && echo ipv4 >"$NVMET/ports/1/addr_adrfam" && echo tcp >"$NVMET/ports/1/addr_trtype" &&
	echo "$TRADDR" >"$NVMET/ports/1/addr_traddr" && echo "$TRSVCID" >"$NVMET/ports/1/addr_trsvcid" &&
	echo tls1.3 >"$NVMET/ports/1/addr_tsas" && ln -s "$NVMET/subsystems/$NQN" "$NVMET/ports/1/subsystems/$NQN" ||
	fail "cannot re-add the TLS port"
for _ in $(seq 300); do dmesg_since_mark | grep -q "nvme $ctrl: Successfully reconnected" && break; sleep 0.2; done
dmesg_since_mark | grep -q "nvme $ctrl: Successfully reconnected" || fail "no reconnect after the TLS port came back"
wait "$fpid"; rc=$?
grep -E 'err=|WRITE:|READ:' /tmp/tls-flap.txt | sed 's/^ */# /'
[ $rc -eq 0 ] && grep -q 'err= 0' /tmp/tls-flap.txt && grep -qE 'READ: .*io=1024KiB' /tmp/tls-flap.txt ||
	{ sed 's/^/#   /' /tmp/tls-flap.txt | tail -n 20; fail "the write job across the TLS port removal failed or did not read everything back"; }
# The reconnect shook hands again on both queues: new kTLS receive sessions on the host and target sides.
n=$(( $(tls_stat TlsRxSw) - rx0 ))
[ "$n" -ge 4 ] || fail "$n new kTLS receive sessions after the reconnect (want 4: admin and I/O queue, both sides)"
dmesg_since_mark | grep -q "nvme $ctrl: queue 0: TLS 1.3 session with PSK" || fail "no TLS session line after the reconnect"
log "TLS port removed and re-added under fio: reconnected, $n new kTLS receive sessions, 1 MiB written and verified"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
no_ctrl_left || fail "disconnect left something"

# read_sock=1 over TLS: io_work pushes with read_sock() (kTLS's tls_sw_read_sock()), handing any record that
# is not data to the recvmsg receive. fio verifies with and without a data digest; the I/O queues' debugfs
# read_sock_calls moved (the push path received), the connect is refused no more. The data-digest connect
# also has a poll queue (qid 2): its poller leaves TLS receiving to io_work, which pushes with read_sock()
# there too, so a hipri job verifies and qid 2's read_sock_calls move.
modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload"
modprobe rnvme_tcp read_sock=1 || fail "cannot load rnvme_tcp read_sock=1"
for digest in "" "--data-digest"; do
	dmesg_mark
	poll=; [ -n "$digest" ] && poll=--nr-poll-queues=1
	# shellcheck disable=SC2086
	run nvme connect -t tcp --tls -a "$TRADDR" -s "$TRSVCID" -n "$NQN" --nr-io-queues=1 $poll $digest ||
		{ dmesg_since_mark | sed 's/^/# /'; fail "TLS connect with read_sock=1 ${digest:-without digests} failed"; }
	ctrl=$(ctrl_for_nqn) || fail "no controller for $NQN"
	dmesg_since_mark | grep -q "nvme $ctrl: queue 0: TLS 1.3 session with PSK" || fail "no TLS session line for $ctrl (read_sock=1)"
	dev=$(ns_dev_of "$ctrl") || fail "no namespace block device for $ctrl"
	rs_calls() { awk -v c="$ctrl" -v q="$1" '$1 == c && $3 == q { for (f = 4; f <= NF; f++) if ($f ~ /^read_sock_calls=/) { sub(/.*=/, "", $f); print $f } }' /sys/kernel/debug/rnvme_tcp/queues; }
	q0=$(rs_calls 1) p0=$(rs_calls 2)
	jobs=()
	for bs in 4k 128k; do
		size=512k; [ "$bs" = 128k ] && size=2M
		jobs+=(--name="tls-rs-$bs" --stonewall --filename="$dev" --rw=randwrite --bs=$bs --size=$size --ioengine=libaio
			--iodepth=8 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1)
	done
	# The poll queue's job writes its own region (offset 4M).
	[ -n "$poll" ] && jobs+=(--name=tls-rs-poll-64k --stonewall --filename="$dev" --rw=randwrite --bs=64k --offset=4M --size=1M
		--ioengine=io_uring --hipri=1 --iodepth=8 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1)
	run_fio "${jobs[@]}" || fail "fio verify over TLS with read_sock=1 ${digest:-without digests} failed"
	line=$(grep "^$ctrl qid 1 " /sys/kernel/debug/rnvme_tcp/queues)
	log "read_sock=1 ${digest:-(no digests)}: $line"
	q1=$(awk '{ for (f = 4; f <= NF; f++) if ($f ~ /^read_sock_calls=/) { sub(/.*=/, "", $f); print $f } }' <<<"$line")
	[ "${q1:-0}" -gt "${q0:-0}" ] || fail "queue 1 read_sock_calls did not move ($q0 -> $q1): not the read_sock path"
	if [ -n "$poll" ]; then
		pline=$(grep "^$ctrl qid 2 " /sys/kernel/debug/rnvme_tcp/queues)
		log "read_sock=1 poll queue: $pline"
		p1=$(rs_calls 2)
		[ "${p1:-0}" -gt "${p0:-0}" ] || fail "poll queue (qid 2) read_sock_calls did not move ($p0 -> $p1)"
	fi
	[ -n "$digest" ] && ! grep -q ' ddgst=1 ' <<<" $line " && fail "queue 1 did not negotiate the data digest"
	dmesg_since_mark | grep -q "nvme $ctrl: .*receive failed" && fail "a receive failed with read_sock=1: $(dmesg_since_mark | grep -m1 'receive failed')"
	run nvme disconnect -n "$NQN" || fail "disconnect failed"
	no_ctrl_left || fail "disconnect left something"
done

# Handshake timeout: tlshd stopped, so the upcall is never answered.
modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload"
modprobe rnvme_tcp tls_handshake_timeout=2 || fail "cannot load rnvme_tcp tls_handshake_timeout=2"
kill -STOP "$_tlshd_pid"
dmesg_mark
nvme connect -t tcp --tls -a "$TRADDR" -s "$TRSVCID" -n "$NQN" >/dev/null 2>&1 && { kill -CONT "$_tlshd_pid"; fail "connect succeeded with tlshd stopped"; }
kill -CONT "$_tlshd_pid"
line=$(dmesg_since_mark | grep -o "rnvme_tcp: queue 0: TLS handshake timed out after 2 s.*") || fail "no handshake timeout line"
log "$line"
no_ctrl_left || fail "the timed-out connect left something"

# No handshake agent at all.
kill "$_tlshd_pid"; wait "$_tlshd_pid" 2>/dev/null
dmesg_mark
nvme connect -t tcp --tls -a "$TRADDR" -s "$TRSVCID" -n "$NQN" >/dev/null 2>&1 && fail "connect succeeded without tlshd"
line=$(dmesg_since_mark | grep -o "rnvme_tcp: queue 0: failed to start TLS: no handshake agent.*") || fail "no line for the missing tlshd"
log "$line"
no_ctrl_left || fail "the connect without tlshd left something"

# No PSK for this host and subsystem.
keyctl clear %:.nvme
dmesg_mark
nvme connect -t tcp --tls -a "$TRADDR" -s "$TRSVCID" -n "$NQN" >/dev/null 2>&1 && fail "connect succeeded without a PSK"
line=$(dmesg_since_mark | grep -o "rnvme_tcp: queue 0: no valid PSK found.*") || fail "no line for the missing PSK"
log "$line"
no_ctrl_left || fail "the connect without a PSK left something"
modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload"
