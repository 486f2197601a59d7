#!/bin/bash
# The hostile-target cases of t41-hostile-io (tests/vm/hostile_io.sh), a third of them in make check, on a poll queue: connect with
# nr_io_queues=1,nr_poll_queues=1, fio io_uring --hipri, the fake target misbehaves on the poll queue (qid 2),
# whose completions blk-mq's poll callback reaps; each case logs its line naming queue 2, fio ends, no
# controller is left, nvmet fio verify (on a poll queue) after them, the module unloads, kmemleak clean.
# needs: kmemleak
. "$(dirname "$0")/lib.sh"
HOSTILE_PORT=4680
. "$(dirname "$0")/hostile_io.sh"
hostile_run poll
