#!/bin/bash
# Held out of the suite (runner plans t*.sh) until the err_work lockdep report in
# Documentation/hostile-targets.md is fixed. tests/vm/nvmet_fake.py misbehaves once during fio verify on I/O queue 1 (a C2HData out of range, a bad digest,
# an R2T past the data, a Response twice, a C2HTermReq, a close or stall mid-PDU, ...; the table is
# Documentation/hostile-targets.md): each case logs a line naming queue 1 and the field, fio ends (the
# controller recovers on a reconnect to the now well-behaved target, or fails the I/O), no oops or KASAN report,
# no controller is left, and the module unloads; in both receive modes.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip "python3 not installed"
NQN=nqn.2026-11.io.rnvme:hostile
IO_TIMEOUT=/sys/module/nvme_core/parameters/io_timeout
on_exit unload_transports
on_exit "nvme disconnect -n $NQN"
port=4600
# case|connect options|kernel log line (after "nvme nvmeN: ")
cases=(
	"c2h-beyond||queue 1: request 0x[0-9a-f]*: c2h data offset 0 length [0-9]*, expected offset 0 of"
	"c2h-gap||queue 1: request 0x[0-9a-f]*: c2h data offset [0-9]* length [0-9]*, expected offset [0-9]* of"
	"c2h-overlap||queue 1: request 0x[0-9a-f]*: c2h data offset [0-9]* length [0-9]*, expected offset [0-9]* of"
	"c2h-ddgst-bad|--data-digest|queue 1: data digest error, cid 0x"
	"c2h-hdgst-bad|--hdr-digest|queue 1: receive failed: header digest error: recv 0x"
	"c2h-pad||queue 1: receive failed: pdu type 0x7: bad pdo 28"
	"c2h-zero-len||queue 1: .*c2h data pdu with zero data length"
	"c2h-success-then-rsp||queue 1: response for \(unknown \)\?command id 0x"
	"c2h-plen-huge||queue 1: receive failed: pdu type 0x7: bad plen 4294967295"
	"rsp-twice||queue 1: response for \(unknown \)\?command id 0x"
	"rsp-short-read||queue 1: cid 0x[0-9a-f]* short data-in: got [0-9]* of [0-9]*"
	"rsp-stale-cid||queue 1: response for \(unknown \)\?command id 0x"
	"rsp-unknown-flood||queue 1: response for unknown command id 0x"
	"unknown-type||queue 1: receive failed: unexpected pdu type 0xee"
	"icresp-second||queue 1: receive failed: unexpected pdu type 0x1"
	"term-req||queue 1: receive failed: received C2HTermReq"
	"close-mid-payload||queue 1: receive failed: \(connection closed by target\|socket receive failed\)"
	"rst-mid-payload||starting error recovery"
	"rsp-hlen-short||queue 1: receive failed: pdu type 0x5: bad hlen 23"
	"r2t-unknown-cid||queue 1: r2t for unknown command id 0x"
	"stall-mid-pdu||queue 1: request timeout"
	"r2t-beyond||queue 1: request 0x[0-9a-f]*: r2t offset 0 length [0-9]*, 0 of [0-9]* sent"
	"r2t-dup||queue 1: request 0x[0-9a-f]*: r2t while the previous one is outstanding"
	"r2t-for-read||queue 1: request 0x[0-9a-f]*: r2t but no data is due"
)
[ -n "${CASES:-}" ] && mapfile -t cases < <(printf '%s\n' "${cases[@]}" | grep -E "^(${CASES// /|})\|")
modprobe nvme_core && old_timeout=$(cat $IO_TIMEOUT) || fail "no nvme_core io_timeout parameter"
on_exit "echo $old_timeout >$IO_TIMEOUT"
failed=()
for recv in recvmsg read_sock; do
	unload_transports || fail "cannot unload the transports"
	if [ $recv = read_sock ]; then modprobe rnvme_tcp read_sock=1; else modprobe rnvme_tcp; fi || fail "could not load rnvme_tcp"
	for c in "${cases[@]}"; do
		IFS='|' read -r name opts pattern <<<"$c"
		port=$((port + 1))
		after=6; [ "${name#r2t-beyond}" != "$name" ] || [ "$name" = r2t-dup ] && after=4
		python3 "$(dirname "$0")/nvmet_fake.py" "$port" --nqn "$NQN" --case "$name" --qid 1 --after $after \
			>/tmp/fake-$name.log 2>&1 &
		fake=$!
		for i in $(seq 50); do grep -q listening /tmp/fake-$name.log && break; sleep 0.1; done
		[ "$name" = stall-mid-pdu ] && echo 3 >$IO_TIMEOUT
		dmesg_mark
		start=$(date +%s)
		# shellcheck disable=SC2086
		if ! timeout 60 nvme connect -t tcp -a "$TRADDR" -s "$port" -n "$NQN" --nr-io-queues=1 --reconnect-delay=1 \
			--ctrl-loss-tmo=10 $opts >/dev/null 2>&1; then
			log "$recv $name: connect failed"; failed+=("$recv/$name"); kill $fake; wait $fake 2>/dev/null; continue
		fi
		ctrl=$(ctrl_for_nqn) && dev=$(ns_dev_of "$ctrl") || {
			log "$recv $name: no namespace"; failed+=("$recv/$name"); nvme disconnect -n "$NQN" >/dev/null 2>&1
			kill $fake; wait $fake 2>/dev/null; continue
		}
		timeout 90 fio --name="h-$name" --filename="$dev" --rw=randwrite --bs=64k --size=1M --ioengine=libaio \
			--iodepth=4 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
			>/tmp/fio-$name.log 2>&1
		frc=$?
		secs=$(($(date +%s) - start))
		timeout 60 nvme disconnect -n "$NQN" >/dev/null 2>&1
		echo "$old_timeout" >$IO_TIMEOUT
		kill $fake 2>/dev/null; wait $fake 2>/dev/null
		case $frc in 0) fio=verified ;; 124) fio="hung (killed after 90 s)" ;; *) fio="failed ($frc)" ;; esac
		line=$(dmesg_since_mark | grep -m1 -e "$pattern")
		if ! grep -q "^fired $name" /tmp/fake-$name.log; then
			log "$recv $name: the case did not fire; fio $fio"; failed+=("$recv/$name")
		elif [ -z "$line" ] || [ $frc = 124 ]; then
			dmesg_since_mark | grep -v rnvme-test | sed 's/^/#   /'
			grep -E 'err=|fio:|verify' /tmp/fio-$name.log | sed 's/^/#   fio: /'
			log "$recv $name: fio $fio; no '$pattern' in dmesg"; failed+=("$recv/$name")
		else
			log "$recv $name (${secs}s, fio $fio): ${line#*] }"
		fi
		ctrl_for_nqn >/dev/null && { log "$recv $name: a controller was left behind"; failed+=("$recv/$name"); }
	done
	run modprobe -r rnvme_tcp || fail "rnvme_tcp does not unload after the hostile cases ($recv)"
done
[ ${#failed[@]} -eq 0 ] || fail "cases failed: ${failed[*]}"
