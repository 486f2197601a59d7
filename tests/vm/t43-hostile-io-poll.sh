#!/bin/bash
# The hostile-target cases of t41-hostile-io (tests/vm/hostile_io.sh) on a poll queue: connect with
# --nr-io-queues=1 --nr-poll-queues=1, fio io_uring --hipri, the fake target misbehaves on the poll queue
# (qid 2), whose completions blk-mq's poll callback reaps; each case logs its line naming queue 2, fio ends,
# no controller is left, the module unloads.
# make check runs a third of the cases here (see t41); HOSTILE_FULL=1 runs all of them.
. "$(dirname "$0")/lib.sh"
HOSTILE_PORT=4680
. "$(dirname "$0")/hostile_io.sh"
hostile_run poll
