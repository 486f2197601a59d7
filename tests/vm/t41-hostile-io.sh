#!/bin/bash
# Hostile target during real I/O, recvmsg receive path: tests/vm/nvmet_fake.py misbehaves once during fio
# verify on I/O queue 1 (a C2HData out of range or after a held completion, a bad digest, an R2T past the data
# or unsolicited, a Response twice or one byte every 100 ms, a C2HTermReq, a close, reset or stall mid-PDU, a
# bad ICResp, ...; the table is Documentation/hostile-targets.md, the cases tests/vm/hostile_io.sh): a third of the cases in make check (each case in one of the three modes; HOSTILE_FULL=1: all),
# in batches, each on its own controller, logs its line naming the queue, fio ends (the controller recovers on
# a reconnect to the now well-behaved target), no oops, KASAN or lockdep report, no controller is left; then a
# connect to the real nvmet target passes fio verify, the module unloads and kmemleak finds no leak from host
# nvme code since the test began. t42 (read_sock=1) and t43 (a poll queue) run the same cases.
# needs: kmemleak
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/hostile_io.sh"
hostile_run recvmsg
