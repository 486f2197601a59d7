# The hostile-target cases during real I/O, shared by t41-hostile-io (recvmsg),
# t42-hostile-io-read-sock (read_sock=1) and t43-hostile-io-poll (a poll
# queue). Sourced after lib.sh; not a test itself (the runner plans t*.sh).
#
# One tests/vm/nvmet_fake.py process serves every case of the file, case i on
# port $HOSTILE_PORT+i; each case misbehaves once. The cases run in batches
# ($HOSTILE_BATCH cases, default 6, 3 in poll mode): each case of a batch gets its own
# controller (one I/O queue, and a poll queue in "poll" mode), one fio
# process verifies all of them at once, a job per controller (64k randwrite,
# QD 4, 256k; 4k for the in-capsule case, each job in its own window of the
# namespace that the kernel's partition scan does not read), then every
# controller is deleted. A batch shares fio's start (seconds under TCG) and
# overlaps the reconnect delays. A case passes when the target says it fired, the kernel log
# since the batch began has its line on its own controller ("nvme nvmeN:
# queue Q: ...", Q the queue the case ran on), its fio job ended (verified,
# unless the case lets the I/O fail) and no controller is left. The
# icresp-* cases first connect alone (that connect must fail with the line),
# then join a batch. After the cases, rnvme_tcp must unload.
# shellcheck shell=bash
command -v python3 >/dev/null || skip "python3 not installed"
NQN=nqn.2026-11.io.rnvme:hostile
IO_TIMEOUT=/sys/module/nvme_core/parameters/io_timeout

# case;when;connect options;expect;kernel log line (after "nvme nvmeN: "; Q: the queue);the target's log line
#
# when: the case fires at that command of its kind (reads, R2T writes,
# in-capsule writes) inside its window; for icresp-* the queue whose connect
# it spoils: "io" (the mode's I/O queue) or "admin".
# expect: "line" (the line; the fio job ends, verified or with an I/O error),
# "verify" (the line and fio verify passes), "quiet" (no error line and no
# error recovery at all on that controller, fio verify passes), "refused"
# (a first connect fails with the line; the case's controller in the batch,
# the target good again, passes fio verify).
HOSTILE_CASES=(
	"c2h-beyond;3;;line;queue Q: request 0x[0-9a-f]*: c2h data offset 0 length [0-9]*, expected offset 0 of;"
	"c2h-gap;3;;line;queue Q: request 0x[0-9a-f]*: c2h data offset [0-9]* length [0-9]*, expected offset [0-9]* of;"
	"c2h-overlap;3;;line;queue Q: request 0x[0-9a-f]*: c2h data offset [0-9]* length [0-9]*, expected offset [0-9]* of;"
	"c2h-ddgst-bad;3;data_digest;line;queue Q: data digest error, cid 0x;"
	"c2h-hdgst-bad;3;hdr_digest;line;queue Q: receive failed: header digest error: recv 0x;"
	"c2h-pad;3;;line;queue Q: receive failed: pdu type 0x7: bad pdo 28;"
	"c2h-zero-len;3;;line;queue Q: .*c2h data pdu with zero data length;"
	"c2h-success-then-rsp;3;;line;queue Q: response for \(unknown \)\?command id 0x;"
	"c2h-plen-huge;3;;line;queue Q: receive failed: pdu type 0x7: bad plen 4294967295;"
	"rsp-twice;3;;line;queue Q: response for \(unknown \)\?command id 0x;"
	"rsp-short-read;3;;line;queue Q: cid 0x[0-9a-f]* short data-in: got [0-9]* of [0-9]*;"
	"rsp-stale-cid;3;;line;queue Q: response for \(unknown \)\?command id 0x;"
	"rsp-unknown-flood;3;;line;queue Q: response for unknown command id 0x;"
	"rsp-hlen-short;3;;line;queue Q: receive failed: pdu type 0x5: bad hlen 23;"
	"rsp-slow;3;;quiet;;rsp-slow: cid 0x[0-9a-f]*: 24 bytes in [0-9.]*s"
	"unknown-type;3;;line;queue Q: receive failed: unexpected pdu type 0xee;"
	"icresp-second;3;;line;queue Q: receive failed: unexpected pdu type 0x1;"
	"term-req;3;;line;queue Q: receive failed: received C2HTermReq (FES = Data Transfer Out Of Range;"
	"close-mid-payload;3;;line;queue Q: \(receive failed: \(connection closed by target\|socket receive failed\)\|socket closed by the target\);"
	"rst-mid-payload;3;;line;queue Q: \(receive failed\|socket closed\);"
	"stall-mid-pdu;3;;line;queue Q: request timeout;"
	"r2t-unknown-cid;3;;line;queue Q: r2t for unknown command id 0x;"
	"r2t-for-read;3;;line;queue Q: request 0x[0-9a-f]*: r2t but no data is due;"
	"r2t-beyond;3;;line;queue Q: request 0x[0-9a-f]*: r2t offset 0 length [0-9]*, 0 of [0-9]* sent;"
	"r2t-dup;3;;line;queue Q: request 0x[0-9a-f]*: r2t while the previous one is outstanding;"
	"r2t-unsolicited;3;;line;queue Q: request 0x[0-9a-f]*: r2t but no data is due;"
	"r2t-over-maxh2cdata;3;;quiet;;r2t-over-maxh2cdata: cid 0x[0-9a-f]*: 65536 bytes in 4 H2CData of at most 16384, stored"
	"rsp-before-h2c;3;;verify;queue Q: response for command id 0x[0-9a-f]* before its data was sent: status 0x8;"
	"icresp-cpda;admin;;refused;rnvme_tcp: queue Q: icresp: unsupported cpda 1;"
	"icresp-hdgst-flip;io;;refused;rnvme_tcp: queue Q: icresp: digests requested 0x0, returned 0x1;"
	"icresp-ddgst-flip;io;hdr_digest,data_digest;refused;rnvme_tcp: queue Q: icresp: digests requested 0x3, returned 0x1;"
	"r2t-gap;3;;line;queue Q: request 0x[0-9a-f]*: r2t offset 512 length [0-9]*, 0 of [0-9]* sent;"
	"rsp-after-partial-r2t;3;;verify;queue Q: success for command id 0x[0-9a-f]* before all its data was asked for: status 0x;rsp-after-partial-r2t: cid 0x[0-9a-f]*: success after [0-9]* of [0-9]* bytes"
)
HOSTILE_PORT=${HOSTILE_PORT:-4600}
# Case i's fio job writes 512 KiB at $WIN_MB MiB + i/2 MiB; the fake counts
# only commands from $WIN_MB MiB on, so the partition scan at connect never
# fires a case.
WIN_MB=8

# fabrics_connect I OPTIONS: case I's connect, to port $HOSTILE_PORT+I and
# subsystem $NQN-I (a subsystem per case: controllers of one subsystem would
# need distinct cntlids and shared namespaces), written to /dev/nvme-fabrics
# (no nvme-cli: its start costs about a second under TCG); prints the
# controller's instance number.
fabrics_connect() {
	local fd line rc=0
	exec {fd}<>/dev/nvme-fabrics || return 1
	echo "transport=tcp,traddr=$TRADDR,trsvcid=$((HOSTILE_PORT + $1)),nqn=$NQN-$1,$2" >&"$fd" 2>/dev/null &&
		read -r line <&"$fd" || rc=1
	exec {fd}>&-
	[ $rc = 0 ] || return 1
	line=${line#instance=}; echo "${line%%,*}"
}

# The controllers of the cases' subsystems ($NQN-*); deleting them.
hostile_ctrls() {
	local c
	for c in /sys/class/nvme/nvme*; do
		[ -e "$c/subsysnqn" ] && [[ $(cat "$c/subsysnqn") == "$NQN"-* ]] && basename "$c"
	done
}
hostile_delete_all() {
	local c
	for c in $(hostile_ctrls); do echo 1 >"/sys/class/nvme/$c/delete_controller"; done
}

# hostile_run MODE: every case (or those in $CASES) in MODE: recvmsg,
# read_sock (rnvme_tcp read_sock=1) or poll (I/O through a poll queue:
# nr_poll_queues=1, fio io_uring --hipri).
hostile_run() {
	local mode=$1 qid=1 qopts="nr_io_queues=1" fioeng="--ioengine=libaio" modopt=
	case $mode in
	read_sock) modopt=read_sock=1 ;;
	poll) qid=2; qopts="nr_io_queues=1,nr_poll_queues=1"; fioeng="--ioengine=io_uring --hipri=1" ;;
	esac
	# make check runs each case in one mode (case i in mode i mod 3: the
	# three files together cost what one mode of every case would);
	# HOSTILE_FULL=1 runs every case in this mode, CASES="a b" those named.
	local cases=() k=0 m
	case $mode in recvmsg) m=0 ;; read_sock) m=1 ;; *) m=2 ;; esac
	for c in "${HOSTILE_CASES[@]}"; do
		if [ -n "${CASES:-}" ]; then
			[[ " $CASES " == *" ${c%%;*} "* ]] && cases+=("$c")
		elif [ "${HOSTILE_FULL:-0}" = 1 ] || [ $((k % 3)) = $m ]; then
			cases+=("$c")
		fi
		k=$((k + 1))
	done
	[ ${#cases[@]} -gt 0 ] || fail "no case selected"
	# Batches of 6 controllers (3 on poll queues, whose fio jobs spin): with
	# all 31 at once the fake target (one Python process) answered too late
	# and keep-alives timed out.
	local n=${#cases[@]} batch=${HOSTILE_BATCH:-6}
	[ "$mode" = poll ] && batch=${HOSTILE_BATCH:-3}
	local name=() when=() opts=() expect=() pattern=() fakeline=() port=() ctrl=() verdict=() specs=() c i q
	for ((i = 0; i < n; i++)); do
		IFS=';' read -r "name[$i]" "when[$i]" "opts[$i]" "expect[$i]" "pattern[$i]" "fakeline[$i]" <<<"${cases[i]}"
		port[i]=$((HOSTILE_PORT + i))
		q=$qid; [ "${when[i]}" = admin ] && q=0
		pattern[i]=${pattern[i]//queue Q:/queue $q:}
		case ${when[i]} in admin) specs+=("${name[i]}:0") ;; io) specs+=("${name[i]}:$qid") ;; *) specs+=("${name[i]}:$qid:${when[i]}") ;; esac
		verdict[i]=
	done
	on_exit unload_transports
	on_exit hostile_delete_all
	modprobe nvme_core && local old_timeout && old_timeout=$(cat $IO_TIMEOUT) || fail "no nvme_core io_timeout parameter"
	on_exit "echo $old_timeout >$IO_TIMEOUT"
	local flog=/tmp/nvmet-fake-$mode.log
	python3 "$(dirname "$0")/nvmet_fake.py" "$HOSTILE_PORT" --nqn "$NQN" --window "$WIN_MB:$((WIN_MB + n))" \
		--cases "${specs[*]}" >"$flog" 2>&1 &
	local fake=$! t0=$SECONDS
	on_exit "kill $fake"
	for i in $(seq 600); do grep -q listening "$flog" && break; sleep 0.1; done
	grep -q listening "$flog" || { sed 's/^/# fake: /' "$flog"; fail "the fake target did not start"; }
	log "$mode: the fake target serves $n cases (ports $HOSTILE_PORT-$((HOSTILE_PORT + n - 1))), up in $((SECONDS - t0))s"
	unload_transports || fail "cannot unload the transports"
	modprobe rnvme_tcp $modopt || fail "could not load rnvme_tcp $modopt"

	# The icresp-* cases' first connect, one at a time: it must fail with the line.
	local line
	for ((i = 0; i < n; i++)); do
		[ "${expect[i]}" = refused ] || continue
		dmesg_mark
		if fabrics_connect "$i" "$qopts${opts[i]:+,${opts[i]}}" >/dev/null; then
			verdict[i]+="the connect succeeded; "
			hostile_delete_all
		fi
		line=$(dmesg_since_mark | grep -m1 -e "nvme nvme[0-9]*: ${pattern[i]}") || verdict[i]+="no '${pattern[i]}' in dmesg; "
		[ -n "$(hostile_ctrls)" ] && verdict[i]+="a controller was left after the refused connect; "
		[ -z "${verdict[i]}" ] && log "$mode ${name[i]}: connect refused: ${line#*] }"
	done

	log "$mode: refused connects done at $((SECONDS - t0))s"
	local b0 b1 start secs frc fjobs job tmark order pids dev
	for ((b0 = 0; b0 < n; b0 += batch)); do
		b1=$((b0 + batch < n ? b0 + batch : n))
		dmesg_mark
		tmark=$_mark
		start=$(date +%s)
		# Connect every case of the batch; stall-mid-pdu last, the only one with a 3 s I/O timeout.
		order=()
		for ((i = b0; i < b1; i++)); do [ "${name[i]}" = stall-mid-pdu ] || order+=("$i"); done
		for ((i = b0; i < b1; i++)); do [ "${name[i]}" != stall-mid-pdu ] || order+=("$i"); done
		for i in "${order[@]}"; do
			[ "${name[i]}" = stall-mid-pdu ] && echo 3 >$IO_TIMEOUT
			c=$(fabrics_connect "$i" "$qopts,reconnect_delay=1,ctrl_loss_tmo=10${opts[i]:+,${opts[i]}}") &&
				ctrl[i]=nvme$c || { ctrl[i]=; verdict[i]+="connect failed; "; }
			echo "$old_timeout" >$IO_TIMEOUT
		done
		fjobs=()
		for ((i = b0; i < b1; i++)); do
			[ -n "${ctrl[i]}" ] || continue
			if ! dev=$(ns_dev_of "${ctrl[i]}"); then verdict[i]+="no namespace; "; continue; fi
			job=(--name="${name[i]}" --filename="$dev" --offset=$((WIN_MB * 1024 + i * 512))k --bs=64k --size=256k)
			[ "${name[i]}" = r2t-unsolicited ] && job=(--name="${name[i]}" --filename="$dev" --offset=$((WIN_MB * 1024 + i * 512))k --bs=4k --size=128k)
			fjobs+=("${job[@]}")
		done
		log "batch $((b0 / batch + 1)): $((${#fjobs[@]} / 5)) controllers connected in $(($(date +%s) - start))s"
		frc=
		if [ ${#fjobs[@]} -gt 0 ]; then
			# shellcheck disable=SC2086
			timeout 120 fio --thread --rw=randwrite $fioeng --iodepth=4 --direct=1 --verify=crc32c --do_verify=1 \
				--verify_fatal=1 --verify_state_save=0 --output-format=terse --terse-version=3 "${fjobs[@]}" \
				>/tmp/fio-hostile.log 2>&1
			frc=$?
		fi
		secs=$(($(date +%s) - start))
		# Delete the batch's controllers, all at once.
		pids=()
		for ((i = b0; i < b1; i++)); do
			[ -n "${ctrl[i]}" ] || continue
			echo 1 >"/sys/class/nvme/${ctrl[i]}/delete_controller" &
			pids+=($!)
		done
		[ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"
		log "batch $((b0 / batch + 1)): fio status ${frc:-not run}, ${secs}s to the end of fio, $(($(date +%s) - start))s with the deletes"
		_mark=$tmark
		for ((i = b0; i < b1; i++)); do
			local fio="not run" err
			if [ "$frc" = 124 ]; then
				fio="hung (killed after 120 s)"; verdict[i]+="fio hung; "
			elif [ -n "${ctrl[i]}" ]; then
				err=$(awk -F';' -v j="${name[i]}" '$3 == j { print $5 }' /tmp/fio-hostile.log)
				case $err in 0) fio=verified ;; "") fio="no result" ;; *) fio="failed (error $err)" ;; esac
			fi
			line=
			if ! grep -q "^fired ${name[i]} .*port ${port[i]}$" "$flog"; then
				verdict[i]+="the case did not fire; "
			elif [ -n "${pattern[i]}" ] && [ -n "${ctrl[i]}" ] && [ "${expect[i]}" != refused ]; then
				line=$(dmesg_since_mark | grep -m1 -e "nvme ${ctrl[i]}: ${pattern[i]}") ||
					verdict[i]+="no '${pattern[i]}' in dmesg; "
			fi
			case ${expect[i]} in
			line) [ "$fio" = "no result" ] && verdict[i]+="fio: no result; " ;;
			*) [ "$fio" = verified ] || verdict[i]+="fio $fio, must verify; " ;;
			esac
			if [ "${expect[i]}" = quiet ] && [ -n "${ctrl[i]}" ]; then
				line=$(dmesg_since_mark | grep "nvme ${ctrl[i]}: " | grep -m1 -e "queue [0-9]*: \|error recovery\|Reconnecting\|timeout") &&
					verdict[i]+="unexpected: ${line#*] }; "
			fi
			if [ -n "${fakeline[i]}" ]; then
				line=$(grep -m1 -e "${fakeline[i]} port ${port[i]}$" "$flog") || verdict[i]+="no '${fakeline[i]}' from the target; "
			fi
			[ "${expect[i]}" = refused ] && line="refused at the first connect; this one good"
			if [ -z "${verdict[i]}" ]; then
				log "$mode ${name[i]} (${ctrl[i]}, fio $fio): ${line#*] }"
			else
				log "$mode ${name[i]} (${ctrl[i]:-no controller}, fio $fio): FAILED: ${verdict[i]}"
				[ -n "${ctrl[i]}" ] && dmesg_since_mark | grep "nvme ${ctrl[i]}: " | sed 's/^/#   /'
				grep "port ${port[i]}$" "$flog" | sed 's/^/#   fake: /'
			fi
		done
		[ "$frc" = 0 ] || grep -v '^3;' /tmp/fio-hostile.log | sed 's/^/#   fio: /'
		c=$(hostile_ctrls)
		[ -z "$c" ] || { hostile_delete_all; fail "$mode: controllers left behind after batch $((b0 / batch + 1)): $c"; }
	done
	grep -v ' port [0-9]*$' "$flog" | grep -v '^listening$' | sed 's/^/# fake (stderr): /'
	run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload after the hostile cases ($mode)"
	local failed=()
	for ((i = 0; i < n; i++)); do [ -z "${verdict[i]}" ] || failed+=("${name[i]}"); done
	[ ${#failed[@]} -eq 0 ] || fail "$mode: ${#failed[@]} of $n cases failed: ${failed[*]}"
	log "$mode: all $n cases passed"
}
