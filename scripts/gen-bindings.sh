#!/usr/bin/env bash
# Generates the module-local Rust bindings for what the kernel's `bindings`
# crate lacks (nvme-core's private nvme.h/fabrics.h, nvme-tcp.h, the C
# helpers), with the exact clang flags the kernel used for its own bindings
# (from rust/bindings/.bindings_generated.rs.cmd in the build tree).
#
#   gen-bindings.sh OBJTREE SRCTREE HEADER OUT
#
# Types that are not ours are not generated: they resolve to the kernel's
# `bindings` crate (`--no-recursive-allowlist`), so a `*mut device` here is
# the same type as `kernel::bindings::device`.
set -euo pipefail
objtree=$1 srctree=$2 header=$(realpath "$3") out=$4
cmdfile=$objtree/rust/bindings/.bindings_generated.rs.cmd
[ -f "$cmdfile" ] || { echo "gen-bindings: $cmdfile missing: is $objtree a Rust-enabled build tree?" >&2; exit 1; }
BINDGEN=${BINDGEN:-bindgen}
command -v "$BINDGEN" >/dev/null || BINDGEN=$HOME/.cargo/bin/bindgen
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}

# The clang half of the kernel's command: after " -- ", before "; sed".
clang_flags=$(head -n1 "$cmdfile" | sed -e 's/^[^ ]* := //' -e 's/.* -- //' -e 's/ ; .*//' -e 's/-Wp,-MMD,[^ ]*//')
eval "set -- $clang_flags"

outabs=$(realpath -m "$out")
mkdir -p "$(dirname "$outabs")"
cd "$objtree"
"$BINDGEN" "$header" \
	--use-core --ctypes-prefix kernel::prelude --no-layout-tests --no-doc-comments \
	--rust-target 1.85 --with-derive-default --no-debug '.*' \
	--no-recursive-allowlist \
	--allowlist-type 'nvme_.*' \
	--allowlist-type 'nvmf_.*' \
	--allowlist-type 'opal_dev' --opaque-type 'opal_dev' \
	--allowlist-function 'nvmf_register_transport' \
	--allowlist-function 'nvmf_unregister_transport' \
	--allowlist-function 'rnvme_.*' \
	--allowlist-type 'rnvme_.*' \
	--allowlist-function 'nvme_.*' \
	--allowlist-function 'nvmf_.*' \
	--allowlist-var 'NVME_.*' \
	--allowlist-var 'nvme_delete_wq' \
	--allowlist-var 'NVMF_OPT_.*' \
	--allowlist-var 'NVME_TCP_.*' \
	--allowlist-type 'tls_handshake_args' \
	--allowlist-type 'tls_done_func_t' \
	--allowlist-function 'tls_client_hello_psk' \
	--allowlist-function 'tls_handshake_cancel' \
	--allowlist-function 'tls_handshake_close' \
	--allowlist-function 'tls_get_record_type' \
	-o "$outabs.tmp" -- "$@" -I"$srctree/drivers/nvme/host" -I"$(dirname "$header")"
mv "$outabs.tmp" "$outabs"
