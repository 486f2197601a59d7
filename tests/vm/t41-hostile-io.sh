#!/bin/bash
# Hostile target during real I/O, recvmsg receive path: tests/vm/nvmet_fake.py misbehaves once during fio
# verify on I/O queue 1 (a C2HData out of range, a bad digest, an R2T past the data or unsolicited, a Response
# twice or one byte every 100 ms, a C2HTermReq, a close, reset or stall mid-PDU, a bad ICResp, ...; the table
# is Documentation/hostile-targets.md, the cases tests/vm/hostile_io.sh): each case logs its line naming the
# queue, fio ends (the controller recovers on a reconnect to the now well-behaved target), no oops, KASAN or
# lockdep report, no controller is left, and the module unloads. make check runs a third of the cases here (the others in t42 and
# t43: each case in one mode); HOSTILE_FULL=1 in the guest runs all of them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/hostile_io.sh"
hostile_run recvmsg
