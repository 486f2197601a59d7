#!/usr/bin/env bash
# Host tests of the no_std protocol core (PDU layouts, header validation,
# receive state machine) with cargo test; no VM needed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
mkdir -p "$RNVME_ROOT/build"
step "host: cargo test (rust/proto)"
cd "$RNVME_ROOT/rust/proto"
cargo test 2>&1 | tee "$RNVME_ROOT/build/host-test.log"
