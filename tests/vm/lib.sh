# Shared set-up for the VM tests; sourced by every tests/vm/t*.sh.
# A test prints "# ..." diagnostics, exits 0 (pass), 1 (fail) or 4 (skip,
# after printing "SKIP: reason"). Cleanups registered with on_exit run in
# reverse order even when the test fails.
# shellcheck shell=bash
set -u

NQN=${NQN:-nqn.2026-11.io.rnvme:test}
TRADDR=127.0.0.1
TRSVCID=${TRSVCID:-4420}
NVMET=/sys/kernel/config/nvmet
KVER=$(uname -r)
C_NVME_TCP=/lib/modules/$KVER/kernel/drivers/nvme/host/nvme-tcp.ko

_cleanups=()
on_exit() { _cleanups+=("$*"); }
_run_cleanups() {
	local i
	for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
		eval "${_cleanups[$i]}" >/dev/null 2>&1 || true
	done
}
trap _run_cleanups EXIT

log()  { printf '# %s\n' "$*"; }
fail() { printf '# FAIL: %s\n' "$*"; exit 1; }
skip() { printf 'SKIP: %s\n' "$*"; exit 4; }
# Runs a command, showing it and its output as diagnostics.
run()  { log "\$ $*"; "$@" 2>&1 | sed 's/^/#   /'; return "${PIPESTATUS[0]}"; }

# Marks in the kernel log, so a test looks only at what came after them:
# the test's own start (set when this file is sourced) and any later mark.
# No assertion reads the whole log: earlier tests used the same names.
_test_start="rnvme-test-start-$RANDOM$RANDOM"
echo "$_test_start" >/dev/kmsg 2>/dev/null
dmesg_since_test() { dmesg | sed -n "/$_test_start/,\$p"; }
dmesg_mark() { _mark="rnvme-test-mark-$RANDOM$RANDOM"; echo "$_mark" >/dev/kmsg; }
dmesg_since_mark() { dmesg | sed -n "/$_mark/,\$p"; }

# The transport modules. Only one "tcp" transport may be registered.
mod_loaded() { [ -d "/sys/module/$1" ]; }
# The C module is removed with rmmod: for modprobe, "nvme_tcp" means rnvme_tcp.
unload_transports() {
	mod_loaded rnvme_tcp && modprobe -r rnvme_tcp
	mod_loaded nvme_tcp && rmmod nvme_tcp
	! mod_loaded rnvme_tcp && ! mod_loaded nvme_tcp
}
use_rust_driver() {
	mod_loaded nvme_tcp && { rmmod nvme_tcp || return 1; }
	mod_loaded rnvme_tcp || modprobe rnvme_tcp
}
# The C driver, loaded by path: modprobe's "nvme-tcp" resolves to rnvme_tcp.
use_c_driver() {
	mod_loaded rnvme_tcp && { modprobe -r rnvme_tcp || return 1; }
	mod_loaded nvme_tcp && return 0
	local dep
	for dep in $(modinfo -F depends "$C_NVME_TCP" | tr ',' ' '); do modprobe "$dep" || return 1; done
	insmod "$C_NVME_TCP"
}

# nvmet-tcp target on 127.0.0.1:$TRSVCID exporting a memory-backed brd disk.
target_up() {
	modprobe brd rd_nr=2 rd_size="${RD_SIZE_KB:-524288}" max_part=0 || return 1
	modprobe nvmet-tcp || return 1
	mkdir "$NVMET/subsystems/$NQN" || return 1
	on_exit target_down
	echo 1 >"$NVMET/subsystems/$NQN/attr_allow_any_host"
	mkdir "$NVMET/subsystems/$NQN/namespaces/1"
	echo -n /dev/ram0 >"$NVMET/subsystems/$NQN/namespaces/1/device_path"
	echo 1 >"$NVMET/subsystems/$NQN/namespaces/1/enable" || return 1
	mkdir "$NVMET/ports/1"
	echo ipv4 >"$NVMET/ports/1/addr_adrfam"
	echo tcp >"$NVMET/ports/1/addr_trtype"
	echo "$TRADDR" >"$NVMET/ports/1/addr_traddr"
	echo "$TRSVCID" >"$NVMET/ports/1/addr_trsvcid"
	# TLS 1.3 only (treq becomes "required"), PSKs from the .nvme keyring.
	if [ "${TARGET_TLS:-0}" = 1 ]; then echo tls1.3 >"$NVMET/ports/1/addr_tsas" || return 1; fi
	ln -s "$NVMET/subsystems/$NQN" "$NVMET/ports/1/subsystems/$NQN" || return 1
}
target_down() {
	nvme disconnect -n "$NQN" >/dev/null 2>&1
	rm -f "$NVMET/ports/1/subsystems/$NQN"
	rmdir "$NVMET/ports/1" 2>/dev/null
	[ -d "$NVMET/subsystems/$NQN/namespaces/1" ] && echo 0 >"$NVMET/subsystems/$NQN/namespaces/1/enable"
	rmdir "$NVMET/subsystems/$NQN/namespaces/1" 2>/dev/null
	rmdir "$NVMET/subsystems/$NQN" 2>/dev/null
	modprobe -r nvmet-tcp nvmet 2>/dev/null
	modprobe -r brd 2>/dev/null
	return 0
}
# TLS 1.3 on the nvmet port: a retained PSK for ($(hostnqn), $NQN) in the
# .nvme keyring (nvme gen-tls-key --insert), tlshd serving the handshake
# upcalls of both sides (no systemd in the VM: started here, stopped by
# on_exit). Call before target_up; target_up then requires TLS on its port.
tls_up() {
	local conf=/tmp/tlshd.conf i
	# The .nvme keyring exists once nvme-keyring is loaded.
	modprobe nvme-keyring || return 1
	nvme gen-tls-key --subsysnqn="$NQN" --hostnqn="$(cat /etc/nvme/hostnqn)" --insert >/tmp/tls-key.txt 2>&1 ||
		{ sed 's/^/# gen-tls-key: /' /tmp/tls-key.txt; return 1; }
	keyctl show %:.nvme 2>/dev/null | grep -q 'NVMe' || { log "no PSK in the .nvme keyring"; return 1; }
	printf '[debug]\nloglevel=1\ntls=0\nnl=0\n[authenticate]\nkeyrings=.nvme\n[authenticate.client]\n[authenticate.server]\n' >"$conf"
	tlshd -c "$conf" -s >/tmp/tlshd.log 2>&1 &
	_tlshd_pid=$!
	on_exit tls_down
	for i in $(seq 20); do kill -0 $_tlshd_pid 2>/dev/null || { sed 's/^/# tlshd: /' /tmp/tlshd.log; return 1; }; sleep 0.1; done
	TARGET_TLS=1
}
tls_down() {
	[ -n "${_tlshd_pid:-}" ] && kill "$_tlshd_pid" 2>/dev/null
	keyctl clear %:.nvme 2>/dev/null
	return 0
}
target_listening() { grep -q ":$(printf '%04X' "$TRSVCID") 00000000:0000 0A" /proc/net/tcp; }

# The nvme controller (nvmeN) connected to $NQN over tcp, if any.
ctrl_for_nqn() {
	local c
	for c in /sys/class/nvme/nvme*; do
		[ -e "$c/subsysnqn" ] || continue
		[ "$(cat "$c/subsysnqn")" = "$NQN" ] && [ "$(cat "$c/transport")" = tcp ] && { basename "$c"; return 0; }
	done
	return 1
}
# The first namespace block device of controller $1, waiting for udev-less
# device creation.
ns_dev_of() {
	local i d
	for i in $(seq 50); do
		for d in /sys/class/nvme/"$1"/"$1"n*; do
			[ -e "$d" ] && [ -b "/dev/$(basename "$d")" ] && { echo "/dev/$(basename "$d")"; return 0; }
		done
		sleep 0.2
	done
	return 1
}

# fio with its summary lines as diagnostics; fails on any fio error. Several
# jobs (each from its own --name=) may share one fio run: starting fio costs
# seconds in the guest. Each of them must report err= 0.
run_fio() {
	local out rc want=0 a
	for a in "$@"; do case $a in --name=*) want=$((want + 1)) ;; esac; done
	log "\$ fio $*"
	out=$(fio --verify_state_save=0 "$@" 2>&1); rc=$?
	grep -E 'err=|READ:|WRITE:|verify|fio:' <<<"$out" | sed 's/^ */#   /'
	[ $rc -eq 0 ] || return $rc
	# A job that did no I/O (say, an offset past the end) reports no err= line.
	[ "$(grep -c 'err= 0' <<<"$out")" -ge "$want" ] || { log "fio: fewer than $want jobs reported err= 0"; return 1; }
}

# The controller for $NQN is served by rnvme_tcp: the C driver is not
# loaded, each Rust controller holds a reference on rnvme_tcp, and nvme-core
# logged our "new ctrl" line for it.
assert_rust_ctrl() {
	local ctrl=$1
	mod_loaded nvme_tcp && { log "the C nvme_tcp is loaded"; return 1; }
	grep -q "^$ctrl qid 0 " /sys/kernel/debug/rnvme_tcp/queues 2>/dev/null || { log "rnvme_tcp's debugfs lists no $ctrl"; return 1; }
	dmesg_since_test | grep -q "nvme $ctrl: new ctrl: NQN \"$NQN\".*(rnvme_tcp, \(recvmsg\|read_sock\) receive path)" || { log "no rnvme_tcp new-ctrl line for $ctrl"; return 1; }
}

# A connect written straight to /dev/nvme-fabrics with the extra options $1
# must fail, and the kernel log since the mark must have a line matching $2
# (shown as a diagnostic).
expect_refused() {
	local extra=$1 pattern=$2 line
	log "\$ echo transport=tcp,...,$extra > /dev/nvme-fabrics"
	if echo "transport=tcp,traddr=$TRADDR,trsvcid=$TRSVCID,nqn=$NQN,$extra" >/dev/nvme-fabrics 2>/dev/null; then
		log "the connect with $extra succeeded"
		return 1
	fi
	line=$(dmesg_since_mark | grep -o -- "$pattern.*" | head -n1)
	[ -n "$line" ] || { log "no kernel log line matching '$pattern'"; return 1; }
	log "$line"
}

# Connects with the Rust transport; prints the controller name.
rust_connect() {
	use_rust_driver || return 1
	nvme connect -t tcp -a "$TRADDR" -s "$TRSVCID" -n "$NQN" "$@" >/dev/null || return 1
	ctrl_for_nqn
}

# kmemleak, for the tests marked "# needs: kmemleak" (scripts/test-vm.sh
# boots their VM with it on). kmemleak reports an object that two scans
# found unreferenced and that is older than 5 s; a scan of this guest costs
# about 20 s. Only objects allocated after kmemleak_begin count (the
# "jiffies" of each report against /proc/timer_list's), so what boot and
# earlier tests left behind needs no scans of its own.
KL=/sys/kernel/debug/kmemleak
_lib_dir=$(dirname "${BASH_SOURCE[0]}")
_jiffies_now() { awk '/^jiffies:/ { print $2; exit }' /proc/timer_list 2>/dev/null; }
kmemleak_begin() {
	[ -w $KL ] || { log "no $KL (the test kernel has CONFIG_DEBUG_KMEMLEAK)"; return 1; }
	_kl_since=$(_jiffies_now)
	[ -n "$_kl_since" ] && return 0
	# No jiffies to compare: report what is there now, then forget it.
	sleep 6; echo scan >$KL; echo scan >$KL; echo clear >$KL; _kl_since=0
}
# kmemleak_check LABEL [ERE]: fails when an object allocated since
# kmemleak_begin is unreferenced and one of its frames is in host nvme code
# ([rnvme_tcp], [nvme_core], [nvme_fabrics]; the target's nvmet frames are
# not ours), or matches ERE instead when given (awk syntax, as below).
# After an unload rnvme_tcp's own frames lose their names, but what it
# allocated at connect still shows nvme-fabrics' nvmf_dev_write.
kmemleak_check() {
	local report total ours
	sleep 6
	echo scan >$KL; echo scan >$KL
	report=$(awk -v since="$_kl_since" -f "$_lib_dir/kmemleak-since.awk" $KL)
	total=$(grep -c '^unreferenced object' <<<"$report")
	ours=$(awk -v re="${2:-\\\\[(rnvme_tcp|nvme_core|nvme_fabrics)\\\\]}" \
		'/^unreferenced object/ { if (rec ~ re) n++; rec = "" } { rec = rec "\n" $0 } END { if (rec ~ re) n++; print n + 0 }' \
		<<<"$report")
	log "kmemleak $1: $total unreferenced objects allocated since the test began, $ours from host nvme code"
	[ "$total" -gt 0 ] && sed 's/^/#   /' <<<"$report" | head -n 60
	[ "$ours" -eq 0 ] || { log "FAIL: leak found $1: $ours objects"; return 1; }
}

# start_fake_targets BASE MODE...: one tests/vm/fake_target.py process (a
# Python start costs seconds in the guest) serving the i-th MODE on port
# BASE+i, stopped when the test ends; fills the caller's associative array
# port_of[MODE].
start_fake_targets() {
	local base=$1 i; shift
	local modes=("$@")
	for i in "${!modes[@]}"; do port_of[${modes[i]}]=$((base + i)); done
	python3 "$_lib_dir/fake_target.py" "$base" "${modes[@]}" >/tmp/fake-target.log 2>&1 &
	on_exit kill $!
	for i in $(seq 300); do grep -q listening /tmp/fake-target.log && return 0; sleep 0.1; done
	sed 's/^/# fake: /' /tmp/fake-target.log
	return 1
}
