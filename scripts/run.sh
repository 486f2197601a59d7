#!/usr/bin/env bash
# make run: set up what is missing, build the module, boot the VM and show
# the Rust transport and the target (tests/vm/demo.sh), console on screen.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RNVME_ROOT"
bash scripts/setup.sh all
step "module: make module"
make --no-print-directory module
# DEMO_FIO_ARGS: extra fio options for the demo's job (e.g. --verify_only, which
# reads blocks never written: a verify failure that must fail make run).
exec qemu/run-vm.sh --timeout "${RNVME_RUN_TIMEOUT:-600}" --out build/run -- \
	${DEMO_FIO_ARGS:+DEMO_FIO_ARGS="'$DEMO_FIO_ARGS'"} bash tests/vm/demo.sh
