#!/usr/bin/env bash
# qemu/fio-stubs.sh ROOTDIR: called by qemu/rootfs.sh on the unpacked image.
#
# Debian's fio links every optional I/O engine's library: Ceph (librados,
# librbd), GlusterFS, libnfs, libnbd, PMDK and RDMA. The binary is built with
# BIND_NOW, so every start maps them all, resolves every symbol and runs
# their constructors: in the test VM (TCG, KASAN) `fio --version` took
# 4.2-7.5 s with them and 2.6-3.0 s without, and a suite starts fio about a
# hundred times. The tests use only the libaio, psync and sync engines, so
# the guest's /usr/bin/fio is a wrapper that runs Debian's binary (moved,
# unchanged, to /usr/libexec/fio.debian) with a directory of stubs first on
# the library path: for each of those libraries one that defines exactly the
# functions fio imports from it, with the symbol versions fio asks for, each
# of which names itself and exits 1. The real libraries stay installed;
# /usr/libexec/fio.debian run directly uses them.
set -euo pipefail
root=$1
libdir=$root/usr/lib/x86_64-linux-gnu
stubdir=/usr/local/lib/fio-stubs
out=$root$stubdir
fio=$root/usr/bin/fio
[ -x "$fio" ] || { echo "fio-stubs: no $fio" >&2; exit 1; }
mkdir -p "$out" "$root/usr/libexec"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Every symbol fio imports, NAME or NAME@VERSION.
nm -D --undefined-only "$fio" | awk '{ print $2 }' >"$work/imports"
for so in librados.so.2 librbd.so.1 libgfapi.so.0 libnfs.so.14 libnbd.so.0 libpmem.so.1 libibverbs.so.1 librdmacm.so.1; do
	real=$(readlink -f "$libdir/$so")
	[ -f "$real" ] || { echo "fio-stubs: $so not in the image (does fio still link it?)" >&2; exit 1; }
	nm -D --defined-only "$real" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort -u >"$work/defined"
	# fio's imports that this library defines, as fio names them.
	awk 'NR == FNR { d[$1] = 1; next } { n = $1; sub(/@.*/, "", n); if (n in d) print }' \
		"$work/defined" "$work/imports" >"$work/$so.syms"
	[ -s "$work/$so.syms" ] || { echo "fio-stubs: fio imports nothing from $so" >&2; exit 1; }
	{
		echo '#include <stdio.h>'
		echo '#include <stdlib.h>'
		echo "static void stub(const char *f) { fprintf(stderr, \"fio: %s: $so is a stub in this VM (qemu/fio-stubs.sh); /usr/libexec/fio.debian has the real one\\n\", f); exit(1); }"
		sed 's/@.*//' "$work/$so.syms" | awk '{ printf "void %s(void) { stub(\"%s\"); }\n", $1, $1 }'
	} >"$work/$so.c"
	# One version node per version fio asks for; a library fio imports
	# from without versions gets an anonymous one.
	awk '{ v = "-"; n = $1; if (index(n, "@")) { v = substr(n, index(n, "@") + 1); n = substr(n, 1, index(n, "@") - 1) }
	       s[v] = s[v] " " n ";" }
	     END { if (length(s) == 1 && ("-" in s)) { printf "{\n global:%s\n local: *;\n};\n", s["-"]; exit }
	           if ("-" in s) { print "fio-stubs: versioned and unversioned imports mixed" > "/dev/stderr"; exit 1 }
	           first = 1; for (v in s) { printf "%s {\n global:%s\n%s};\n", v, s[v], first ? " local: *;\n" : ""; first = 0 } }' \
		"$work/$so.syms" >"$work/$so.map"
	gcc -O2 -shared -fPIC -Wl,-soname,"$so" -Wl,--version-script="$work/$so.map" -o "$out/$so" "$work/$so.c"
done
mv "$fio" "$root/usr/libexec/fio.debian"
{
	echo '#!/bin/sh'
	echo '# Debian fio (/usr/libexec/fio.debian, unchanged) with its optional engines'
	echo "# libraries stubbed out: see qemu/fio-stubs.sh in rnvme-tcp."
	echo "LD_LIBRARY_PATH=$stubdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} exec /usr/libexec/fio.debian \"\$@\""
} >"$fio"
chmod 0755 "$fio"
