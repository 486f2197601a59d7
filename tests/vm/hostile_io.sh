# The hostile-target cases during real I/O, shared by t41-hostile-io (recvmsg),
# t42-hostile-io-read-sock (read_sock=1) and t43-hostile-io-poll (a poll
# queue). Sourced after lib.sh; not a test itself (the runner plans t*.sh).
#
# One tests/vm/nvmet_fake.py process serves every case of the file, case i on
# port $HOSTILE_PORT+i; each case misbehaves once. Per case: connect with one
# I/O queue (and a poll queue in "poll" mode), fio verify (64k randwrite, QD
# 4, 512k, or 4k for the in-capsule case) in a window of the namespace the
# kernel's partition scan does not read, disconnect. A case passes when the
# target says it fired, the kernel log since the case's mark has its line
# (naming the queue: "queue Q:" is the queue the case ran on), fio ended
# (verified, unless the case lets the I/O fail) and no controller is left.
# After the cases, rnvme_tcp must unload.
# shellcheck shell=bash
command -v python3 >/dev/null || skip "python3 not installed"
NQN=nqn.2026-11.io.rnvme:hostile
IO_TIMEOUT=/sys/module/nvme_core/parameters/io_timeout

# case|after|connect options|expect|kernel log line (after "nvme nvmeN: "; Q: the queue)|fake's log line
#
# after: the case fires at that command of its kind (reads, R2T writes,
# in-capsule writes) inside the window; for icresp-* the queue whose connect
# it spoils is the mode's I/O queue, or 0 (the admin queue) when after is "admin".
# expect: "line" (the line; fio must end, verified or with an I/O error),
# "verify" (the line and fio verify passes), "quiet" (no error line and no
# error recovery at all, fio verify passes), "refused" (the connect fails with
# the line; a second connect, the target good again, passes fio verify).
HOSTILE_CASES=(
	"c2h-beyond|3||line|queue Q: request 0x[0-9a-f]*: c2h data offset 0 length [0-9]*, expected offset 0 of|"
	"c2h-gap|3||line|queue Q: request 0x[0-9a-f]*: c2h data offset [0-9]* length [0-9]*, expected offset [0-9]* of|"
	"c2h-overlap|3||line|queue Q: request 0x[0-9a-f]*: c2h data offset [0-9]* length [0-9]*, expected offset [0-9]* of|"
	"c2h-ddgst-bad|3|--data-digest|line|queue Q: data digest error, cid 0x|"
	"c2h-hdgst-bad|3|--hdr-digest|line|queue Q: receive failed: header digest error: recv 0x|"
	"c2h-pad|3||line|queue Q: receive failed: pdu type 0x7: bad pdo 28|"
	"c2h-zero-len|3||line|queue Q: .*c2h data pdu with zero data length|"
	"c2h-success-then-rsp|3||line|queue Q: response for \(unknown \)\?command id 0x|"
	"c2h-plen-huge|3||line|queue Q: receive failed: pdu type 0x7: bad plen 4294967295|"
	"rsp-twice|3||line|queue Q: response for \(unknown \)\?command id 0x|"
	"rsp-short-read|3||line|queue Q: cid 0x[0-9a-f]* short data-in: got [0-9]* of [0-9]*|"
	"rsp-stale-cid|3||line|queue Q: response for \(unknown \)\?command id 0x|"
	"rsp-unknown-flood|3||line|queue Q: response for unknown command id 0x|"
	"rsp-hlen-short|3||line|queue Q: receive failed: pdu type 0x5: bad hlen 23|"
	"rsp-slow|3||quiet||rsp-slow: cid 0x[0-9a-f]*: 24 bytes in [0-9.]*s"
	"unknown-type|3||line|queue Q: receive failed: unexpected pdu type 0xee|"
	"icresp-second|3||line|queue Q: receive failed: unexpected pdu type 0x1|"
	"term-req|3||line|queue Q: receive failed: received C2HTermReq (FES = Data Transfer Out Of Range|"
	"close-mid-payload|3||line|queue Q: receive failed: \(connection closed by target\|socket receive failed\)|"
	"rst-mid-payload|3||line|queue Q: \(receive failed\|socket closed\)|"
	"stall-mid-pdu|3||line|queue Q: request timeout|"
	"r2t-unknown-cid|3||line|queue Q: r2t for unknown command id 0x|"
	"r2t-for-read|3||line|queue Q: request 0x[0-9a-f]*: r2t but no data is due|"
	"r2t-beyond|3||line|queue Q: request 0x[0-9a-f]*: r2t offset 0 length [0-9]*, 0 of [0-9]* sent|"
	"r2t-dup|3||line|queue Q: request 0x[0-9a-f]*: r2t while the previous one is outstanding|"
	"r2t-unsolicited|3||line|queue Q: request 0x[0-9a-f]*: r2t but no data is due|"
	"r2t-over-maxh2cdata|3||quiet||r2t-over-maxh2cdata: cid 0x[0-9a-f]*: 65536 bytes in 4 H2CData of at most 16384, stored"
	"rsp-before-h2c|3||verify|queue Q: response for command id 0x[0-9a-f]* before its data was sent|rsp-before-h2c: cid 0x[0-9a-f]*: 65536 bytes in [0-9]* H2CData.*, stored"
	"icresp-cpda|admin||refused|rnvme_tcp: queue 0: icresp: unsupported cpda 1|"
	"icresp-hdgst-flip|io||refused|rnvme_tcp: queue Q: icresp: digests requested 0x0, returned 0x1|"
	"icresp-ddgst-flip|io|--hdr-digest --data-digest|refused|rnvme_tcp: queue Q: icresp: digests requested 0x3, returned 0x1|"
)
HOSTILE_PORT=${HOSTILE_PORT:-4600}
# fio's window (MiB) inside the 64 MiB namespace; the fake counts only
# commands in it, so the partition scan at connect never fires a case.
WIN_MB=8

# hostile_run MODE: every case (or those in $CASES) in MODE: recvmsg,
# read_sock (rnvme_tcp read_sock=1) or poll (I/O through a poll queue:
# --nr-poll-queues=1, fio io_uring --hipri).
hostile_run() {
	local mode=$1 qid=1 qopts="--nr-io-queues=1" fioeng="--ioengine=libaio" modopt=
	case $mode in
	read_sock) modopt=read_sock=1 ;;
	poll) qid=2; qopts="--nr-io-queues=1 --nr-poll-queues=1"; fioeng="--ioengine=io_uring --hipri=1" ;;
	esac
	local cases=("${HOSTILE_CASES[@]}")
	[ -n "${CASES:-}" ] && mapfile -t cases < <(printf '%s\n' "${HOSTILE_CASES[@]}" | grep -E "^(${CASES// /|})\|")
	[ ${#cases[@]} -gt 0 ] || fail "no case selected"
	local specs=() c name after opts expect pattern fakeline q i
	for c in "${cases[@]}"; do
		IFS='|' read -r name after opts expect pattern fakeline <<<"$c"
		case $after in admin) specs+=("$name:0") ;; io) specs+=("$name:$qid") ;; *) specs+=("$name:$qid:$after") ;; esac
	done
	on_exit unload_transports
	on_exit "nvme disconnect -n $NQN"
	modprobe nvme_core && local old_timeout && old_timeout=$(cat $IO_TIMEOUT) || fail "no nvme_core io_timeout parameter"
	on_exit "echo $old_timeout >$IO_TIMEOUT"
	local flog=/tmp/nvmet-fake-$mode.log
	python3 "$(dirname "$0")/nvmet_fake.py" "$HOSTILE_PORT" --nqn "$NQN" --window "$WIN_MB:$((WIN_MB + 8))" \
		--cases "${specs[*]}" >"$flog" 2>&1 &
	local fake=$!
	on_exit "kill $fake"
	for i in $(seq 100); do grep -q listening "$flog" && break; sleep 0.1; done
	grep -q listening "$flog" || { sed 's/^/# fake: /' "$flog"; fail "the fake target did not start"; }
	unload_transports || fail "cannot unload the transports"
	modprobe rnvme_tcp $modopt || fail "could not load rnvme_tcp $modopt"
	local failed=() port ctrl dev frc secs start line bs size fio ok
	i=-1
	for c in "${cases[@]}"; do
		IFS='|' read -r name after opts expect pattern fakeline <<<"$c"
		i=$((i + 1)); port=$((HOSTILE_PORT + i))
		q=$qid; [ "$after" = admin ] && q=0
		pattern=${pattern//queue Q:/queue $q:}
		bs=64k size=512k; [ "$name" = r2t-unsolicited ] && bs=4k size=128k
		[ "$name" = stall-mid-pdu ] && echo 3 >$IO_TIMEOUT
		dmesg_mark
		start=$(date +%s)
		ok=1 ctrl= frc=
		# shellcheck disable=SC2086
		if [ "$expect" = refused ]; then
			if timeout 60 nvme connect -t tcp -a "$TRADDR" -s "$port" -n "$NQN" $qopts $opts >/dev/null 2>&1; then
				log "$mode $name: the connect succeeded"; ok=0
				nvme disconnect -n "$NQN" >/dev/null 2>&1
			fi
			ctrl_for_nqn >/dev/null && { log "$mode $name: a controller was left after the refused connect"; ok=0; }
		fi
		# shellcheck disable=SC2086
		if ! timeout 60 nvme connect -t tcp -a "$TRADDR" -s "$port" -n "$NQN" $qopts --reconnect-delay=1 \
			--ctrl-loss-tmo=10 $opts >/dev/null 2>&1; then
			log "$mode $name: connect failed"; ok=0
		elif ! ctrl=$(ctrl_for_nqn) || ! dev=$(ns_dev_of "$ctrl"); then
			log "$mode $name: no namespace"; ok=0
		else
			# shellcheck disable=SC2086
			timeout 90 fio --name="h-$name" --filename="$dev" --offset=${WIN_MB}M --size=$size --rw=randwrite \
				--bs=$bs $fioeng --iodepth=4 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
				--verify_state_save=0 >/tmp/fio-$name.log 2>&1
			frc=$?
		fi
		secs=$(($(date +%s) - start))
		[ -n "$ctrl" ] && timeout 60 nvme disconnect -n "$NQN" >/dev/null 2>&1
		echo "$old_timeout" >$IO_TIMEOUT
		case $frc in 0) fio=verified ;; 124) fio="hung (killed after 90 s)" ;; "") fio="not run" ;; *) fio="failed ($frc)" ;; esac
		line=
		[ -n "$pattern" ] && line=$(dmesg_since_mark | grep -m1 -e "$pattern")
		if ! grep -q "^fired $name .*port $port$" "$flog"; then
			log "$mode $name: the case did not fire; fio $fio"; ok=0
		elif [ -n "$pattern" ] && [ -z "$line" ]; then
			log "$mode $name: no '$pattern' in dmesg"; ok=0
		fi
		[ "$frc" = 124 ] && ok=0
		case $expect in verify | quiet | refused) [ "$frc" = 0 ] || { log "$mode $name: fio $fio, must verify"; ok=0; } ;; esac
		if [ "$expect" = quiet ]; then
			line=$(dmesg_since_mark | grep -m1 -e "queue [0-9]*: \|error recovery\|Reconnecting\|timeout") &&
				{ log "$mode $name: unexpected: ${line#*] }"; ok=0; }
		fi
		if [ -n "$fakeline" ]; then
			grep -q -e "$fakeline port $port$" "$flog" || { log "$mode $name: no '$fakeline' from the target"; ok=0; }
			line=$(grep -m1 -e "$fakeline port $port$" "$flog")
		fi
		ctrl_for_nqn >/dev/null && { log "$mode $name: a controller was left behind"; ok=0; nvme disconnect -n "$NQN" >/dev/null 2>&1; }
		if [ $ok = 1 ]; then
			log "$mode $name (${secs}s, fio $fio): ${line#*] }"
		else
			dmesg_since_mark | grep -v rnvme-test | sed 's/^/#   /'
			grep -E 'err=|fio:|verify' /tmp/fio-$name.log 2>/dev/null | sed 's/^/#   fio: /'
			grep "port $port$" "$flog" | sed 's/^/#   fake: /'
			failed+=("$name")
		fi
	done
	grep -v ' port [0-9]*$' "$flog" | grep -v '^listening$' | sed 's/^/# fake (stderr): /'
	run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload after the hostile cases ($mode)"
	[ ${#failed[@]} -eq 0 ] || fail "$mode: ${#failed[@]} of ${#cases[@]} cases failed: ${failed[*]}"
	log "$mode: all ${#cases[@]} cases passed"
}
