# The hostile-target cases during real I/O, shared by t41-hostile-io (recvmsg),
# t42-hostile-io-read-sock (read_sock=1) and t43-hostile-io-poll (a poll
# queue). Sourced after lib.sh; not a test
# itself (the runner plans t*.sh).
#
# One tests/vm/nvmet_fake.py process serves every case, case i on port
# $HOSTILE_PORT+i with subsystem $HNQN-i; each case misbehaves once. make
# check runs each case in one of the three modes (HOSTILE_FULL=1: every
# case in this mode). The cases run in batches ($HOSTILE_BATCH, default 6,
# 3 on poll queues): each gets its own controller (one I/O queue, and a poll queue in
# "poll" mode), one fio process verifies all of them, a job per controller
# (64k randwrite, QD 4, 256k; 4k for the in-capsule case, each job in its own
# window of the namespace that the kernel's partition scan does not read).
# Under TCG a case is mostly fixed costs (fio's start, a connect, the
# reconnect delay), which one batch pays once and overlaps. A case passes
# when the target says it fired, the kernel log since the batch began has
# its line on its own controller ("nvme nvmeN: queue Q: ...", Q the queue the
# case ran on), its fio job ended (verified, unless the case lets the I/O
# fail) and no controller is left. The icresp-* cases first connect alone
# (that connect must fail with the line), then join the batch. After the
# cases a connect to the real nvmet target in the same mode must pass fio
# verify (the host recovered), rnvme_tcp must unload, and kmemleak must find
# no unreferenced object from host nvme code allocated since the test began
# (the tests are "# needs: kmemleak").
# shellcheck shell=bash
command -v python3 >/dev/null || skip "python3 not installed"
HNQN=nqn.2026-11.io.rnvme:hostile
IO_TIMEOUT=/sys/module/nvme_core/parameters/io_timeout

# case;when;connect options;expect;kernel log line (after "nvme nvmeN: "; Q: the queue);the target's log line
#
# Both lines are extended regular expressions (grep -E, awk).
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
	"c2h-success-then-rsp;3;;line;queue Q: response for (unknown )?command id 0x;"
	"c2h-plen-huge;3;;line;queue Q: receive failed: pdu type 0x7: bad plen 4294967295;"
	"rsp-twice;3;;line;queue Q: response for (unknown )?command id 0x;"
	"rsp-short-read;3;;line;queue Q: cid 0x[0-9a-f]* short data-in: got [0-9]* of [0-9]*;"
	"rsp-stale-cid;3;;line;queue Q: response for (unknown )?command id 0x;"
	"rsp-unknown-flood;3;;line;queue Q: response for unknown command id 0x;"
	"rsp-hlen-short;3;;line;queue Q: receive failed: pdu type 0x5: bad hlen 23;"
	"rsp-slow;3;;quiet;;rsp-slow: cid 0x[0-9a-f]*: 24 bytes in [0-9.]*s"
	"unknown-type;3;;line;queue Q: receive failed: unexpected pdu type 0xee;"
	"icresp-second;3;;line;queue Q: receive failed: unexpected pdu type 0x1;"
	"term-req;3;;line;queue Q: receive failed: received C2HTermReq \(FES = Data Transfer Out Of Range;"
	"close-mid-payload;3;;line;queue Q: (receive failed: (connection closed by target|socket receive failed)|socket closed by the target);"
	"rst-mid-payload;3;;line;queue Q: (receive failed|socket closed);"
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
	"c2h-after-held-rsp;3;;line;queue Q: request 0x[0-9a-f]*: c2h data after its completion;c2h-after-held-rsp: cid 0x[0-9a-f]*: r2t, success response, c2h data"
)
HOSTILE_PORT=${HOSTILE_PORT:-4600}
# Case i's fio job writes 512 KiB at $WIN_MB MiB + i/2 MiB; the fake counts
# only commands from $WIN_MB MiB on, so the partition scan at connect never
# fires a case.
WIN_MB=8

# fabrics_connect PORT NQN OPTIONS: a connect written to /dev/nvme-fabrics
# (no nvme-cli: its start costs about a second under TCG); prints the
# controller's instance number. Case i connects to port $HOSTILE_PORT+i and
# subsystem $HNQN-i (a subsystem per case: controllers of one subsystem would
# need distinct cntlids and shared namespaces).
fabrics_connect() {
	local fd line rc=0
	exec {fd}<>/dev/nvme-fabrics || return 1
	echo "transport=tcp,traddr=$TRADDR,trsvcid=$1,nqn=$2,$3" >&"$fd" 2>/dev/null &&
		read -r line <&"$fd" || rc=1
	exec {fd}>&-
	[ $rc = 0 ] || return 1
	line=${line#instance=}; echo "${line%%,*}"
}

# The controllers of the cases' subsystems ($HNQN-*); deleting them.
hostile_ctrls() {
	local c
	for c in /sys/class/nvme/nvme*; do
		[ -e "$c/subsysnqn" ] && [[ $(cat "$c/subsysnqn") == "$HNQN"-* ]] && basename "$c"
	done
}
hostile_delete_all() {
	local c
	for c in $(hostile_ctrls); do echo 1 >"/sys/class/nvme/$c/delete_controller"; done
}

# The verdicts of a batch, in one awk run (a process start costs a good part
# of a second under TCG: no grep per case). Files: the case table (TAB
# separated: index, name, controller, expect, kernel line ERE, target line
# ERE, port, verdict so far), the batch's kernel log, the target's log, fio's
# terse output. Prints a "# ..." line per case (and, for a failed case, its
# controller's kernel lines and the target's lines for its port), then
# "failed: NAMES".
HOSTILE_VERDICT_AWK='
BEGIN { FS = "\t" }
FILENAME == ARGV[1] { n++; name[n] = $2; ctrl[n] = $3; expect[n] = $4; pat[n] = $5; fpat[n] = $6; port[n] = $7; v[n] = $8; next }
FILENAME == ARGV[2] { kl[++nk] = $0; next }
FILENAME == ARGV[3] { fl[++nf] = $0; next }
FILENAME == ARGV[4] { split($0, f, ";"); if (f[1] == "3") fioerr[f[3]] = f[5]; next }
function kfind(re,   j) { for (j = 1; j <= nk; j++) if (kl[j] ~ re) return kl[j]; return "" }
# The same up to the line where the test deletes controller c: a fake
# target may close its other connections once the host closed one, which
# the host logs on a queue it is still tearing down.
function kfind_live(re, c,   j) {
	for (j = 1; j <= nk; j++) {
		if (index(kl[j], "nvme " c ": Removing ctrl")) return ""
		if (kl[j] ~ re) return kl[j]
	}
	return ""
}
function ffind(re,   j) { for (j = 1; j <= nf; j++) if (fl[j] ~ re) return fl[j]; return "" }
END {
	failed = ""
	for (i = 1; i <= n; i++) {
		fio = "not run"
		if (frc == 124) { fio = "hung (killed)"; v[i] = v[i] "fio hung; " }
		else if (ctrl[i] != "") {
			e = (name[i] in fioerr) ? fioerr[name[i]] : ""
			fio = e == "0" ? "verified" : e == "" ? "no result" : "failed (error " e ")"
		}
		line = ""
		if (ffind("^fired " name[i] " .*port " port[i] "$") == "")
			v[i] = v[i] "the case did not fire; "
		else if (pat[i] != "" && ctrl[i] != "" && expect[i] != "refused") {
			line = kfind("nvme " ctrl[i] ": " pat[i])
			if (line == "") v[i] = v[i] "no \047" pat[i] "\047 in dmesg; "
		}
		if (expect[i] == "line") { if (fio == "no result") v[i] = v[i] "fio: no result; " }
		else if (fio != "verified") v[i] = v[i] "fio " fio ", must verify; "
		if (expect[i] == "quiet" && ctrl[i] != "") {
			u = kfind_live("nvme " ctrl[i] ": (.*queue [0-9]*: |.*error recovery|.*Reconnecting|.*timeout)", ctrl[i])
			if (u != "") v[i] = v[i] "unexpected: " u "; "
		}
		if (fpat[i] != "") {
			line = ffind(fpat[i] " port " port[i] "$")
			if (line == "") v[i] = v[i] "no \047" fpat[i] "\047 from the target; "
		}
		if (expect[i] == "refused") line = "refused at the first connect; this one good"
		sub(/^\[[ 0-9.]*\] /, "", line)
		c = ctrl[i] != "" ? ctrl[i] : "no controller"
		if (v[i] == "") { print "# " mode " " name[i] " (" c ", fio " fio "): " line; continue }
		print "# " mode " " name[i] " (" c ", fio " fio "): FAILED: " v[i]
		failed = failed " " name[i]
		for (j = 1; ctrl[i] != "" && j <= nk; j++) if (index(kl[j], "nvme " ctrl[i] ": ")) print "#   " kl[j]
		for (j = 1; j <= nf; j++) if (fl[j] ~ " port " port[i] "$") print "#   fake: " fl[j]
	}
	print "failed:" failed
}'

# hostile_recovered QOPTS FIOENG: after the cases, a connect to the real
# nvmet target ($NQN on $TRSVCID, set up by target_up) in the same mode
# (QOPTS, the module's receive mode) passes fio verify, and is rnvme_tcp's.
hostile_recovered() {
	local c ctrl dev
	c=$(fabrics_connect "$TRSVCID" "$NQN" "$1") || { log "the connect to nvmet failed"; return 1; }
	ctrl=nvme$c
	on_exit "echo 1 >/sys/class/nvme/$ctrl/delete_controller"
	assert_rust_ctrl "$ctrl" || return 1
	dev=$(ns_dev_of "$ctrl") || { log "no namespace on $ctrl"; return 1; }
	# shellcheck disable=SC2086
	run_fio --thread --name=recovered --filename="$dev" --rw=randwrite --bs=64k --size=512k $2 --iodepth=4 \
		--direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --disk_util=0 || { log "fio verify against nvmet failed"; return 1; }
	echo 1 >"/sys/class/nvme/$ctrl/delete_controller" || return 1
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
	# make check runs each case in one mode (case k in mode k mod 3: every
	# case in every mode at once was slower, not faster, see
	# Documentation/hostile-targets.md); HOSTILE_FULL=1 runs every case in
	# this mode, CASES="a b" those named.
	local cases=() c=() k=0 m
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
	# 12 or all 34 at once each connect cost more with every controller
	# there was (4 s instead of 1 under the debug kernel), the one Python
	# target answered keep-alives and the slow or stalled cases late (a
	# request timeout in rsp-slow, stall-mid-pdu's writes timing out before
	# it fired), and a batch took longer than two smaller ones.
	local n=${#cases[@]} batch=${HOSTILE_BATCH:-6}
	[ "$mode" = poll ] && batch=${HOSTILE_BATCH:-3}
	local name=() when=() opts=() expect=() pattern=() fakeline=() port=() ctrl=() verdict=() specs=() i q
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
	# The fake target first: its Python start (seconds under TCG) overlaps
	# the rest of the set-up.
	local flog=/tmp/nvmet-fake-$mode.log t0=$SECONDS
	python3 "$(dirname "$0")/nvmet_fake.py" "$HOSTILE_PORT" --nqn "$HNQN" --window "$WIN_MB:$((WIN_MB + n))" \
		--cases "${specs[*]}" >"$flog" 2>&1 &
	local fake=$!
	on_exit "kill $fake"
	kmemleak_begin || fail "kmemleak is not available (the test kernel has it; scripts/test-vm.sh boots it for '# needs: kmemleak')"
	modprobe nvme_core && local old_timeout && old_timeout=$(cat $IO_TIMEOUT) || fail "no nvme_core io_timeout parameter"
	on_exit "echo $old_timeout >$IO_TIMEOUT"
	RD_SIZE_KB=65536 target_up || fail "nvmet target set-up failed"
	unload_transports || fail "cannot unload the transports"
	modprobe rnvme_tcp $modopt || fail "could not load rnvme_tcp $modopt"
	for i in $(seq 600); do grep -q listening "$flog" && break; sleep 0.1; done
	grep -q listening "$flog" || { sed 's/^/# fake: /' "$flog"; fail "the fake target did not start"; }
	log "$mode: the fake target serves $n cases (ports $HOSTILE_PORT-$((HOSTILE_PORT + n - 1))), set-up done in $((SECONDS - t0))s"

	# The icresp-* cases' first connect, one at a time: it must fail with the line.
	local line
	for ((i = 0; i < n; i++)); do
		[ "${expect[i]}" = refused ] || continue
		dmesg_mark
		if fabrics_connect "${port[i]}" "$HNQN-$i" "$qopts${opts[i]:+,${opts[i]}}" >/dev/null; then
			verdict[i]+="the connect succeeded; "
			hostile_delete_all
		fi
		line=$(dmesg_since_mark | grep -m1 -E -e "nvme nvme[0-9]*: ${pattern[i]}") || verdict[i]+="no '${pattern[i]}' in dmesg; "
		[ -n "$(hostile_ctrls)" ] && verdict[i]+="a controller was left after the refused connect; "
		[ -z "${verdict[i]}" ] && log "$mode ${name[i]}: connect refused: ${line#*] }"
	done
	log "$mode: refused connects done at $((SECONDS - t0))s"

	local b0 b1 start frc fjobs job tmark order pids dev out klog=/tmp/hostile-klog-$mode.txt failed=()
	local fiolog=/tmp/fio-hostile-$mode.log table=/tmp/hostile-cases-$mode.tsv
	for ((b0 = 0; b0 < n; b0 += batch)); do
		b1=$((b0 + batch < n ? b0 + batch : n))
		dmesg_mark
		tmark=$_mark
		start=$SECONDS
		# Connect every case of the batch; stall-mid-pdu last, the only one
		# with a 3 s I/O timeout (nvme_core takes it when the tag set is made).
		order=()
		for ((i = b0; i < b1; i++)); do [ "${name[i]}" = stall-mid-pdu ] || order+=("$i"); done
		for ((i = b0; i < b1; i++)); do [ "${name[i]}" != stall-mid-pdu ] || order+=("$i"); done
		for i in "${order[@]}"; do
			[ "${name[i]}" = stall-mid-pdu ] && echo 3 >$IO_TIMEOUT
			# keep_alive_tmo=30: with every case at once the one Python
			# process may answer a keep-alive late.
			c=$(fabrics_connect "${port[i]}" "$HNQN-$i" \
				"$qopts,reconnect_delay=1,ctrl_loss_tmo=10,keep_alive_tmo=30${opts[i]:+,${opts[i]}}") &&
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
		log "batch $((b0 / batch + 1)): $((${#fjobs[@]} / 5)) controllers connected in $((SECONDS - start))s"
		frc=
		: >"$fiolog"
		if [ ${#fjobs[@]} -gt 0 ]; then
			if [ "${HOSTILE_DEBUG:-0}" = 1 ]; then
				( while sleep 15; do top -b -n1 -H 2>/dev/null | head -25 | sed 's/^/# top: /'; grep -c . "$flog" | sed 's/^/# fake log lines: /'; done ) &
				on_exit "kill $!"
			fi
			# nice: the spinning poll-queue jobs must not starve the target.
			# shellcheck disable=SC2086
			timeout 150 nice -n 10 fio --thread --rw=randwrite $fioeng --iodepth=4 --direct=1 --verify=crc32c --do_verify=1 \
				--verify_fatal=1 --verify_state_save=0 --disk_util=0 --output-format=terse --terse-version=3 "${fjobs[@]}" \
				>"$fiolog" 2>&1
			frc=$?
		fi
		log "batch $((b0 / batch + 1)): fio status ${frc:-not run}, $((SECONDS - start))s to the end of fio"
		# Delete the batch's controllers, all at once (and wait: a
		# controller connected meanwhile could take a deleted one's name).
		pids=()
		for ((i = b0; i < b1; i++)); do
			[ -n "${ctrl[i]}" ] || continue
			echo 1 >"/sys/class/nvme/${ctrl[i]}/delete_controller" &
			pids+=($!)
		done
		[ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"
		if [ "$b1" = "$n" ]; then
			if hostile_recovered "$qopts" "$fioeng"; then
				log "$mode: recovery check (nvmet, fio verify) passed at $((SECONDS - t0))s"
			else
				failed+=("recovery"); log "$mode: recovery check (nvmet, fio verify) FAILED"
			fi
		fi
		_mark=$tmark
		dmesg_since_mark >"$klog"
		: >"$table"
		for ((i = b0; i < b1; i++)); do
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "${name[i]}" "${ctrl[i]}" "${expect[i]}" "${pattern[i]}" \
				"${fakeline[i]}" "${port[i]}" "${verdict[i]}" >>"$table"
		done
		out=$(awk -v mode="$mode" -v frc="$frc" "$HOSTILE_VERDICT_AWK" "$table" "$klog" "$flog" "$fiolog")
		grep -v '^failed:' <<<"$out"
		line=$(grep '^failed:' <<<"$out") || line="failed: (no verdict from awk)"
		read -r -a c <<<"${line#failed:}"
		failed+=("${c[@]}")
		[ "$frc" = 0 ] || grep -v '^3;' "$fiolog" | sed 's/^/#   fio: /'
		c=$(hostile_ctrls)
		[ -z "$c" ] || { hostile_delete_all; fail "$mode: controllers left behind after batch $((b0 / batch + 1)): $c"; }
	done
	grep -v ' port [0-9]*$' "$flog" | grep -v '^listening$' | sed 's/^/# fake (stderr): /'
	# rmmod, not modprobe -r: nvme_core and nvme_fabrics stay, so their
	# frames keep their names in kmemleak's report.
	run rmmod rnvme_tcp || fail "rnvme_tcp does not unload after the hostile cases ($mode)"
	local names=()
	for ((i = 0; i < n; i++)); do names+=("${name[i]}"); done
	kmemleak_check "after the $mode cases" || failed+=("kmemleak (a leak after the $mode cases: ${names[*]})")
	[ ${#failed[@]} -eq 0 ] || fail "$mode: ${#failed[@]} of $n cases (and checks) failed: ${failed[*]}"
	log "$mode: all $n cases passed, nvmet fio verify after them passed, no leak"
}
