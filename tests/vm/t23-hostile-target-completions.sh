#!/bin/bash
# A hostile target (tests/vm/fake_target.py) answers a command twice, or ends a read with SUCCESS before its
# data: the stale command id and the short read are logged naming the queue and the command, the connect
# fails fast, no oops or KASAN report, the module unloads; in both receive modes.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip "python3 not installed"
on_exit unload_transports
port=4470
declare -A expect=(
	[rsp-dup-cid]='queue 0: response for command id 0x[0-9a-f]*, which is not in flight'
	[identify-short]='queue 0: cid 0x[0-9a-f]* short data-in: got 512 of 4096'
)
modes=(rsp-dup-cid identify-short)
declare -A port_of=()
start_fake_targets "$port" "${modes[@]}" || fail "the fake target did not start"
for recv in recvmsg read_sock; do
	unload_transports || fail "cannot unload the transports"
	if [ $recv = read_sock ]; then modprobe rnvme_tcp read_sock=1; else modprobe rnvme_tcp; fi || fail "could not load rnvme_tcp"
	for mode in "${modes[@]}"; do
		dmesg_mark
		start=$(date +%s)
		timeout 60 nvme connect -t tcp -a "$TRADDR" -s "${port_of[$mode]}" -n "$NQN" >/dev/null 2>&1 && {
			nvme disconnect -n "$NQN" >/dev/null 2>&1
			fail "$recv $mode: connect succeeded"
		}
		secs=$(( $(date +%s) - start ))
		line=$(dmesg_since_mark | grep -m1 -e "${expect[$mode]}") || {
			dmesg_since_mark | sed 's/^/#   /'
			fail "$recv $mode: no '${expect[$mode]}' in dmesg"
		}
		[ "$secs" -lt 30 ] || fail "$recv $mode: the connect took ${secs}s to fail"
		log "$recv $mode (${secs}s): ${line#*] }"
	done
	ctrl_for_nqn >/dev/null && fail "a controller was left behind ($recv)"
	run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload after the hostile connects ($recv)"
done
