#!/usr/bin/env bash
# Fails when a module build log has a warning or an error: rustc and clippy
# ("warning:" at the start of a line), the C compiler ("file:line:col:
# warning:") and modpost ("WARNING: modpost:").
#   scripts/build-warnings.sh LOG
set -uo pipefail
log=$1
[ -s "$log" ] || { echo "build: no build log at $log" >&2; exit 1; }
pat='^(warning|error)(\[[A-Za-z0-9_:]+\])?:|^[^ :]+:[0-9]+(:[0-9]+)?: (warning|error):|^WARNING: |^ERROR: '
hits=$(grep -E -c -- "$pat" "$log")
[ "${hits:-0}" -eq 0 ] && exit 0
echo "build: $hits warning/error lines in $log:" >&2
grep -E -A6 -- "$pat" "$log" | head -n 60 >&2
exit 1
