#!/bin/bash
# Fuzzing under the KASAN kernel: tests/vm/fuzz_target.py (nvmet_fake.py's controller with a mutator on every PDU
# it sends: bit flips, header field changes, truncation then close/RST/stall, drops, duplicates, reordering,
# replays, splices, injected PDUs) serves one controller lifetime per case: connect through rnvme_tcp (digests,
# poll queue, read_sock=1 and queue count from the case's seed), a little I/O, whatever the mutated stream does
# (errors, recovery, timeouts), delete. A case fails on a kernel problem logged during it
# (tests/kernel-problems.ere), a connect, I/O or delete that hangs, a controller left behind, or, in a "benign"
# case (only valid-stream changes: PDUs split and delayed), any error or data read back wrong; the run stops
# at the first failure with the seed and case that replay it. Afterwards a good connect to nvmet passes fio
# verify and rnvme_tcp unloads.
# FUZZ_DURATION (s, default 60), FUZZ_SEED (the run's seed, default random), FUZZ_CASE (run only that case);
# `make fuzz DURATION= SEED= CASE=` sets them (scripts/fuzz.sh).
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip "python3 not installed"
FNQN=nqn.2026-11.io.rnvme:fuzz
FPORT=4700
duration=${FUZZ_DURATION:-60}
only=${FUZZ_CASE:-}
run_seed=${FUZZ_SEED:-$(( (RANDOM << 17 ^ RANDOM << 2 ^ $(date +%N | sed 's/^0*//;s/^$/0/')) & 0xffffffff ))}
problems_ere=$(grep -v '^#' "$(dirname "$0")/../kernel-problems.ere")
P=/sys/module/nvme_core/parameters
ctl=/tmp/fuzz-case
flog=/tmp/fuzz-target.log
klog=/tmp/fuzz-dmesg.txt

# case_seed RUN N: case N's seed (32-bit integer hash of the pair).
case_seed() {
	local z=$(( ($1 * 2654435761 + ($2 + 1) * 40503 + 0x5bd1e995) & 0xffffffff ))
	z=$(( ((z ^ (z >> 16)) * 0x45d9f3b) & 0xffffffff ))
	z=$(( ((z ^ (z >> 16)) * 0x45d9f3b) & 0xffffffff ))
	echo $(( z ^ (z >> 16) ))
}

# Builtins only (under TCG each process costs tens of milliseconds; a case polls this).
fuzz_ctrls() {
	local c q
	for c in /sys/class/nvme/nvme*; do
		[ -e "$c/subsysnqn" ] && read -r q <"$c/subsysnqn" 2>/dev/null && [ "$q" = "$FNQN" ] && echo "${c##*/}"
	done
}
# Microseconds since the epoch, and seconds since $1 (microseconds) with one decimal.
now_us() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }
secs_since() { local d=$(( $(now_us) - $1 )); printf '%d.%d' $((d / 1000000)) $((d / 100000 % 10)); }
fuzz_delete_all() { local c; for c in $(fuzz_ctrls); do echo 1 >"/sys/class/nvme/$c/delete_controller"; done; }

modprobe nvme_core || fail "no nvme_core"
old_io=$(cat $P/io_timeout) && old_admin=$(cat $P/admin_timeout) || fail "no nvme_core io_timeout/admin_timeout parameters"
on_exit unload_transports
on_exit fuzz_delete_all
on_exit "echo $old_io >$P/io_timeout; echo $old_admin >$P/admin_timeout"
# Short timeouts: a dropped or stalled PDU costs seconds, not the default 30/60.
echo 5 >$P/io_timeout
echo 5 >$P/admin_timeout
stdbuf -oL dmesg -w >"$klog" 2>&1 &
on_exit "kill $!"
: >"$ctl"; : >"$flog"
python3 "$(dirname "$0")/fuzz_target.py" "$FPORT" --ctl "$ctl" --nqn "$FNQN" --size-mb 16 >"$flog" 2>&1 &
on_exit "kill $!"
for _ in $(seq 600); do grep -q listening "$flog" && break; sleep 0.1; done
grep -q listening "$flog" || { sed 's/^/# target: /' "$flog"; fail "the fuzz target did not start"; }
log "fuzz: the target is up in $SECONDS s"
unload_transports || fail "cannot unload the transports"
mode=none
# make fuzz boots with kmemleak on: forget what came before, scan at the end.
KL=/sys/kernel/debug/kmemleak
kmemleak=0
if [ "${FUZZ_KMEMLEAK:-0}" = 1 ] && echo clear 2>/dev/null >$KL; then kmemleak=1; fi

# A connect written to /dev/nvme-fabrics (no nvme-cli start per case), in a
# child with a deadline: prints "instance=N,..." or nothing.
connect() {
	timeout -k 5 60 bash -c 'exec 3<>/dev/nvme-fabrics && echo "$1" >&3 && read -r l <&3 && echo "$l"' _ "$1" 2>/dev/null
}

# wait_gone SECS: no controller of $FNQN left within SECS seconds.
wait_gone() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do [ -z "$(fuzz_ctrls)" ] && return 0; sleep 0.1; done
	return 1
}

# case_fail N S WHY: the case's diagnostics, then the replay line.
case_fail() {
	log "case $1 seed $2: $3"
	grep "^case $2[: ]" "$flog" | tail -n 40 | sed 's/^/#   target: /'
	tail -c +$((koff + 1)) "$klog" | grep -E 'nvme|rnvme|KASAN|BUG|WARN|Oops|Call Trace|blocked' | tail -n 60 | sed 's/^/#   /'
	fail "seed $run_seed case $1: replay with make fuzz SEED=$run_seed CASE=$1"
}

# dd_job DEV KIB_OFFSET BS_WRITE BS_READ KIB TAG: writes KIB KiB of this case's
# pattern at the offset in O_DIRECT blocks of BS_WRITE bytes, reads them back in
# blocks of BS_READ and compares. 0: the data came back; 1: it differs; 2, 3:
# the write, the read failed (or was killed).
dd_job() {
	local dev=$1 off=$(( $2 * 1024 )) bw=$3 br=$4 len=$(( $5 * 1024 )) tag=$6
	timeout -k 5 20 dd if=/tmp/fuzz-pat of="$dev" bs="$bw" count=$((len / bw)) seek=$((off / bw)) oflag=direct \
		conv=notrunc status=none 2>/dev/null || return 2
	timeout -k 5 20 dd if="$dev" of="/tmp/fuzz-rd-$tag" bs="$br" count=$((len / br)) skip=$((off / br)) iflag=direct \
		status=none 2>/dev/null || return 3
	cmp -s -n "$len" /tmp/fuzz-pat "/tmp/fuzz-rd-$tag" || return 1
}
# io_run DEV: the case's I/O, from its seed ($s): two dd jobs at once (queue
# depth 2, in-capsule writes up to 8 KiB, R2T writes above, reads in 1-4
# C2HData), or on a poll queue fio io_uring --hipri with verify; the verdict
# ("data ok", "data differs", "I/O error", "killed") goes to /tmp/fuzz-io.txt.
BS=(512 4096 8192 16384 65536 131072)
io_run() {
	local dev=$1 base=$(( (n % 7) * 2048 )) i bw br kib r1 r2 max=6
	[[ $opts == *data_digest* ]] && max=4  # the Python target's crc32c is slow: 16 KiB at most
	if [ $poll = 1 ]; then
		timeout -k 5 40 fio --name=fuzz --filename="$dev" --offset=${base}k --rw=randwrite --bsrange=512-$((${BS[max - 1]} / 1024))k \
			--size=64k --ioengine=io_uring --hipri=1 --iodepth=4 --direct=1 --verify=crc32c --do_verify=1 \
			--verify_fatal=1 --randseed="$s" --verify_state_save=0 --output-format=terse --terse-version=3 >/tmp/fuzz-fio.log 2>&1
		case $? in 0) echo "data ok: fio io_uring hipri" ;; 124|137) echo "killed: fio" ;; *) echo "I/O error: fio" ;; esac >/tmp/fuzz-io.txt
		return
	fi
	bw=${BS[(s >> 10) % max]} br=${BS[(s >> 13) % max]}
	# About 8 writes per job (the Python target under TCG serves tens of commands a second).
	kib=$(( bw * 8 / 1024 > 256 ? 256 : bw * 8 / 1024 ))
	[ $((br / 1024)) -le $kib ] || br=$((kib * 1024))
	head -c $((kib * 1024)) /dev/urandom >/tmp/fuzz-pat
	dd_job "$dev" "$base" "$bw" "$br" "$kib" a & r1=$!
	dd_job "$dev" $((base + 1024)) "$br" "$bw" "$kib" b & r2=$!
	wait $r1; r1=$?
	wait $r2; r2=$?
	local w="dd ${kib}k in ${bw}/${br}-byte blocks x2"
	if [ $r1 = 0 ] && [ $r2 = 0 ]; then echo "data ok: $w"
	elif [ $r1 = 1 ] || [ $r2 = 1 ]; then echo "data differs: $w"
	else echo "I/O error: $w ($r1 $r2)"; fi >/tmp/fuzz-io.txt
}

ncases=0 nconn=0 ndiffer=0 nverified=0 nchanges=0 nbenign=0
t0=$(now_us)
log "fuzz: run seed $run_seed, ${only:+case $only only, }${duration} s, io_timeout 5 s, admin_timeout 5 s"
n=${only:-0}
while :; do
	s=$(case_seed "$run_seed" "$n")
	# The host's side of the case, from its seed.
	opts="nr_io_queues=$(( (s >> 6) % 3 == 0 ? 2 : 1 ))"
	poll=$(( (s >> 4) % 4 == 0 ))
	[ $poll = 1 ] && opts+=",nr_poll_queues=1"
	# Data digests in a quarter of the cases (the Python target's crc32c is slow).
	case $(( s % 8 )) in 3|4|5) opts+=",hdr_digest" ;; 6) opts+=",data_digest" ;; 7) opts+=",hdr_digest,data_digest" ;; esac
	# read_sock=1 applies to controllers created after loading: it changes
	# in runs of 4 cases (a third of them), not to reload the module per case.
	rs=$(( ((n >> 2) + run_seed) % 3 == 2 ))
	want=recvmsg; [ $rs = 1 ] && want=read_sock
	if [ "$mode" != $want ]; then
		if mod_loaded rnvme_tcp; then modprobe -r rnvme_tcp || case_fail "$n" "$s" "rnvme_tcp does not unload"; fi
		if [ $want = read_sock ]; then modprobe rnvme_tcp read_sock=1; else modprobe rnvme_tcp; fi ||
			fail "could not load rnvme_tcp ($want)"
		mode=$want
	fi
	echo "$s" >"$ctl"
	koff=$(stat -c %s "$klog")
	echo "rnvme-fuzz-case $n seed $s" >/dev/kmsg
	c0=$(now_us)
	what="$want, $opts"
	line=$(connect "transport=tcp,traddr=$TRADDR,trsvcid=$FPORT,nqn=$FNQN,reconnect_delay=1,ctrl_loss_tmo=2,keep_alive_tmo=5,$opts")
	crc=$?
	what+=" (connect $(secs_since "$c0") s)"
	[ $crc = 124 ] || [ $crc = 137 ] && case_fail "$n" "$s" "the connect hung (killed after 60 s)"
	io_pid= iores=
	rm -f /tmp/fuzz-io.txt
	if [[ $line == instance=* ]]; then
		nconn=$((nconn + 1))
		ctrl=${line#instance=}; ctrl=nvme${ctrl%%,*}
		dev=
		for _ in $(seq 30); do
			for d in /sys/class/nvme/"$ctrl"/"$ctrl"n*; do [ -b "/dev/${d##*/}" ] && dev=/dev/${d##*/} && break 2; done
			[ -e "/sys/class/nvme/$ctrl" ] || break
			sleep 0.1
		done
		if [ -n "$dev" ]; then
			io_run "$dev" &
			io_pid=$!
		else
			what+=", no namespace"
		fi
	else
		what+=", connect failed"
	fi
	if [ -n "$io_pid" ]; then
		for _ in $(seq 600); do kill -0 "$io_pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$io_pid" 2>/dev/null; then
			# Past the I/O's own timeouts and kills: it is stuck. Deleting the controller must end it.
			fuzz_delete_all &
			for _ in $(seq 300); do kill -0 "$io_pid" 2>/dev/null || break; sleep 0.1; done
			kill -0 "$io_pid" 2>/dev/null && case_fail "$n" "$s" "I/O still running 30 s after its timeout and the controller's delete"
		fi
		wait "$io_pid"
		iores=$(cat /tmp/fuzz-io.txt 2>/dev/null)
		[ "${iores%%:*}" = "data ok" ] && nverified=$((nverified + 1))
		what+=", $iores"
		[ "${iores%%:*}" = "data differs" ] && ndiffer=$((ndiffer + 1))
	fi
	# Delete the controller (unless it already deleted itself): that must end, and so must every I/O.
	for c in $(fuzz_ctrls); do echo 1 >"/sys/class/nvme/$c/delete_controller" 2>/dev/null & done
	wait_gone 60 || case_fail "$n" "$s" "controller $(fuzz_ctrls) still there 60 s after its delete"
	echo "rnvme-fuzz-case-end $n" >/dev/kmsg
	for _ in $(seq 50); do tail -c +$((koff + 1)) "$klog" | grep -q "rnvme-fuzz-case-end $n\$" && break; sleep 0.1; done
	prob=$(tail -c +$((koff + 1)) "$klog" | grep -E -- "$problems_ere" | head -n 10)
	[ -z "$prob" ] || case_fail "$n" "$s" "kernel problem: $(head -n1 <<<"$prob")"
	changes=$(grep -c "^case $s conn " "$flog")
	nchanges=$((nchanges + changes))
	if grep -q "^case $s: benign" "$flog"; then
		nbenign=$((nbenign + 1))
		# Valid streams only: the connect, the I/O and the data must be good, and no queue may have failed.
		[ "${iores%%:*}" = "data ok" ] || case_fail "$n" "$s" "benign case ($what): the I/O must pass"
		err=$(tail -c +$((koff + 1)) "$klog" | grep -E "nvme nvme[0-9]+: (queue [0-9]+:|.*error recovery|.*Reconnecting|.*timeout)" | head -n1)
		[ -z "$err" ] || case_fail "$n" "$s" "benign case ($what): $err"
	fi
	ncases=$((ncases + 1))
	log "case $n seed $s: $what; $changes changes$(grep -q "^case $s: benign" "$flog" && echo ' (benign)'), $(secs_since "$c0") s"
	[ -n "$only" ] && break
	n=$((n + 1))
	[ $(( $(now_us) - t0 )) -lt $(( duration * 1000000 )) ] || break
done
secs=$(secs_since "$t0")
log "fuzz: $ncases cases in $secs s ($(awk -v n=$ncases -v s="$secs" 'BEGIN { printf "%.2f", n / s }') cases/s), seed $run_seed"
log "fuzz: $nconn connects, $nverified with the data read back, $ndiffer with data that differs (hostile cases), $nchanges PDUs changed, $nbenign benign cases"
grep -v '^case \|^listening$\|^connect qid' "$flog" | head -n 20 | sed 's/^/# target (stderr): /'
[ "$ncases" -gt 0 ] || fail "no case ran"
[ "$nchanges" -gt 0 ] || fail "the target changed no PDU in $ncases cases"

# kmemleak (make fuzz): objects that host nvme code allocated and lost during the
# cases (frames in rnvme_tcp, nvme_core or nvme_fabrics), scanned while
# rnvme_tcp is still loaded so its frames have names.
if [ $kmemleak = 1 ]; then
	sleep 6; echo scan >$KL; echo scan >$KL
	report=$(cat $KL)
	ours=$(awk -v re='\\[(rnvme_tcp|nvme_core|nvme_fabrics)\\]' \
		'/^unreferenced object/ { if (rec ~ re) n++; rec = "" } { rec = rec "\n" $0 } END { if (rec ~ re) n++; print n + 0 }' <<<"$report")
	log "fuzz: kmemleak: $(grep -c '^unreferenced object' <<<"$report") unreferenced objects, $ours from host nvme code"
	[ "$ours" -eq 0 ] || { sed 's/^/#   /' <<<"$report" | head -n 80; fail "seed $run_seed: kmemleak found $ours objects from host nvme code"; }
fi

# After the fuzzing: rnvme_tcp (recvmsg) against nvmet, fio verify.
modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload after the fuzzing"
target_up || fail "target set-up failed"
ctrl=$(rust_connect --nr-io-queues=2 --hdr-digest --data-digest) || fail "connect to nvmet after the fuzzing failed"
assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
run_fio --name=after-fuzz --filename="$dev" --rw=randwrite --bsrange=4k-128k --size=4M --ioengine=libaio --iodepth=8 \
	--direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio verify against nvmet after the fuzzing failed"
run nvme disconnect -n "$NQN" || fail "disconnect failed"
run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload"
