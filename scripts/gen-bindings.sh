#!/usr/bin/env bash
# Generates the module-local Rust bindings for what the kernel's `bindings`
# crate lacks (nvme-core's private nvme.h/fabrics.h, nvme-tcp.h, the C
# helpers), with the exact clang flags the kernel used for its own bindings
# (from rust/bindings/.bindings_generated.rs.cmd in the build tree).
#
#   gen-bindings.sh [--net] OBJTREE SRCTREE HEADER OUT
#
# --net: the socket layer instead (rust/sys/net.h): `struct sock`, which the
# kernel's crate has only as an opaque type, and the socket calls the
# module makes. With layout tests: `socket_lock_t` uses a tagged anonymous
# struct (-fms-extensions), `struct slock_owned`, that bindgen leaves out of
# its union, so the union comes out too small: `socket_lock_t` is opaque
# here (right size), `slock_owned` is generated on its own (it starts the
# union, which starts `socket_lock_t`), and the tests prove at compile time
# that every field of `struct sock` sits where C has it.
#
# Types that are not ours are not generated: they resolve to the kernel's
# `bindings` crate (`--no-recursive-allowlist`), so a `*mut device` here is
# the same type as `kernel::bindings::device`.
set -euo pipefail
net=0
[ "${1-}" = --net ] && { net=1; shift; }
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
if [ $net = 1 ]; then
	what=(
	--allowlist-type 'sock' --allowlist-type 'sock__bindgen_.*'
	--allowlist-type 'sock_common' --allowlist-type 'sock_common__bindgen_.*'
	--allowlist-type 'socket_lock_t' --opaque-type 'socket_lock_t'
	--allowlist-type '__addrpair|__portpair'
	--allowlist-type 'proto|sk_filter|sock_reuseport|numa_drop_counters'
	--opaque-type 'proto|sk_filter|sock_reuseport|numa_drop_counters'
	--blocklist-type '(proto|sk_filter|sock_reuseport|numa_drop_counters)__bindgen_.*'
	--allowlist-type 'socket_lock_t__bindgen_ty_1_slock_owned'
	--blocklist-type 'socket_lock_t__bindgen_ty_1'
	--allowlist-function 'tcp_sock_set_syncnt'
	--allowlist-function 'tcp_sock_set_nodelay'
	--allowlist-function 'sock_no_linger'
	--allowlist-function 'ip_sock_set_tos'
	--allowlist-function 'sk_set_memalloc'
	--allowlist-function 'sk_net_refcnt_upgrade'
	--allowlist-function 'sock_setsockopt'
	--allowlist-function 'do_sock_setsockopt'
	--allowlist-function 'dev_get_by_name_rcu'
	--allowlist-function 'lock_sock_nested'
	--allowlist-function 'release_sock'
	--allowlist-var 'TCP_(ESTABLISHED|SYN_SENT|SYN_RECV|FIN_WAIT1|FIN_WAIT2|TIME_WAIT|CLOSE|CLOSE_WAIT|LAST_ACK|LISTEN|CLOSING)'
	--allowlist-var 'RCV_SHUTDOWN'
	)
	layout=()
else
	what=(
	--allowlist-type 'nvme_.*'
	--allowlist-type 'nvmf_.*'
	--allowlist-type 'opal_dev' --opaque-type 'opal_dev'
	--allowlist-function 'nvmf_register_transport'
	--allowlist-function 'nvmf_unregister_transport'
	--allowlist-function 'rnvme_.*'
	--allowlist-type 'rnvme_.*'
	--allowlist-function 'nvme_.*'
	--allowlist-function 'nvmf_.*'
	--allowlist-var 'NVME_.*'
	--allowlist-var 'nvme_delete_wq'
	--allowlist-var 'NVMF_OPT_.*'
	--allowlist-var 'NVME_TCP_.*'
	--allowlist-type 'tls_handshake_args'
	--allowlist-type 'tls_done_func_t'
	--allowlist-function 'tls_client_hello_psk'
	--allowlist-function 'tls_handshake_cancel'
	--allowlist-function 'tls_handshake_close'
	--allowlist-function 'tls_get_record_type'
	--allowlist-function 'crc32c'
	)
	layout=(--no-layout-tests)
fi
"$BINDGEN" "$header" \
	--use-core --ctypes-prefix kernel::prelude "${layout[@]}" --no-doc-comments \
	--rust-target 1.85 --with-derive-default --no-debug '.*' \
	--no-recursive-allowlist "${what[@]}" \
	-o "$outabs.tmp" -- "$@" -I"$srctree/drivers/nvme/host" -I"$(dirname "$header")"
mv "$outabs.tmp" "$outabs"
