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

echo
echo "== private step (book-keeping, abadi, noise σ = 1) per clipping style vs the non-private step, same run"
# step_line LABEL BASELINE_SECONDS ARGS... → runs `dpft bench step ARGS --json` and prints
# seconds per step, the ratio to BASELINE_SECONDS (if given), book bytes and peak RSS.
step_line() {
    local label=$1 baseline=$2 log json seconds books rss
    shift 2
    log=$(mktemp)
    json=$(/usr/bin/time -v "$bin" bench step --json "$@" 2>"$log")
    seconds=$(sed -E 's/.*"seconds_per_step":([0-9.eE+-]+).*/\1/' <<<"$json")
    books=$(sed -E 's/.*"peak_book_bytes":([0-9]+).*/\1/' <<<"$json")
    rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$log")
    rm -f "$log"
    if [ -n "$baseline" ]; then
        awk -v l="$label" -v s="$seconds" -v b="$baseline" -v k="$books" -v r="$rss" \
            'BEGIN { printf "  %-28s %.3f s/step  ratio %.2f  books %6.1f MiB  peak RSS %s MiB\n", l, s, s / b, k / 1048576, r }'
    else
        awk -v l="$label" -v s="$seconds" -v r="$rss" 'BEGIN { printf "  %-28s %.3f s/step                            peak RSS %s MiB\n", l, s, r }'
    fi
    echo "$seconds" >"$scratch/last"
    echo "$json" >"$scratch/last.json"
}
scratch=$(mktemp -d)
for lora in "" "--lora-rank 8"; do
    kind=${lora:+LoRA r=8}
    kind=${kind:-full}
    # shellcheck disable=SC2086
    step_line "non-private ($kind)" "" $lora
    baseline=$(cat "$scratch/last")
    for style in all-layer layer-wise per-block; do
        # shellcheck disable=SC2086
        step_line "$style ($kind)" "$baseline" --private "$style" $lora
        if [ "$style $kind" = "all-layer full" ]; then cp "$scratch/last.json" "$scratch/private-full.json"; fi
    done
done

if [ -x tools/.venv/bin/python ]; then
    echo "  Opacus, same run (ghost clipping, noise σ = 1; tools/bench_opacus_step.py):"
    peak_rss tools/.venv/bin/python -W ignore tools/bench_opacus_step.py | sed 's/^/  /'
fi

echo
echo "== DP noise (ChaCha20, snapped grid Gaussian; Privacy/GaussianSampler.swift) vs the private all-layer full step above"
private_json=$(cat "$scratch/private-full.json")
private_seconds=$(sed -E 's/.*"seconds_per_step":([0-9.eE+-]+).*/\1/' <<<"$private_json")
coordinates=$(sed -E 's/.*"trainable_parameters":([0-9]+).*/\1/' <<<"$private_json")
noise_json=$("$bin" bench noise --json --coordinates "$coordinates")
noise_seconds=$(sed -E 's/.*"noise_seconds":([0-9.eE+-]+).*/\1/' <<<"$noise_json")
cpu_ns=$(sed -E 's/.*"cpu_nanoseconds_per_draw":([0-9.eE+-]+).*/\1/' <<<"$noise_json")
share=$(sed -E 's/.*"noise_share":([0-9.eE+-]+).*/\1/' <<<"$private_json")
awk -v n="$noise_seconds" -v p="$private_seconds" -v c="$coordinates" -v cpu="$cpu_ns" -v share="$share" \
    'BEGIN { printf "  %d draws: %.1f ms alone (%.2f ns per draw, %.2f CPU ns); inside the private step above (median over its steps): %.1f%% of the step (%.3f s)\n", c, n * 1e3, n / c * 1e9, cpu, 100 * share, p }'

echo
echo "== data-parallel over Open MPI (README \"Training on several processes\"): 1 process × 2 threads vs 2 processes × 1 thread, same run"
for lora in "" "--lora-rank 8"; do
    for private in "" "--private all-layer"; do
        # shellcheck disable=SC2086
        "$bin" bench step --threads 2 $lora $private
        # shellcheck disable=SC2086
        "$bin" bench step --ranks 2 --threads 1 $lora $private
    done
done

echo
echo "== mixture of experts (recipes/models/mixtral-reference.json: d=256, 4 layers, 4 experts top-2, vocab 8192, B=16, T=128)"
moe=(--config recipes/models/mixtral-reference.json)
for lora in "" "--lora-rank 8"; do
    kind=${lora:+LoRA r=8}
    kind=${kind:-full}
    # shellcheck disable=SC2086
    step_line "MoE non-private ($kind)" "" "${moe[@]}" $lora
    baseline=$(cat "$scratch/last")
    for style in all-layer layer-wise moe-expert; do
        # shellcheck disable=SC2086
        step_line "MoE $style ($kind)" "$baseline" --private "$style" "${moe[@]}" $lora
    done
done
rm -rf "$scratch"

echo
echo "== tokenizer.json encode throughput, one thread, on recipes/data/pretrain-corpus.jsonl: dpft, then the tokenizers package, same run"
for pipeline in gpt2 qwen2 llama3; do
    "$bin" tokenizer bench --model "Tests/DPFTTests/Fixtures/bpe/$pipeline.json" --text recipes/data/pretrain-corpus.jsonl
    if [ -x tools/.venv/bin/python ]; then
        tools/.venv/bin/python tools/bench_tokenizer.py --model "Tests/DPFTTests/Fixtures/bpe/$pipeline.json" \
            --text recipes/data/pretrain-corpus.jsonl
    fi
done

echo
benchmarks/privacy.sh
