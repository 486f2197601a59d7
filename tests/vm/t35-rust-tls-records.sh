#!/bin/bash
# TLS records that are not data, sent by a target during fio verify: tests/vm/nvmet_fake.py in TLS mode
# (--tls-psk: TLS 1.3 PSK handshake by Python's ssl, then kTLS) injects one record into a read's reply, between
# the C2HData and the Response, inside the C2HData header, inside its payload or inside its data digest, or
# into a write asked for in two R2Ts, just before its first R2T (r2t) or between its R2Ts (h2c):
# a NewSessionTicket, a warning alert, close_notify, a fatal alert, a KeyUpdate, a record of unknown content
# type. Each case asserts what Documentation/tls.md's policy says: the ticket is consumed (the queue's
# tls_tickets counter moves, no error, no reconnect), every other record stops the queue with the line naming
# it and the controller reconnects to the (now well-behaved) target; fio verify passes for every case (no
# byte of any request wrong), the controller is live afterwards. Cases run on an I/O queue with recvmsg
# (recvmsg), on a poll queue (poll, io_uring hipri), or on an I/O queue with rnvme_tcp loaded read_sock=1
# (readsock: read_sock() refuses the record, io_work hands it to the recvmsg receive; a ticket must show in
# the queue's tls_handoffs). Also: a PSK the target does not accept fails the connect cleanly. make check runs
# a selection (each kind, positions and modes spread over them); TLS_RECORDS_FULL=1 runs every kind x
# position x mode; TLS_RECORDS_CASES="CASE;MODE ..." runs those.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || fail "python3 not installed"
command -v tlshd >/dev/null || fail "tlshd not installed (ktls-utils is in the rootfs recipe)"
command -v keyctl >/dev/null || fail "keyctl not installed"
NQN=nqn.2026-11.io.rnvme:tlsrec
BASE_PORT=4720
WIN_MB=8
HOSTNQN_KEY=nqn.2014-08.org.nvmexpress:uuid:rnvme-tls-records

# case;mode (recvmsg|poll|readsock): make check's selection. Batches never mix readsock with the others
# (read_sock is a module parameter): readsock cases come last.
CASES_CHECK=(
	"tls-ticket-payload;recvmsg"
	"tls-ticket-ddgst;poll"
	"tls-alert-warning-header;recvmsg"
	"tls-close-notify-ddgst;recvmsg"
	"tls-alert-fatal-between;poll"
	"tls-keyupdate-payload;recvmsg"
	"tls-unknown-type-r2t;recvmsg"
	"tls-ticket-h2c;recvmsg"
	"tls-ticket-payload;readsock"
	"tls-ticket-ddgst;readsock"
	"tls-alert-fatal-header;readsock"
	"tls-keyupdate-between;readsock"
)
cases=()
if [ -n "${TLS_RECORDS_CASES:-}" ]; then
	read -r -a cases <<<"$TLS_RECORDS_CASES"
elif [ "${TLS_RECORDS_FULL:-0}" = 1 ]; then
	# Modes alternate, so a batch has as many poll queues as I/O queues; readsock after them.
	for mode in "recvmsg poll" readsock; do
		for kind in ticket alert-warning close-notify alert-fatal keyupdate unknown-type; do
			for pos in between header payload ddgst r2t h2c; do
				for m in $mode; do cases+=("tls-$kind-$pos;$m"); done
			done
		done
	done
else
	cases=("${CASES_CHECK[@]}")
fi
n=${#cases[@]}
# Batches of 4 controllers, at most one of them on a poll queue in make check (a TLS poll queue's io_uring
# hipri job spins: its poller leaves receiving to io_work), so the fake target (one Python process) keeps
# up under TCG on a loaded machine. keep_alive_tmo=30 and tls_handshake_timeout=30 for the same reason:
# the test is about records, not about how fast Python answers a keep-alive or a handshake.
BATCH=${TLS_RECORDS_BATCH:-4}
# Each case's fio job: 4 writes (R2T), then 4 verifying reads, the 3rd of which gets the record. With a
# data digest (computed in Python by the fake target) 16 KiB I/Os, else 32 KiB (each read's C2HData payload
# spans records: kTLS sends at most 16 KiB per record).

# The kernel log line (after "nvme nvmeN: ") each kind gives; empty: none (consumed).
expect_line() {
	case $1 in
	tls-ticket-*) echo "" ;;
	tls-alert-warning-*) echo "queue Q: receive failed: TLS alert warning user_canceled (1/90) (-71)" ;;
	tls-close-notify-*) echo "queue Q: receive failed: TLS alert warning close_notify (1/0): the target closed the TLS session, orderly stop (-108)" ;;
	tls-alert-fatal-*) echo "queue Q: receive failed: TLS alert fatal internal_error (2/80) (-71)" ;;
	tls-keyupdate-*) echo "queue Q: receive failed: TLS handshake message KeyUpdate (24): KeyUpdate needs new keys and there is no rekey upcall, reconnecting (-127)" ;;
	tls-unknown-type-*) echo "queue Q: receive failed: TLS record of content type unknown (99) (-71)" ;;
	esac
}
tls_stat() { awk -v k="$1" '$1 == k { print $2 }' /proc/net/tls_stat; }
# qstat CTRL QID COUNTER: the queue's counter in the batch's copy of debugfs queues.
qstat() {
	awk -v c="$1" -v q="$2" -v k="$3=" '$1 == c && $2 == "qid" && $3 == q { for (f = 4; f <= NF; f++) if (index($f, k) == 1) print substr($f, length(k) + 1) }' /tmp/tls-queues.txt
}

# The PSK: known bytes under a known identity, inserted into .nvme, offered by serial (tls_key=); the
# fake target gets the same bytes on its command line. It starts first (Python takes seconds under
# TCG), while tls_up starts tlshd (tls_up also inserts a key for $NQN, unused here).
PSK_HEX=$(head -c 32 /dev/urandom | od -An -tx1 -v | tr -d ' \n')
[ ${#PSK_HEX} = 64 ] || fail "no random PSK"
IDENTITY="NVMe0R01 $HOSTNQN_KEY $NQN"
specs=() qid=() mode=() name=()
for ((i = 0; i < n; i++)); do
	IFS=';' read -r "name[$i]" "mode[$i]" <<<"${cases[i]}"
	qid[i]=1; [ "${mode[i]}" = poll ] && qid[i]=2
	specs+=("${name[i]}:${qid[i]}:3")
done
flog=/tmp/nvmet-fake-tls.log
python3 "$(dirname "$0")/nvmet_fake.py" "$BASE_PORT" --nqn "$NQN" --tls-psk "$PSK_HEX" --window "$WIN_MB:$((WIN_MB + n))" \
	--cases "${specs[*]}" >"$flog" 2>&1 &
fake=$!
on_exit "kill $fake"
on_exit unload_transports
on_exit 'for c in $(rec_ctrls); do echo 1 >/sys/class/nvme/$c/delete_controller; done'
tls_up || fail "TLS set-up (tlshd) failed"
modprobe tls || fail "no kTLS (modprobe tls)"
# shellcheck disable=SC2059
psk_serial=$(printf "$(sed 's/../\\x&/g' <<<"$PSK_HEX")" | keyctl padd psk "$IDENTITY" %:.nvme) || fail "keyctl padd psk failed"
wrong_serial=$(head -c 32 /dev/urandom | keyctl padd psk "NVMe0R01 $HOSTNQN_KEY $NQN-wrong" %:.nvme) || fail "keyctl padd (wrong key) failed"
log "PSK $(printf '%08x' "$psk_serial") '$IDENTITY'; wrong PSK $(printf '%08x' "$wrong_serial"); set up at ${SECONDS}s"
unload_transports || fail "cannot unload the transports"
# load_rnvme 0|1: rnvme_tcp loaded with read_sock=$1 (reloaded if it runs the other mode).
loaded_rs=
load_rnvme() {
	[ "$loaded_rs" = "$1" ] && return 0
	[ -z "$loaded_rs" ] || modprobe -r rnvme_tcp || return 1
	modprobe rnvme_tcp tls_handshake_timeout=30 read_sock="$1" || return 1
	loaded_rs=$1
	log "rnvme_tcp loaded with read_sock=$1"
}
load_rnvme 0 || fail "cannot load rnvme_tcp"
for i in $(seq 600); do grep -q listening "$flog" && break; sleep 0.1; done
grep -q listening "$flog" || { sed 's/^/# fake: /' "$flog"; fail "the fake target did not start"; }
log "the fake target serves $n cases (ports $BASE_PORT-$((BASE_PORT + n - 1))), up at ${SECONDS}s"

# The controllers of the cases' subsystems ($NQN-*).
rec_ctrls() {
	local c
	for c in /sys/class/nvme/nvme*; do
		[ -e "$c/subsysnqn" ] && [[ $(cat "$c/subsysnqn") == "$NQN"-* ]] && basename "$c"
	done
}
no_ctrl_left() {
	[ -z "$(rec_ctrls)" ] || { log "controllers left: $(rec_ctrls)"; return 1; }
	grep -qx 'live_ctrls 0' /sys/kernel/debug/rnvme_tcp/queues || { log "rnvme_tcp still holds a controller"; return 1; }
}
# fabrics_connect I OPTIONS: case I's controller (port $BASE_PORT+I, subsystem $NQN-I) over TLS with
# tls_key=KEY ($3, default the good one); prints its instance number.
fabrics_connect() {
	local fd line rc=0
	exec {fd}<>/dev/nvme-fabrics || return 1
	echo "transport=tcp,traddr=$TRADDR,trsvcid=$((BASE_PORT + $1)),nqn=$NQN-$1,tls,tls_key=${3:-$psk_serial},$2" >&"$fd" 2>/dev/null &&
		read -r line <&"$fd" || rc=1
	exec {fd}>&-
	[ $rc = 0 ] || return 1
	line=${line#instance=}; echo "${line%%,*}"
}

# A PSK the target does not accept: the handshake fails, the connect fails with the line, nothing is left.
t0=$SECONDS
dmesg_mark
fabrics_connect 0 nr_io_queues=1 "$wrong_serial" >/dev/null && fail "the connect with a PSK the target refuses succeeded"
line=$(dmesg_since_mark | grep -m1 -o "rnvme_tcp: queue 0: TLS handshake failed with PSK $(printf '%08x' "$wrong_serial"): -[0-9]*") ||
	{ dmesg_since_mark | sed 's/^/#   /'; fail "no handshake-failed line for the wrong PSK"; }
log "wrong PSK: $line"
grep -q "^tls handshake failed on connection .* port $BASE_PORT$" "$flog" || fail "the fake target saw no failed handshake"
no_ctrl_left || fail "the refused connect left something"
log "wrong PSK: $((SECONDS - t0))s"

is_rs() { [ "${mode[$1]}" = readsock ] && echo 1 || echo 0; }
verdicts=()
for ((b0 = 0; b0 < n; b0 = b1)); do
	# A batch: up to BATCH cases of one read_sock setting.
	b1=$((b0 + 1))
	while [ $b1 -lt $n ] && [ $((b1 - b0)) -lt "$BATCH" ] && [ "$(is_rs $b1)" = "$(is_rs $b0)" ]; do b1=$((b1 + 1)); done
	load_rnvme "$(is_rs $b0)" || fail "cannot load rnvme_tcp read_sock=$(is_rs $b0)"
	start=$SECONDS
	dmesg_mark
	rekey0=$(tls_stat TlsRxRekeyReceived) decerr0=$(tls_stat TlsDecryptError) retry0=$(tls_stat TlsDecryptRetry)
	ctrl=() fjobs=() nkeyupdate=0 npayload=0
	for ((i = b0; i < b1; i++)); do
		opts="nr_io_queues=1,keep_alive_tmo=30,reconnect_delay=1,ctrl_loss_tmo=60"
		[ "${mode[i]}" = poll ] && opts+=",nr_poll_queues=1"
		[[ ${name[i]} == *-ddgst ]] && opts+=",data_digest"
		[[ ${name[i]} == tls-keyupdate-* ]] && nkeyupdate=$((nkeyupdate + 1))
		# (readsock: read_sock() decrypts into skbs and the hand-off reads the record into the queue's buffer: no in-place attempt)
		[[ ${name[i]} == *-payload ]] && [ "${mode[i]}" != readsock ] && npayload=$((npayload + 1))
		c=$(fabrics_connect "$i" "$opts") || { dmesg_since_mark | sed 's/^/#   /'; sed 's/^/# fake: /' "$flog"; fail "${name[i]}: TLS connect failed"; }
		ctrl[i]=nvme$c
		dev=$(ns_dev_of "${ctrl[i]}") || fail "${name[i]}: no namespace on ${ctrl[i]}"
		eng=(--ioengine=libaio); [ "${mode[i]}" = poll ] && eng=(--ioengine=io_uring --hipri=1)
		bs=32k; [[ ${name[i]} == *-ddgst ]] && bs=16k
		fjobs+=(--name="${name[i]}-${mode[i]}" --filename="$dev" --offset=$((WIN_MB * 1024 + i * 512))k --bs=$bs
			--size=$((${bs%k} * 4))k "${eng[@]}")
	done
	log "batch $((b0 / BATCH + 1)): $((b1 - b0)) controllers connected in $((SECONDS - start))s"
	timeout 150 nice -n 10 fio --thread --rw=randwrite --iodepth=4 --direct=1 --verify=crc32c --do_verify=1 \
		--verify_fatal=1 --verify_state_save=0 --output-format=terse --terse-version=3 "${fjobs[@]}" >/tmp/fio-tls.log 2>&1
	frc=$?
	secs=$((SECONDS - start))
	cat /sys/kernel/debug/rnvme_tcp/queues >/tmp/tls-queues.txt
	dmesg_since_mark >/tmp/tls-dmesg.txt
	rekey=$(($(tls_stat TlsRxRekeyReceived) - rekey0)) decerr=$(($(tls_stat TlsDecryptError) - decerr0))
	retry=$(($(tls_stat TlsDecryptRetry) - retry0))
	for ((i = b0; i < b1; i++)); do
		v= c=${ctrl[i]} q=${qid[i]} what=
		err=$(awk -F';' -v j="${name[i]}-${mode[i]}" '$3 == j { print $5 }' /tmp/fio-tls.log)
		[ "$err" = 0 ] || v+="fio verify: ${err:-no result} (status $frc); "
		grep -q "^fired ${name[i]} qid $q .*port $((BASE_PORT + i))$" "$flog" || v+="the case did not fire on queue $q; "
		grep -q "^tls connection [0-9]*: TLS_AES_128_GCM_SHA256, identity '$IDENTITY', kTLS tx .* port $((BASE_PORT + i))$" "$flog" ||
			v+="no TLS session with identity '$IDENTITY' on the fake; "
		# TLS_RX_EXPECT_NO_PAD was accepted on the queue (in-place decryption).
		nopad=$(awk -v c="$c" -v q="$q" '$1 == c && $2 == "qid" && $3 == q { for (f = 4; f <= NF; f++) if ($f ~ /^tls_no_pad=/) { sub(/tls_no_pad=/, "", $f); print $f } }' /tmp/tls-queues.txt)
		[ "$nopad" = 1 ] || v+="queue $q: tls_no_pad=$nopad, expected 1; "
		state=$(cat /sys/class/nvme/"$c"/state 2>/dev/null)
		[ "$state" = live ] || v+="state $state, not live; "
		pattern=$(expect_line "${name[i]}")
		if [ -z "$pattern" ]; then
			# Consumed: this queue counted the ticket; no error line, no recovery on this controller.
			tk=$(qstat "$c" "$q" tls_tickets)
			[ "${tk:-0}" -ge 1 ] || v+="queue $q: tls_tickets ${tk:-?}, expected >= 1; "
			line=$(grep "nvme $c: " /tmp/tls-dmesg.txt | grep -m1 -e "receive failed\|error recovery\|Reconnecting\|reconnect\|timeout") &&
				v+="unexpected: ${line#*] }; "
			what="consumed (queue $q tls_tickets=$tk), no recovery"
			if [ "${mode[i]}" = readsock ]; then
				# read_sock() refused it and io_work handed it to the recvmsg receive.
				ho=$(qstat "$c" "$q" tls_handoffs) rs=$(qstat "$c" "$q" read_sock_calls)
				[ "${ho:-0}" -ge 1 ] || v+="queue $q: tls_handoffs ${ho:-?}, expected >= 1; "
				[ "${rs:-0}" -ge 1 ] || v+="queue $q: read_sock_calls ${rs:-?}, expected >= 1; "
				what+=", read_sock_calls=$rs tls_handoffs=$ho"
			fi
		else
			pattern=${pattern//queue Q:/queue $q:}
			line=$(grep -m1 -F -e "nvme $c: $pattern" /tmp/tls-dmesg.txt) || v+="no '$pattern' in dmesg; "
			grep -q "nvme $c: Successfully reconnected" /tmp/tls-dmesg.txt || v+="no reconnect; "
			what="${line#*"nvme $c: "}; reconnected"
		fi
		if [ -z "$v" ]; then
			log "${name[i]} ${mode[i]} ($c): fio verified, $what, live"
		else
			log "${name[i]} ${mode[i]} ($c): FAILED: $v"
			grep "nvme $c: " /tmp/tls-dmesg.txt | sed 's/^/#   /'
			grep "port $((BASE_PORT + i))$" "$flog" | sed 's/^/#   fake: /'
			grep "^$c " /tmp/tls-queues.txt | sed 's/^/#   /'
		fi
		verdicts[i]=$v
	done
	[ "$frc" = 0 ] || grep -v '^3;' /tmp/fio-tls.log | sed 's/^/#   fio: /'
	# kTLS's own counters: every KeyUpdate was received (TlsRxRekeyReceived), no record failed to decrypt.
	[ "$rekey" -ge "$nkeyupdate" ] || verdicts[b0]+="TlsRxRekeyReceived moved by $rekey for $nkeyupdate KeyUpdates; "
	[ "$decerr" = 0 ] || verdicts[b0]+="TlsDecryptError moved by $decerr; "
	# A record that is not data inside a payload, received with recvmsg asking for the rest of the payload into
	# the request's pages: kTLS tries to decrypt it in place (TLS_RX_EXPECT_NO_PAD, zero-copy), finds its inner
	# type is not data and decrypts it again (TlsDecryptRetry), which only a zero-copy attempt counts.
	[ "$npayload" = 0 ] || [ "$retry" -ge 1 ] || verdicts[b0]+="TlsDecryptRetry moved by $retry for $npayload records inside payloads received with recvmsg: no in-place decryption tried; "
	log "batch $((b0 / BATCH + 1)): fio status $frc after ${secs}s; TlsRxRekeyReceived +$rekey ($nkeyupdate KeyUpdates), TlsDecryptError +$decerr, TlsDecryptRetry +$retry ($npayload records inside payloads received in place)"
	pids=()
	log "batch $((b0 / BATCH + 1)): checked at $((SECONDS - start))s"
	for ((i = b0; i < b1; i++)); do
		[ -e "/sys/class/nvme/${ctrl[i]}" ] && { echo 1 >"/sys/class/nvme/${ctrl[i]}/delete_controller" & pids+=($!); }
	done
	[ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"
	no_ctrl_left || fail "controllers left after batch $((b0 / BATCH + 1))"
	log "batch $((b0 / BATCH + 1)): deleted, $((SECONDS - start))s in all"
done

run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload"
grep -v ' port [0-9]*$' "$flog" | grep -v '^listening$' | sed 's/^/# fake (stderr): /'

failed=()
for ((i = 0; i < n; i++)); do [ -z "${verdicts[i]}" ] || failed+=("${name[i]}-${mode[i]}"); done
[ ${#failed[@]} -eq 0 ] || fail "${#failed[@]} of $n cases failed: ${failed[*]}"
log "all $n cases passed"
