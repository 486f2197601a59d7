#!/bin/bash
# The hostile-target cases of t41-hostile-io (tests/vm/hostile_io.sh) with rnvme_tcp read_sock=1: skbs from
# the socket's receive queue go through the same receive machine; the same line for each case, fio ends, no
# controller is left, the module unloads.
# make check runs a third of the cases here (see t41); HOSTILE_FULL=1 runs all of them.
. "$(dirname "$0")/lib.sh"
HOSTILE_PORT=4640
. "$(dirname "$0")/hostile_io.sh"
hostile_run read_sock
