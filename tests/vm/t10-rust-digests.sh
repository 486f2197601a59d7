#!/bin/bash
# Header and data digests (none, header, data, both) negotiated by rnvme_tcp and shown on every queue in
# debugfs; in each mode fio verify at 4k (in-capsule), 64k and 1M (R2T), libaio and io_uring, QD 1 and 32.
. "$(dirname "$0")/lib.sh"
target_up || fail "target set-up failed"
on_exit unload_transports
for mode in none hdr data both; do
	case $mode in
	none) flags=() ;; hdr) flags=(--hdr-digest) ;; data) flags=(--data-digest) ;; both) flags=(--hdr-digest --data-digest) ;;
	esac
	dmesg_mark
	ctrl=$(rust_connect "${flags[@]}") || fail "connect with digests '$mode' failed"
	assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
	dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
	# Every queue of the controller negotiated exactly these digests.
	case $mode in none) want="hdgst=0 ddgst=0" ;; hdr) want="hdgst=1 ddgst=0" ;; data) want="hdgst=0 ddgst=1" ;; both) want="hdgst=1 ddgst=1" ;; esac
	queues=$(grep "^$ctrl qid " /sys/kernel/debug/rnvme_tcp/queues) || fail "no debugfs lines for $ctrl"
	nq=$(grep -c . <<<"$queues"); ok=$(grep -c -- " $want " <<<"$queues")
	[ "$nq" -ge 2 ] && [ "$ok" = "$nq" ] || { sed 's/^/#   /' <<<"$queues"; fail "digests '$mode': $ok of $nq queues show '$want'"; }
	log "digests '$mode': all $nq queues show $want"
	# Three jobs per mode cover every digest path: 4k writes in-capsule and
	# reads in one C2HData, 64k and 1M writes through R2T/H2CData, both
	# engines, QD 1 and 32 (t09 runs the whole size x engine x depth matrix).
	n=0 jobs=()
	for job in "4k libaio 32" "64k io_uring 1" "1M libaio 32"; do
		read -r bs engine qd <<<"$job"
		n=$((n + 1))
		size=512k; [ "$bs" = 64k ] && size=1M; [ "$bs" = 1M ] && size=4M
		jobs+=(--name="d-$mode-$bs-$engine-qd$qd" --stonewall --filename="$dev" --offset=$(((n - 1) * 10))M --rw=randwrite
			--bs="$bs" --size="$size" --ioengine="$engine" --iodepth="$qd" --direct=1 --verify=crc32c --do_verify=1
			--verify_fatal=1)
	done
	run_fio "${jobs[@]}" || fail "fio with digests '$mode' failed (the job without err= 0 above)"
	dmesg_since_mark | grep -q 'digest error' && fail "digest errors logged in mode '$mode'"
	run nvme disconnect -n "$NQN" || fail "disconnect failed"
	log "digests '$mode': $n fio verify jobs passed"
done
