#!/usr/bin/env bash
# Scans kernel logs for problems (tests/kernel-problems.ere).
#   scripts/console-scan.sh REPORT FILE...
# Writes every matching line (file:line:text) to REPORT and prints the first
# 20; exits 1 when there is any, 0 when there is none. The whole scan lands in
# a file before anything is cut short, so a log with many problems can never
# read as clean (a `grep | head` under pipefail did: grep died of SIGPIPE).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
report=$1; shift
ere=$(grep -v '^#' "$root/tests/kernel-problems.ere")
files=()
for f in "$@"; do [ -f "$f" ] && files+=("$f"); done
: >"$report"
[ ${#files[@]} -gt 0 ] || exit 0
grep -E -n -H -- "$ere" "${files[@]}" >"$report"
case $? in 0|1) ;; *) echo "console-scan: grep failed" >&2; exit 2 ;; esac
[ -s "$report" ] || exit 0
n=$(wc -l <"$report")
echo "kernel problems in the log ($n lines, all in $report):" >&2
head -n 20 "$report" | sed 's/^/    /' >&2
exit 1
