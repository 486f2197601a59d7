#!/bin/bash
# The hostile-target cases of t41-hostile-io (tests/vm/hostile_io.sh), a third of them in make check, with rnvme_tcp read_sock=1:
# skbs from the socket's receive queue go through the same receive machine; the same line for each case, fio
# ends, no controller is left, nvmet fio verify after them, the module unloads, kmemleak clean.
# needs: kmemleak
. "$(dirname "$0")/lib.sh"
HOSTILE_PORT=4640
. "$(dirname "$0")/hostile_io.sh"
hostile_run read_sock
