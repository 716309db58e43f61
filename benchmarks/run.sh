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

echo
echo "== non-private training step on the reference GPT (DESIGN.md §8): dpft, then PyTorch, same run"
peak_rss "$bin" bench step
peak_rss "$bin" bench step --lora-rank 8
if [ -x tools/.venv/bin/python ]; then
    peak_rss tools/.venv/bin/python tools/bench_torch_step.py
    peak_rss tools/.venv/bin/python tools/bench_torch_step.py --lora-rank 8
else
    echo "  (PyTorch side skipped: run tools/setup-venv.sh to install it into tools/.venv)"
fi
