#!/bin/bash
# Header and data digests (none, header, data, both) negotiated by rnvme_tcp; fio verify in each mode.
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
	for bs in 4k 64k; do
		run_fio --name="d-$mode-$bs" --filename="$dev" --rw=randwrite --bs="$bs" --size=4M --ioengine=libaio \
			--iodepth=8 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 || fail "fio $bs with digests '$mode' failed"
	done
	dmesg_since_mark | grep -q 'digest error' && fail "digest errors logged in mode '$mode'"
	run nvme disconnect -n "$NQN" || fail "disconnect failed"
	log "digests '$mode': 4k and 64k verified"
done
