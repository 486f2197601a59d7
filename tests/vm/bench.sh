#!/bin/bash
# A/B benchmark in one VM, same target, same fio jobs: the C nvme_tcp
# ("c", read_sock from io_work), rnvme_tcp ("rust", recvmsg from io_work) and
# rnvme_tcp with read_sock=1 ("rust-rs": the same module, send path and
# receive machine, only the receive call differs: the pure receive-path A/B).
# Prints one "bench DRIVER JOB IOPS MiB/s" line per run; scripts/bench.sh
# turns them into ratios. Under `-icount shift=0,sleep=off` guest time counts executed
# instructions, so the figures compare CPU cost per I/O, repeatably.
. "$(dirname "$0")/lib.sh"
runtime=${BENCH_RUNTIME:-10}
# BENCH_TLS=1: every connect is TLS 1.3 (the port requires it; read_sock=1 cannot serve TLS).
tls=()
if [ "${BENCH_TLS:-0}" = 1 ]; then tls_up || fail "TLS set-up failed"; tls=(--tls); fi
target_up || fail "target set-up failed"
on_exit unload_transports
# Fill the namespace once so reads return real data.
dd if=/dev/urandom of=/dev/ram0 bs=1M count=64 status=none
jobs=("randread-4k-qd16:--rw=randread --bs=4k --iodepth=16"
      "randwrite-4k-qd16:--rw=randwrite --bs=4k --iodepth=16"
      "read-128k-qd8:--rw=read --bs=128k --iodepth=8"
      "write-128k-qd8:--rw=write --bs=128k --iodepth=8")
for driver in ${BENCH_DRIVERS:-c rust rust-rs}; do
	unload_transports
	case $driver in
	c) use_c_driver ;;
	rust) modprobe rnvme_tcp ;;
	rust-rs) modprobe rnvme_tcp read_sock=1 ;;
	esac || fail "cannot load the $driver driver"
	nvme connect -t tcp "${tls[@]}" -a "$TRADDR" -s "$TRSVCID" -n "$NQN" --nr-io-queues=1 >/dev/null || fail "$driver connect failed"
	ctrl=$(ctrl_for_nqn) && dev=$(ns_dev_of "$ctrl") || fail "no namespace with the $driver driver"
	for j in "${jobs[@]}"; do
		name=${j%%:*}
		# shellcheck disable=SC2086
		json=$(cd /tmp && fio --name="$name" --filename="$dev" ${j#*:} --size=64M --ioengine=libaio --direct=1 \
			--time_based --runtime="$runtime" --output-format=json) || fail "fio $name failed"
		python3 -c '
import json, sys
j = json.loads(sys.stdin.read())["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] else j["write"]
print("bench %s %s %.0f %.2f" % (sys.argv[1], sys.argv[2], d["iops"], d["bw"] / 1024.0))
' "$driver" "$name" <<<"$json"
	done
	nvme disconnect -n "$NQN" >/dev/null
done
