#!/usr/bin/env bash
# Release-build benchmarks. Each line is measured in this one run (the machine is shared and
# noisy: compare ratios within a run, not across runs). Peak RSS from /usr/bin/time -v.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/dpft

peak_rss() {  # command... → prints "peak RSS N MiB" after the command's own output
    local log
    log=$(mktemp)
    /usr/bin/time -v "$@" 2>"$log"
    awk -F': ' '/Maximum resident set size/ { printf "  peak RSS %.1f MiB\n", $2 / 1024 }' "$log"
    rm -f "$log"
}

echo "== sgemm (dpft's automatic OpenBLAS core vs the Prescott fallback, same run)"
peak_rss "$bin" bench gemm
