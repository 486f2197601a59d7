#!/bin/bash
# Faults, soaked. Five phases, each repeated SOAK_* times (make check runs
# the small defaults below; `make soak` runs the long counts, see
# scripts/soak.sh):
#   connect  connect, one verified read/write, disconnect (SOAK_CONNECTS)
#   insmod   insmod + rmmod of rnvme_tcp (SOAK_INSMODS); kmemleak then finds
#            no unreferenced object from host nvme code or the module loader
#   flap     the target port is removed and re-added under a verified write
#            job (SOAK_FLAPS)
#   reset    nvme reset under a verified write job (SOAK_RESETS)
#   netem    loss, delay, reordering, duplication on lo (tc netem), each for
#            SOAK_NETEM_SECS seconds of fio randwrite with verify_backlog
#            (one fio process, a job per mode, each job installing its
#            qdisc); each mode must show in what it moves: the TCP counter,
#            or for delay the job's least completion latency
# flap, reset and netem share one controller. Every write fio saw
# acknowledged across a flap or a reset reads back at the end (one fio
# --verify_only run over every region written, on a controller connected
# anew if a phase unloaded the module meanwhile).
# It ends with one line of counts per phase ("soak: ...").
# needs: kmemleak
. "$(dirname "$0")/lib.sh"
FLAPS=${SOAK_FLAPS:-1}
CONNECTS=${SOAK_CONNECTS:-3}
INSMODS=${SOAK_INSMODS:-2}
RESETS=${SOAK_RESETS:-1}
NETEM_SECS=${SOAK_NETEM_SECS:-2}
PHASES=${SOAK_PHASES:-connect insmod flap reset netem}
# 1 MiB regions: flaps at 1..190 MiB, resets at 201..390 MiB, netem at
# 400..416 MiB of the 512 MiB disk.
[ "$FLAPS" -le 190 ] && [ "$RESETS" -le 190 ] || fail "at most 190 flaps and 190 resets (one 1 MiB region each)"
log "counts: flaps=$FLAPS connects=$CONNECTS insmods=$INSMODS resets=$RESETS netem=${NETEM_SECS}s per mode; phases: $PHASES"
target_up || fail "target set-up failed"
on_exit unload_transports
on_exit tc qdisc del dev lo root
summary=()
t0=$(date +%s)
phase_done() { summary+=("soak: $1 ($(( $(date +%s) - pstart ))s)"); log "${summary[-1]}"; }

# kmemleak (lib.sh: objects allocated since kmemleak_begin), counting as
# ours the frames of host nvme code and of the module loader (after rmmod,
# rnvme_tcp's own frames lose their names, but its allocations are reached
# from do_init_module or nvmf_dev_write).
KL_RE='\\[(rnvme_tcp|nvme_core|nvme_fabrics)\\]|nvmf_dev_write|do_init_module|load_module|free_module|delete_module'
leaks_reset() { kmemleak_begin || fail "kmemleak is not available"; }
leaks_check() { kmemleak_check "after $1" "$KL_RE" || fail "leak after $1"; }

port_down() { rm -f "$NVMET/ports/1/subsystems/$NQN" && rmdir "$NVMET/ports/1"; }
port_up() {
	mkdir "$NVMET/ports/1" || return 1
	echo ipv4 >"$NVMET/ports/1/addr_adrfam"; echo tcp >"$NVMET/ports/1/addr_trtype"
	echo "$TRADDR" >"$NVMET/ports/1/addr_traddr"; echo "$TRSVCID" >"$NVMET/ports/1/addr_trsvcid"
	ln -s "$NVMET/subsystems/$NQN" "$NVMET/ports/1/subsystems/$NQN"
}
count_since_mark() { dmesg_since_mark | grep -c "$1"; }
wait_count() {	# wait_count PATTERN N SECS: the pattern shows N times since the mark
	local i
	for i in $(seq $(( $3 * 5 ))); do [ "$(count_since_mark "$1")" -ge "$2" ] && return 0; sleep 0.2; done
	return 1
}
# A region of the disk per write job: offset, size, seed; the same options
# write it and later verify it.
REG=1M
region() {	# region NAME INDEX [fio options...]
	local name=$1 i=$2; shift 2
	echo --name="$name-$i" --filename="$dev" --offset=$((i * 1024 * 1024)) --size=$REG --rw=randwrite --bs=4k \
		--ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --randseed=$((i + 1)) "$@"
}
# bg_write NAME INDEX: starts the region's write (rate-limited: it lasts
# about 4 s) in the background; bg_wait waits for it and fails on an error.
bg_write() {
	# shellcheck disable=SC2046
	fio --verify_state_save=0 $(region "$1" "$2" --do_verify=0 --rate=256k) >/tmp/soak-fio.txt 2>&1 &
	fio_pid=$!
	# Until its first write completed (field 5 of stat: writes done).
	local w0; w0=$(awk '{ print $5 }' "/sys/block/${dev#/dev/}/stat")
	for _ in $(seq 100); do [ "$(awk '{ print $5 }' "/sys/block/${dev#/dev/}/stat")" -gt "$w0" ] && break; sleep 0.1; done
}
bg_wait() {
	local rc
	wait "$fio_pid"; rc=$?
	[ $rc -eq 0 ] && grep -q 'err= 0' /tmp/soak-fio.txt && return 0
	sed 's/^/#   /' /tmp/soak-fio.txt
	return 1
}
now() { echo $(( $(date +%s%N) / 1000000 )); }
connect_soak() { rust_connect --reconnect-delay=1 --ctrl-loss-tmo=-1 "$@"; }
# The controller flap, reset and netem share (connected on first use; the
# connect and insmod phases unload the module and so forget it).
ctrl="" dev=""
ensure_ctrl() {
	[ -n "$ctrl" ] && [ -e "/sys/class/nvme/$ctrl" ] && return 0
	ctrl=$(connect_soak) || fail "connect failed"
	assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
	dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
}
# Regions written across faults, verified together at the end: "NAME FIRST LAST".
pending=()

for phase in $PHASES; do
	pstart=$(date +%s)
	case $phase in
	flap)
		ensure_ctrl
		dmesg_mark
		for i in $(seq "$FLAPS"); do
			ts=$(now)
			bg_write flap "$i"
			kill -0 "$fio_pid" 2>/dev/null || fail "flap $i: the write job ended before the port went away"
			t1=$(now)
			port_down || fail "flap $i: cannot remove the port"
			t2=$(now)
			nfail=$(count_since_mark "nvme $ctrl: Failed reconnect attempt")
			wait_count "nvme $ctrl: Failed reconnect attempt" $((nfail + 1)) 30 || fail "flap $i: no failed reconnect while the port was down"
			t3=$(now)
			port_up || fail "flap $i: cannot re-add the port"
			wait_count "nvme $ctrl: Successfully reconnected" "$i" 30 || fail "flap $i: no reconnect after the port came back"
			t4=$(now)
			bg_wait || fail "flap $i: the write job across the outage failed"
			[ "$i" -le 3 ] || [ $((i % 10)) = 0 ] &&
				log "flap $i: fio started in $((t1 - ts)) ms, port removed in $((t2 - t1)) ms, failed reconnect after $((t3 - t2)) ms, reconnected after $((t4 - t3)) ms, fio done after $(( $(now) - t4 )) ms"
		done
		assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp after the flaps"
		n=$(count_since_mark "nvme $ctrl: Successfully reconnected")
		[ "$n" -eq "$FLAPS" ] || fail "$n reconnects for $FLAPS port flaps"
		pending+=("flap 1 $FLAPS")
		phase_done "port removed and re-added $FLAPS times under fio, $n reconnects, ${FLAPS}x$REG written (verified at the end)"
		;;
	connect)
		unload_transports || fail "cannot unload the transports"
		ctrl=""
		leaks_reset; leaks_armed=1
		dmesg_mark
		use_rust_driver || fail "cannot load rnvme_tcp"
		hostnqn=$(cat /etc/nvme/hostnqn) hostid=$(cat /etc/nvme/hostid 2>/dev/null)
		for i in $(seq "$CONNECTS"); do
			# Straight to /dev/nvme-fabrics (what nvme connect does, less
			# nvme-cli's sysfs scans): the reply names the controller.
			exec 3<>/dev/nvme-fabrics
			echo "transport=tcp,traddr=$TRADDR,trsvcid=$TRSVCID,nqn=$NQN,hostnqn=$hostnqn${hostid:+,hostid=$hostid}" >&3 || fail "connect $i failed"
			read -r reply <&3; exec 3>&-
			[[ $reply =~ instance=([0-9]+) ]] || fail "connect $i: no instance in the reply '$reply'"
			c=nvme${BASH_REMATCH[1]}
			grep -q "^$c qid 0 " /sys/kernel/debug/rnvme_tcp/queues || fail "connect $i: $c is not in rnvme_tcp's debugfs"
			d=$(ns_dev_of "$c") || fail "connect $i: no namespace block device"
			# One block written and read back with a pattern of this round.
			pat=$(printf '%08x' $((i * 2654435761 % 4294967296)))
			yes "$pat" | head -c 4096 >/tmp/blk
			dd if=/tmp/blk of="$d" bs=4k seek=$((200 + i % 64)) count=1 oflag=direct status=none || fail "connect $i: write failed"
			dd if="$d" of=/tmp/blk.back bs=4k skip=$((200 + i % 64)) count=1 iflag=direct status=none || fail "connect $i: read failed"
			cmp -s /tmp/blk /tmp/blk.back || fail "connect $i: the block read back differs"
			echo 1 >/sys/class/nvme/"$c"/delete_controller || fail "disconnect $i failed"
			ctrl_for_nqn >/dev/null && fail "disconnect $i: a controller for $NQN remains"
		done
		n=$(count_since_mark "new ctrl: NQN \"$NQN\".*(rnvme_tcp,")
		[ "$n" -eq "$CONNECTS" ] || fail "$n rnvme_tcp controllers created for $CONNECTS connects"
		# One kmemleak window for this phase and the insmod phase after it.
		if [[ " $PHASES " == *" connect insmod "* ]]; then
			phase_done "connect/disconnect $CONNECTS times, a 4k block verified each time (kmemleak: after insmod)"
		else
			leaks_check "$CONNECTS connect/disconnect"
			leaks_armed=0
			phase_done "connect/disconnect $CONNECTS times, a 4k block verified each time, kmemleak clean"
		fi
		;;
	insmod)
		unload_transports || fail "cannot unload the transports"
		ctrl=""
		modprobe nvme_fabrics || fail "cannot load nvme_fabrics"
		ko=$(modinfo -n rnvme_tcp) || fail "no rnvme_tcp.ko"
		[ "${leaks_armed:-0}" = 1 ] || leaks_reset
		for i in $(seq "$INSMODS"); do
			insmod "$ko" || fail "insmod $i failed"
			[ -e /sys/kernel/debug/rnvme_tcp/queues ] || fail "insmod $i: no rnvme_tcp debugfs"
			rmmod rnvme_tcp || fail "rmmod $i failed"
			mod_loaded rnvme_tcp && fail "rmmod $i: rnvme_tcp still loaded"
		done
		leaks_check "$([ "${leaks_armed:-0}" = 1 ] && echo "$CONNECTS connect/disconnect and ")$INSMODS insmod/rmmod"
		leaks_armed=0
		phase_done "insmod/rmmod $INSMODS times, kmemleak clean"
		;;
	reset)
		ensure_ctrl
		dmesg_mark
		for i in $(seq "$RESETS"); do
			ts=$(now)
			bg_write reset "$((200 + i))"
			kill -0 "$fio_pid" 2>/dev/null || fail "reset $i: the write job ended before the reset"
			t1=$(now)
			nvme reset "/dev/$ctrl" >/dev/null 2>&1 || fail "reset $i: nvme reset failed"
			wait_count "nvme $ctrl: Successfully reconnected" "$i" 30 || fail "reset $i: no reconnect after the reset"
			t2=$(now)
			bg_wait || fail "reset $i: the write job across the reset failed"
			[ "$i" -le 3 ] || [ $((i % 10)) = 0 ] &&
				log "reset $i: fio started in $((t1 - ts)) ms, reconnected after $((t2 - t1)) ms, fio done after $(( $(now) - t2 )) ms"
		done
		n=$(count_since_mark "nvme $ctrl: Successfully reconnected")
		[ "$n" -eq "$RESETS" ] || fail "$n reconnects for $RESETS resets"
		assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp after the resets"
		pending+=("reset 201 $((200 + RESETS))")
		phase_done "nvme reset $RESETS times under fio, $n reconnects, ${RESETS}x$REG written (verified at the end)"
		;;
	netem)
		ensure_ctrl
		# TCP counters (nstat-style) of a snapshot of /proc/net/{snmp,netstat}.
		tcpctr() { awk -v k="$1" '$1 ~ /^(Tcp|TcpExt):$/ { if (!h[$1]) { for (i = 2; i <= NF; i++) n[$1, i] = $i; h[$1] = 1 } else { for (i = 2; i <= NF; i++) if (n[$1, i] == k) v = $i; h[$1] = 0 } } END { print v + 0 }' "$2"; }
		CTRS="RetransSegs TCPOFOQueue TCPDSACKOldSent TCPDSACKRecv TCPSACKReorder"
		modes="loss delay reorder duplicate"
		# Each mode's job installs its qdisc before it starts and snapshots
		# the counters around itself (fio's exec_prerun/exec_postrun), so one
		# fio process (its start costs seconds under TCG) runs every mode.
		cat >/tmp/netem-pre.sh <<'PRE'
mode=$1; shift
cat /proc/net/snmp /proc/net/netstat >/tmp/netem-$mode.0
tc qdisc add dev lo root netem "$@" && tc qdisc show dev lo >/tmp/netem-$mode.qdisc
PRE
		cat >/tmp/netem-post.sh <<'POST'
mode=$1
cat /proc/net/snmp /proc/net/netstat >/tmp/netem-$mode.1
tc -s qdisc show dev lo | grep -o 'Sent.*' | head -n1 >/tmp/netem-$mode.stats
tc qdisc del dev lo root
POST
		rm -f /tmp/netem-*.[01] /tmp/netem-*.qdisc /tmp/netem-*.stats
		args=() k=0
		for mode in $modes; do
			case $mode in
			loss) q="loss 2%" ;;
			delay) q="delay 20ms 5ms" ;;
			reorder) q="delay 10ms reorder 25% 50%" ;;
			duplicate) q="duplicate 5%" ;;
			esac
			args+=(--name="netem-$mode" --stonewall --offset=$((400 + 4 * k))M --size=4M --randseed=$((77 + k))
				--exec_prerun="sh /tmp/netem-pre.sh $mode $q" --exec_postrun="sh /tmp/netem-post.sh $mode")
			k=$((k + 1))
		done
		out=$(cd /tmp && fio --verify_state_save=0 --filename="$dev" --rw=randwrite --bs=4k --ioengine=libaio --iodepth=16 --direct=1 \
			--verify=crc32c --verify_backlog=64 --verify_fatal=1 --time_based --runtime="$NETEM_SECS" \
			--output-format=json "${args[@]}" 2>/tmp/netem-fio.err); rc=$?
		tc qdisc del dev lo root 2>/dev/null
		[ $rc -eq 0 ] || { sed 's/^/#   /' /tmp/netem-fio.err; fail "fio under netem failed (rc $rc)"; }
		# One line per job: mode error written read-back least-completion-latency(us)
		res=$(python3 -c '
import json, sys
s = sys.stdin.read()
# (fio notes on exec_prerun output come before the JSON)
for j in json.loads(s[s.index("{"):])["jobs"]:
    w, r = j["write"], j["read"]
    print(j["jobname"][6:], j["error"], w["io_bytes"], r["io_bytes"], w["clat_ns"]["min"] // 1000)
' <<<"$out") || fail "cannot read fio's JSON"
		done_modes=()
		for mode in $modes; do
			err="" wbytes=0 rbytes=0 clat_min_us=0
			read -r _ err wbytes rbytes clat_min_us <<<"$(grep "^$mode " <<<"$res")"
			[ -n "${err:-}" ] || fail "netem $mode: no fio job result"
			[ -s "/tmp/netem-$mode.qdisc" ] || fail "netem $mode: the qdisc was not installed"
			log "netem $mode: $(cat /tmp/netem-$mode.qdisc); $(cat /tmp/netem-$mode.stats 2>/dev/null)"
			[ "$err" = 0 ] || fail "netem $mode: fio error $err"
			[ "$wbytes" -gt 0 ] || fail "netem $mode: fio wrote nothing"
			# verify_backlog read back what was written.
			[ "$rbytes" -gt 0 ] || fail "netem $mode: fio read nothing back to verify"
			d() { echo $(( $(tcpctr "$1" "/tmp/netem-$mode.1") - $(tcpctr "$1" "/tmp/netem-$mode.0") )); }
			case $mode in
			loss) ctr=RetransSegs ;;
			reorder) ctr=TCPOFOQueue ;;
			duplicate) ctr=TCPDSACKOldSent ;;
			delay) ctr="" ;;
			esac
			if [ -n "$ctr" ]; then
				moved="$ctr +$(d "$ctr")"
				[ "$(d "$ctr")" -gt 0 ] || fail "netem $mode: $ctr did not move"
			else
				# A command crosses lo's qdisc at least twice (capsule and
				# response), each crossing delayed by at least 15 ms.
				moved="least write completion latency ${clat_min_us} us"
				[ "$clat_min_us" -ge 28000 ] || fail "netem delay: $moved"
			fi
			deltas=""
			for c in $CTRS; do deltas+="${deltas:+, }$c +$(d "$c")"; done
			log "netem $mode: ${wbytes} bytes written, ${rbytes} read back; $moved; TCP $deltas"
			done_modes+=("$mode")
		done
		phase_done "netem ${done_modes[*]}: ${NETEM_SECS}s of fio verify each"
		;;
	*) fail "unknown phase $phase" ;;
	esac
done
if [ ${#pending[@]} -gt 0 ]; then
	pstart=$(date +%s)
	ensure_ctrl
	args=() what=()
	for p in "${pending[@]}"; do
		read -r name first last <<<"$p"
		for i in $(seq "$first" "$last"); do
			# shellcheck disable=SC2207
			args+=($(region "$name" "$i" --verify_only --verify_fatal=1))
		done
		what+=("$name $((last - first + 1))x$REG")
	done
	fio --verify_state_save=0 "${args[@]}" >/tmp/soak-verify.txt 2>&1 || { sed 's/^/#   /' /tmp/soak-verify.txt | tail -n 40; fail "data acknowledged across a fault does not read back"; }
	n=$(grep -c 'err= 0' /tmp/soak-verify.txt) want=$(grep -c -- '--name=' <<<"$(printf '%s\n' "${args[@]}")")
	[ "$n" -eq "$want" ] || { sed 's/^/#   /' /tmp/soak-verify.txt | tail -n 40; fail "$n of $want verify jobs passed"; }
	grep -E 'READ:' /tmp/soak-verify.txt | sed 's/^ */#   /'
	phase_done "verified: ${what[*]}"
fi
[ -n "$ctrl" ] && { run nvme disconnect -n "$NQN" || fail "disconnect failed"; }
for s in "${summary[@]}"; do log "$s"; done
log "soak: all phases passed in $(( $(date +%s) - t0 ))s"
