#!/bin/bash
# A hostile target (tests/vm/fake_target.py) sends malformed ICResp/PDUs: each connect fails fast with a
# dmesg line naming the queue and the field, no oops, and the module unloads afterwards; in both receive
# modes (recvmsg, and read_sock=1, which pushes skbs through the same machine).
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip "python3 not installed"
on_exit unload_transports
port=4430
declare -A expect=(
	[icresp-bad-pfv]='rnvme_tcp: queue 0: icresp: bad pfv 0x1'
	[icresp-bad-maxdata]='rnvme_tcp: queue 0: icresp: invalid maxh2cdata 100'
	[close-after-icresp]='queue 0: receive failed: \(connection closed by target\|socket receive failed: -104\)'
	[rsp-bad-hlen]='queue 0: receive failed: pdu type 0x5: bad hlen 23'
	[rsp-unknown-cid]='queue 0: response for unknown command id'
	[c2h-unknown-cid]='queue 0: c2h data for unknown command id'
	[c2h-out-of-range]='queue 0: tag 0x[0-9a-f]* unexpected data'
	[r2t-zero-length]='queue 0: request 0x[0-9a-f]*: r2t \(offset 0 length 0\|but no data is due\)'
	[term-req]='queue 0: receive failed: received C2HTermReq (FES = Data Transfer Out Of Range'
	[garbage]='queue 0: receive failed: unexpected pdu type 0xee'
	[plen-lies]='queue 0: receive failed: pdu type 0x5: bad plen 4294967295'
)
modes=(icresp-bad-pfv icresp-bad-maxdata close-after-icresp rsp-bad-hlen rsp-unknown-cid c2h-unknown-cid c2h-out-of-range r2t-zero-length term-req garbage plen-lies)
declare -A port_of=()
start_fake_targets "$port" "${modes[@]}" || fail "the fake target did not start"
for recv in recvmsg read_sock; do
	unload_transports || fail "cannot unload the transports"
	if [ $recv = read_sock ]; then modprobe rnvme_tcp read_sock=1; else modprobe rnvme_tcp; fi || fail "could not load rnvme_tcp"
	for mode in "${modes[@]}"; do
		dmesg_mark
		start=$(date +%s)
		timeout 60 nvme connect -t tcp -a "$TRADDR" -s "${port_of[$mode]}" -n "$NQN" >/dev/null 2>&1 && fail "$recv $mode: connect succeeded"
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
