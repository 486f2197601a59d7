#!/bin/bash
# The benchmark, in one VM, against the in-kernel nvmet target on a RAM disk:
# the C nvme_tcp ("c", read_sock from io_work), rnvme_tcp ("rust", recvmsg)
# and rnvme_tcp read_sock=1 ("rust-rs": the same module, only the receive call
# differs). Run by scripts/bench.sh (make bench) on the bench kernel; the
# make-check smoke (t46-bench-harness) runs it with a tiny setting.
#
#   BENCH_REPS=3             repetitions; the driver order rotates each one
#   BENCH_RUNTIME=2 BENCH_RAMP=1   fio runtime and ramp_time (s, guest time)
#   BENCH_DRIVERS="c rust rust-rs"   also rust+PARAM=V[+PARAM=V]: the module
#                            with those parameters (an A/B of their values)
#   BENCH_CONFIGS="q1 q2j2"  q1: 1 I/O queue, numjobs 1; q2j2: 2 queues, numjobs 2
#   BENCH_VARIANTS="plain ddgst"   ddgst: connect --data-digest
#   BENCH_JOBS=...           a subset of the job names below
#   BENCH_TLS=0|1            also TLS 1.3 rows (BENCH_TLS_CONFIGS, default q1)
#   BENCH_LOOPBACK=2         seconds of the one-stream loopback TCP test (0: none)
#   BENCH_SIZE=64        MiB of the namespace the jobs touch (filled with random data first)
#   BENCH_KO=PATH            the rnvme_tcp.ko to load (built for the running kernel)
#   BENCH_OUT=/mnt/out       fio JSON in OUT/fio/, records in OUT/records.jsonl
#
# One fio process per connect, with every job as a --stonewall section; each
# job's exec_prerun/exec_postrun snapshot /proc/stat, the namespace's block
# stat and the module's debugfs counters (`bench.sh --snap`), which
# scripts/bench-record.py turns into per-I/O figures. Nothing here judges a speed.
if [ "${1:-}" = --snap ]; then
	# --snap FILE DEV [first]: "first" keeps an existing FILE (numjobs > 1:
	# the first clone's pre-snapshot counts, the last clone's post-snapshot).
	[ "${4:-}" = first ] && [ -e "$2" ] && exit 0
	{
		echo "== stat"; head -n1 /proc/stat
		echo "== block"; cat "/sys/block/$3/stat"
		echo "== queues"; cat /sys/kernel/debug/rnvme_tcp/queues 2>/dev/null || true
	} >"$2.tmp" && mv "$2.tmp" "$2"
	exit 0
fi
. "$(dirname "$0")/lib.sh"
reps=${BENCH_REPS:-3}
runtime=${BENCH_RUNTIME:-2}
ramp=${BENCH_RAMP:-1}
read -ra drivers <<<"${BENCH_DRIVERS:-c rust rust-rs}"
read -ra configs <<<"${BENCH_CONFIGS:-q1 q2j2}"
read -ra variants <<<"${BENCH_VARIANTS:-plain ddgst}"
read -ra tls_configs <<<"${BENCH_TLS_CONFIGS:-q1}"
tls=${BENCH_TLS:-0}
out=${BENCH_OUT:-/mnt/out}
src=$(cd "$(dirname "$0")/../.." && pwd)
TLS_PORT=4421
all_jobs=("randread-4k-qd1:--rw=randread --bs=4k --iodepth=1"
          "randread-4k-qd32:--rw=randread --bs=4k --iodepth=32"
          "randwrite-4k-qd32:--rw=randwrite --bs=4k --iodepth=32"
          "read-128k-qd16:--rw=read --bs=128k --iodepth=16"
          "write-128k-qd16:--rw=write --bs=128k --iodepth=16")
jobs=()
for j in "${all_jobs[@]}"; do
	if [ -z "${BENCH_JOBS:-}" ] || grep -qw -- "${j%%:*}" <<<"$BENCH_JOBS"; then jobs+=("$j"); fi
done
[ ${#jobs[@]} -gt 0 ] || fail "BENCH_JOBS='${BENCH_JOBS:-}' names no job"
mkdir -p "$out/fio" || fail "cannot write to $out"
records=$out/records.jsonl
: >"$records"

# The module built for this kernel replaces the one guest-init installed.
if [ -n "${BENCH_KO:-}" ]; then
	[ -f "$BENCH_KO" ] || fail "no module at $BENCH_KO"
	mkdir -p "/lib/modules/$KVER/extra"
	cp "$BENCH_KO" "/lib/modules/$KVER/extra/rnvme_tcp.ko" && depmod -a || fail "cannot install $BENCH_KO"
fi
target_up || fail "target set-up failed"
on_exit unload_transports
if [ "$tls" = 1 ]; then
	# A second port that requires TLS 1.3; port 1 stays plain.
	tls_up || fail "TLS set-up (key, tlshd) failed"
	p=$NVMET/ports/2
	mkdir "$p" && echo ipv4 >"$p/addr_adrfam" && echo tcp >"$p/addr_trtype" && echo "$TRADDR" >"$p/addr_traddr" &&
		echo $TLS_PORT >"$p/addr_trsvcid" && echo tls1.3 >"$p/addr_tsas" &&
		ln -s "$NVMET/subsystems/$NQN" "$p/subsystems/$NQN" || fail "TLS port set-up failed"
	on_exit "rm -f $p/subsystems/$NQN; rmdir $p"
fi
# Fill the part of the namespace the jobs touch, so reads return real data.
size=${BENCH_SIZE:-64}
dd if=/dev/urandom of=/dev/ram0 bs=1M count="$size" status=none || fail "cannot fill /dev/ram0"

lockdep=0; [ -e /proc/lockdep ] && lockdep=1
kasan=0; grep -qw kasan_report /proc/kallsyms && kasan=1
python3 - "$out/meta.json" <<EOF || fail "cannot write meta.json"
import json, sys, os
json.dump({"kernel": os.uname().release, "cmdline": open("/proc/cmdline").read().strip(),
           "cpus": os.cpu_count(), "lockdep": $lockdep, "kasan": $kasan,
           "fio": "$(fio --version)", "reps": $reps, "runtime": $runtime, "ramp": $ramp, "size_mib": $size,
           "drivers": "${drivers[*]}", "configs": "${configs[*]}", "variants": "${variants[*]}",
           "tls": $tls, "tls_configs": "${tls_configs[*]}",
           "jobs": "$(for j in "${jobs[@]}"; do printf '%s ' "${j%%:*}"; done)"},
          open(sys.argv[1], "w"), indent=1, sort_keys=True)
EOF
log "bench: kernel $(uname -r), lockdep=$lockdep kasan=$kasan, $reps rep(s), runtime ${runtime}s ramp ${ramp}s"

if [ "${BENCH_LOOPBACK:-2}" != 0 ]; then
	python3 "$src/scripts/bench-loopback.py" "${BENCH_LOOPBACK:-2}" "$records" || fail "loopback test failed"
fi

load_driver() {
	unload_transports || return 1
	case $1 in
	c) use_c_driver ;;
	rust) modprobe rnvme_tcp ;;
	rust-rs) modprobe rnvme_tcp read_sock=1 ;;
	# rust+recv_tail=0+recv_batch=4096: module parameters A/B
	# shellcheck disable=SC2086
	rust+*) local p=${1#rust+}; modprobe rnvme_tcp ${p//+/ } ;;
	*) return 1 ;;
	esac
}

# run_set REP DRIVER CONFIG VARIANT: one connect, one fio process, records.
run_set() {
	local rep=$1 driver=$2 cfg=$3 variant=$4 nq nj args=() ctrl dev name tag snaps fj j
	case $cfg in
	q1) nq=1 nj=1 ;;
	q2j2) nq=2 nj=2 ;;
	*) fail "unknown config $cfg" ;;
	esac
	args=(-a "$TRADDR" -n "$NQN" --nr-io-queues=$nq)
	case $variant in
	plain) args+=(-s "$TRSVCID") ;;
	ddgst) args+=(-s "$TRSVCID" --data-digest) ;;
	tls) args+=(-s $TLS_PORT --tls) ;;
	*) fail "unknown variant $variant" ;;
	esac
	tag=r$rep-$driver-$cfg-$variant
	if ! nvme connect -t tcp "${args[@]}" >/tmp/connect.log 2>&1; then
		if [ "$driver" = rust-rs ] && [ "$variant" = tls ]; then
			# read_sock=1 cannot serve TLS (rust/tls.rs): the row says so.
			log "bench: $tag: connect refused ($(head -n1 /tmp/connect.log))"
			for j in "${jobs[@]}"; do
				printf '{"rep": %d, "driver": "%s", "config": "%s", "variant": "%s", "job": "%s", "status": "refused"}\n' \
					"$rep" "$driver" "$cfg" "$variant" "${j%%:*}" >>"$records"
			done
			return 0
		fi
		sed 's/^/# /' /tmp/connect.log
		fail "$tag: connect failed"
	fi
	ctrl=$(ctrl_for_nqn) && dev=$(ns_dev_of "$ctrl") || fail "$tag: no namespace"
	dev=${dev#/dev/}
	snaps=/tmp/snaps/$tag
	rm -rf "$snaps"; mkdir -p "$snaps"
	fj=$out/fio/$tag.json
	local fargs=(--filename="/dev/$dev" --ioengine=libaio --direct=1 --size="${size}M" --time_based
		--runtime="$runtime" --ramp_time="$ramp" --numjobs=$nj --group_reporting --randrepeat=0)
	for j in "${jobs[@]}"; do
		name=${j%%:*}
		# shellcheck disable=SC2206
		fargs+=(--name="$name" --stonewall ${j#*:}
			--exec_prerun="bash $src/tests/vm/bench.sh --snap $snaps/$name.pre $dev first"
			--exec_postrun="bash $src/tests/vm/bench.sh --snap $snaps/$name.post $dev")
	done
	(cd /tmp && fio --output-format=json --output="$fj" "${fargs[@]}") >/tmp/fio.log 2>&1 ||
		{ sed 's/^/# /' /tmp/fio.log; fail "$tag: fio failed"; }
	python3 "$src/scripts/bench-record.py" --fio "$fj" --snaps "$snaps" --ctrl "$ctrl" --out "$records" \
		rep="$rep" driver="$driver" config="$cfg" variant="$variant" queues=$nq numjobs=$nj ||
		fail "$tag: cannot read its figures"
	nvme disconnect -n "$NQN" >/dev/null || fail "$tag: disconnect failed"
}

for ((rep = 1; rep <= reps; rep++)); do
	# Rotate the order: with 3 drivers and 3 repetitions each runs once first, second and last.
	n=${#drivers[@]}; order=()
	for ((k = 0; k < n; k++)); do order+=("${drivers[(k + rep - 1) % n]}"); done
	log "bench: repetition $rep of $reps, order: ${order[*]}"
	for driver in "${order[@]}"; do
		load_driver "$driver" || fail "cannot load the $driver driver"
		for cfg in "${configs[@]}"; do
			for variant in "${variants[@]}"; do run_set "$rep" "$driver" "$cfg" "$variant"; done
		done
		if [ "$tls" = 1 ]; then
			for cfg in "${tls_configs[@]}"; do run_set "$rep" "$driver" "$cfg" tls; done
		fi
	done
done
unload_transports
echo "bench: done, $(wc -l <"$records") records"
