#!/usr/bin/env bash
# Checks the monitoring CSV of `make monitor-demo` (file in $1, or stdin):
# the header has the walker plan's six columns and the frame figures; there
# is at least one row; every row has the header's field count; the six plan
# columns and the frame figures are numbers in their ranges (ratios of
# thread-time and of lock acquisitions in [0, 1], the speed-up in
# (0, cores + 5 %], p50 <= p99 <= max, at least one frame, no emergency stop).
# Prints one line per failed check and a closing "N rows ok" line.
set -euo pipefail
cores=$(nproc 2>/dev/null || echo 1)
awk -F, -v cores="$cores" '
function fail(msg) { print "monitor-csv: " msg > "/dev/stderr"; bad = 1 }
function num(v) { return v ~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ }
NR == 1 {
    for (i = 1; i <= NF; i++) col[$i] = i
    n = split("thread_pool_utilization ai_thread_efficiency stats_thread_efficiency background_thread_efficiency lock_contention_rate parallel_speedup_ratio timestamp frames fps p50_ms p99_ms max_ms under_budget_share emergency_stop", need, " ")
    for (k = 1; k <= n; k++) if (!(need[k] in col)) fail("header lacks " need[k])
    fields = NF
    next
}
{
    rows++
    if (NF != fields) { fail("row " rows ": " NF " fields, header has " fields); next }
    for (k = 1; k <= n; k++) {
        v = $(col[need[k]])
        if (!num(v)) fail("row " rows ": " need[k] " = \"" v "\" is not a number")
    }
    split("thread_pool_utilization ai_thread_efficiency stats_thread_efficiency background_thread_efficiency lock_contention_rate under_budget_share", unit, " ")
    for (k in unit) { v = $(col[unit[k]]) + 0; if (v < 0 || v > 1) fail("row " rows ": " unit[k] " = " v " outside [0, 1]") }
    s = $(col["parallel_speedup_ratio"]) + 0
    if (s <= 0 || s > cores * 1.05) fail("row " rows ": parallel_speedup_ratio = " s " outside (0, " cores " cores]")
    if ($(col["frames"]) + 0 < 1 || $(col["fps"]) + 0 <= 0) fail("row " rows ": no frames")
    p50 = $(col["p50_ms"]) + 0; p99 = $(col["p99_ms"]) + 0; mx = $(col["max_ms"]) + 0
    if (!(p50 > 0 && p50 <= p99 && p99 <= mx)) fail("row " rows ": p50 " p50 " p99 " p99 " max " mx " out of order")
    if ($(col["emergency_stop"]) != "0") fail("row " rows ": emergency stop")
}
END {
    if (NR < 1) fail("empty output")
    else if (rows < 1) fail("no row after the header")
    if (bad) exit 1
    print rows " rows ok"
}' "${1:-/dev/stdin}"
