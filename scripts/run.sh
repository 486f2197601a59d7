#!/usr/bin/env bash
# make run: set up what is missing, build the module, boot the VM and show
# the Rust transport and the target (tests/vm/demo.sh), console on screen.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$RNVME_ROOT"
bash scripts/setup.sh all
step "module: make module"
make --no-print-directory module
exec qemu/run-vm.sh --timeout "${RNVME_RUN_TIMEOUT:-600}" --out build/run -- bash tests/vm/demo.sh
