#!/bin/bash
# rnvme_tcp against tests/vm/nvmet_fake.py (a target in Python serving a 64 MiB namespace from memory, reads in
# 1-3 C2HData with and without SUCCESS, writes in 2 R2Ts, maxh2cdata 16 KiB): fio verify at 4k (in-capsule) and
# 64k (R2T/H2CData) passes in both receive modes, with and without header and data digests.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip "python3 not installed"
NQN=nqn.2026-11.io.rnvme:fake
port=4500
python3 "$(dirname "$0")/nvmet_fake.py" "$port" --nqn "$NQN" --c2h-chunks 3 --r2t-chunks 2 --maxh2cdata 16384 \
	>/tmp/nvmet-fake.log 2>&1 &
fake=$!
on_exit "kill $fake"
on_exit unload_transports
on_exit "nvme disconnect -n $NQN"
for i in $(seq 50); do grep -q listening /tmp/nvmet-fake.log && break; sleep 0.1; done
for recv in recvmsg read_sock; do
	unload_transports || fail "cannot unload the transports"
	if [ $recv = read_sock ]; then modprobe rnvme_tcp read_sock=1; else modprobe rnvme_tcp; fi || fail "could not load rnvme_tcp"
	for digests in "" "--hdr-digest --data-digest"; do
		dmesg_mark
		# shellcheck disable=SC2086
		nvme connect -t tcp -a "$TRADDR" -s "$port" -n "$NQN" $digests >/dev/null || {
			dmesg_since_mark | sed 's/^/#   /'; sed 's/^/# fake: /' /tmp/nvmet-fake.log
			fail "$recv: connect ($digests) to the fake target failed"
		}
		ctrl=$(ctrl_for_nqn) || fail "no controller for $NQN"
		assert_rust_ctrl "$ctrl" || fail "$ctrl is not served by rnvme_tcp"
		dev=$(ns_dev_of "$ctrl") || fail "no namespace block device"
		n=0 jobs=()
		for bs in 4k 64k; do
			n=$((n + 1))
			size=256k; [ "$bs" = 64k ] && size=1M
			jobs+=(--name="fake-$recv-$bs" --stonewall --filename="$dev" --offset=$(((n - 1) * 16))M --rw=randwrite
				--bs=$bs --size=$size --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --do_verify=1
				--verify_fatal=1)
		done
		run_fio "${jobs[@]}" || { dmesg_since_mark | sed 's/^/#   /'; fail "$recv: fio ($digests) failed"; }
		dmesg_since_mark | grep -E 'rnvme_tcp|nvme' | grep -vE 'rnvme-test|new ctrl|creating|mapped' | sed 's/^/#   /' | grep . &&
			fail "$recv ($digests): unexpected kernel log lines"
		run nvme disconnect -n "$NQN" || fail "disconnect failed"
		log "$recv ${digests:-no digests}: fio verify 4k and 64k passed"
	done
	run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload ($recv)"
done
