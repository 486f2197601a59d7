# Prints the records of a kmemleak report (/sys/kernel/debug/kmemleak) of
# objects allocated at or after jiffies `since` (awk -v since=N): the report
# lists every unreferenced object found since boot, earlier tests' included.
# Used by kmemleak_check in lib.sh; tests/harness/selftest.sh checks it.
function flush() { if (inrec && j + 0 >= since + 0) printf "%s", rec }
/^unreferenced object/ { flush(); inrec = 1; rec = ""; j = -1 }
inrec && /^  comm ".*", pid [0-9]+, jiffies [0-9]+/ { j = $NF }
inrec { rec = rec $0 "\n" }
END { flush() }
