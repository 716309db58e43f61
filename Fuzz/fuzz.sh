#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for RUNS executions each, one at a time, starting
# from its committed seed corpus (Fuzz/Corpus/<target>/), and prints a summary line per target.
# Called by `make fuzz` after the instrumented build; see README "Fuzzing".
#
#   Fuzz/fuzz.sh [target ...]        RUNS=1000000 by default; FUZZ_FLAGS adds libFuzzer flags
#
# The working corpus (seeds plus what libFuzzer adds) and any crash, timeout or out-of-memory
# input go to Fuzz/work/ (git-ignored); an input worth keeping is copied to Fuzz/Corpus/<target>/
# by hand as crash-*, timeout-* or oom-*, and the corpus replay test then checks it.
set -euo pipefail
cd "$(dirname "$0")"

RUNS=${RUNS:-1000000}
BINARY=.build/release/dpft-fuzz
ALL_TARGETS=(safetensors json jsonl recipe rules config plugin)
TARGETS=("${@:-${ALL_TARGETS[@]}}")

# Longest input per target: a few times the largest seed, so mutations can grow an input.
max_len() {
    case "$1" in
        jsonl|recipe) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

# Swift's own crash reporter would catch the signal before libFuzzer could save the input.
export SWIFT_BACKTRACE=enable=no
# Leak checking stays off: Swift's lazily initialised globals and Foundation's caches read as
# leaks at exit. Memory that grows per input is still caught by -rss_limit_mb.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}

mkdir -p work/artifacts work/logs
summary=()
status=0
for target in "${TARGETS[@]}"; do
    rm -rf "work/corpus/$target" && mkdir -p "work/corpus/$target"
    log="work/logs/$target.log"
    echo "== $target: $RUNS runs (log: Fuzz/$log)"
    start=$(date +%s)
    if DPFT_FUZZ_TARGET="$target" "$BINARY" "work/corpus/$target" "Corpus/$target" \
        -runs="$RUNS" -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=2048 \
        -detect_leaks=0 -print_final_stats=1 -artifact_prefix="work/artifacts/$target-" \
        ${FUZZ_FLAGS:-} >"$log" 2>&1; then
        result=ok
    else
        result="FAILED (artifact in Fuzz/work/artifacts/)"
        status=1
    fi
    if grep -q 'Is the code instrumented for coverage' "$log"; then
        result="FAILED (no coverage: the parsers were built without -sanitize=fuzzer)"
        status=1
    fi
    # Wall-clock seconds: libFuzzer's own timer read 0 s for long runs on this machine.
    seconds=$(( $(date +%s) - start ))
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
    cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+)\/([0-9]+[a-zA-Z]*).*/cov \1, ft \2, corpus \3 inputs (\4)/p' <<<"$done_line")
    line=$(printf '%-12s %10s runs %6ss  %s  %s' "$target" "${runs:-?}" "$seconds" "${cov:-no DONE line}" "$result")
    echo "$line"
    summary+=("$line")
done
echo
echo "Fuzzing summary (executions, seconds, coverage, features, working corpus):"
printf '%s\n' "${summary[@]}"
exit $status
