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

echo "CPU: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores; vector math (libmvec AVX2): $(grep -qw avx2 /proc/cpuinfo && echo yes || echo no)"
echo
echo "== sgemm (dpft's automatic OpenBLAS core vs the Prescott fallback, same run)"
peak_rss "$bin" bench gemm

echo
scratch=$(mktemp -d)
# run_step ARGS... → runs `dpft bench step --json ARGS` under /usr/bin/time and keeps its JSON,
# seconds per step and peak RSS (MiB) in $scratch/last.json, last and last.rss.
run_step() {
    local log json
    log=$(mktemp)
    json=$(/usr/bin/time -v "$bin" bench step --json "$@" 2>"$log")
    echo "$json" >"$scratch/last.json"
    sed -E 's/.*"seconds_per_step":([0-9.eE+-]+).*/\1/' <<<"$json" >"$scratch/last"
    awk -F': ' '/Maximum resident set size/ { printf "%.1f\n", $2 / 1024 }' "$log" >"$scratch/last.rss"
    rm -f "$log"
}

# ratio_row RATIO LABEL SECONDS → prints a private line: its ratio, seconds per step, and the
# book bytes and peak RSS of the last run_step.
ratio_row() {
    local books
    books=$(sed -E 's/.*"peak_book_bytes":([0-9]+).*/\1/' "$scratch/last.json")
    awk -v q="$1" -v l="$2" -v s="$3" -v k="$books" -v r="$(cat "$scratch/last.rss")" \
        'BEGIN { printf "  ratio %.2f  %-34s %7.3f s/step  books %6.1f MiB  peak RSS %s MiB\n", q, l, s, k / 1048576, r }'
}

# step_line LABEL BASELINE_SECONDS ARGS... → runs `dpft bench step ARGS` (run_step) and prints
# seconds per step, the ratio to BASELINE_SECONDS (if given), book bytes and peak RSS.
step_line() {
    local label=$1 baseline=$2 seconds
    shift 2
    run_step "$@"
    seconds=$(cat "$scratch/last")
    if [ -n "$baseline" ]; then
        ratio_row "$(awk -v s="$seconds" -v b="$baseline" 'BEGIN { print s / b }')" "$label" "$seconds"
    else
        awk -v l="$label" -v s="$seconds" -v r="$(cat "$scratch/last.rss")" \
            'BEGIN { printf "  %-46s %7.3f s/step                    peak RSS %s MiB\n", l, s, r }'
    fi
}

# python_line LABEL BASELINE_SECONDS SCRIPT ARGS... → runs a tools/ benchmark script under
# /usr/bin/time and prints its seconds per step, the ratio BASELINE/its seconds (dpft's step
# against it: below 1 means dpft is faster) and peak RSS; keeps its seconds in $scratch/last.
python_line() {
    local label=$1 baseline=$2 script=$3 log out seconds rss
    shift 3
    log=$(mktemp)
    out=$(/usr/bin/time -v tools/.venv/bin/python -W ignore "tools/$script" "$@" 2>"$log" | tail -n 1)
    seconds=$(sed -E 's/.*: ([0-9.]+) s\/step.*/\1/' <<<"$out")
    rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$log")
    rm -f "$log"
    awk -v l="$label" -v s="$seconds" -v b="$baseline" -v r="$rss" \
        'BEGIN { printf "  %-46s %7.3f s/step  dpft/this %.2f       peak RSS %s MiB\n", l, s, b / s, r }'
    echo "$seconds" >"$scratch/last"
}

# private_line LABEL RATIO SECONDS ARGS... → prints a private style's ratio and median s/step
# from the comparison in turns (`dpft bench step --compare`), with the book bytes and peak RSS
# of the style run alone (run_step ARGS, whose JSON stays in $scratch/last.json).
private_line() {
    local label=$1 ratio=$2 seconds=$3
    shift 3
    run_step "$@"
    ratio_row "$ratio" "$label" "$seconds"
}

# compared FIELD INDEX → the INDEX-th (1-based) number of the array FIELD in the last comparison.
compared() { sed -E "s/.*\"$1\":\[([^]]*)\].*/\1/" "$scratch/compare.json" | cut -d, -f"$2"; }

# model_section ROUNDS STEPS ARGS... → for one model (dpft bench step's and the tools/ scripts'
# shared options: --config, --batch-size, --sequence-length), full fine-tuning and LoRA r=8:
# dpft non-private, PyTorch non-private (ratio dpft/PyTorch: target ≤ 1.0), then each private
# clipping style against dpft's non-private step (target ≤ 1.10 full, ≤ 1.03 LoRA): the median
# over ROUNDS rounds of `dpft bench step --compare`, which takes one step of every style in
# turns on one model (this shared machine's speed drifts by tens of per cent between
# processes), with book bytes and peak RSS from one step of the style alone (STEPS steps for
# all-layer full, whose JSON the noise section reads); then Opacus ghost clipping (full) and
# private dpft's tokens/s against PyTorch and Opacus. STEPS: timed steps of the other lines.
model_section() {
    local rounds=$1 steps=$2 have_python="" torch_full="" opacus="" private_full=""
    shift 2
    if [ -x tools/.venv/bin/python ]; then have_python=1; fi
    local styles=(all-layer layer-wise per-block all-layer:automatic)
    for lora in "" "--lora-rank 8"; do
        local kind=${lora:+LoRA r=8}
        kind=${kind:-full}
        # shellcheck disable=SC2086
        step_line "dpft non-private ($kind)" "" "$@" --steps "$steps" $lora
        local baseline
        baseline=$(cat "$scratch/last")
        if [ -n "$have_python" ]; then
            # shellcheck disable=SC2086
            python_line "PyTorch non-private ($kind)" "$baseline" bench_torch_step.py "$@" --steps "$steps" $lora
            if [ -z "$lora" ]; then torch_full=$(cat "$scratch/last"); fi
        fi
        local compare_args=() style
        for style in "${styles[@]}"; do compare_args+=(--compare "$style"); done
        # shellcheck disable=SC2086
        "$bin" bench step --json "${compare_args[@]}" --rounds "$rounds" "$@" $lora | grep -v '^$' >"$scratch/compare.json"
        local index=2
        for style in "${styles[@]}"; do
            local grouping=${style%%:*} clipping=abadi label alone=1
            if [ "$style $kind" = "all-layer full" ]; then alone=$steps; fi
            if [ "$style" != "$grouping" ]; then clipping=${style#*:}; fi
            label="dpft private $grouping"
            if [ "$clipping" != abadi ]; then label+=" $clipping"; fi
            label+=" ($kind)"
            # shellcheck disable=SC2086
            private_line "$label" "$(compared median_ratios $index)" "$(compared median_seconds $index)" \
                "$@" --steps "$alone" --private "$grouping" --clipping "$clipping" $lora
            if [ "$style $kind" = "all-layer full" ]; then
                private_full=$(compared median_seconds $index)
                cp "$scratch/last.json" "$scratch/private-full.json"
            fi
            index=$((index + 1))
        done
    done
    if [ -n "$have_python" ]; then
        python_line "Opacus ghost clipping, private (full)" "$private_full" bench_opacus_step.py "$@" --steps "$steps"
        opacus=$(cat "$scratch/last")
        awk -v p="$private_full" -v t="$torch_full" -v o="$opacus" \
            'BEGIN { printf "  private dpft (all-layer, full) tokens/s = %.2f × PyTorch non-private (target ≥ 0.9), %.2f × Opacus ghost clipping (target ≥ 2)\n", t / p, o / p }'
    else
        echo "  (PyTorch and Opacus skipped: run tools/setup-venv.sh to install them into tools/.venv)"
    fi
}

echo "== training steps on the reference GPT (DESIGN.md §8: d=256, 4 layers, vocab 8192, B=16, T=128), SGD, noise σ = 1, same run"
model_section 15 9  # 15 rounds in turns; 9 steps alone: the noise share below is a median of per-step ratios
cp "$scratch/private-full.json" "$scratch/reference-private-full.json"

echo
echo "== training steps on GPT-2 small (recipes/models/gpt2-small.json: 124 M parameters, B=8, T=128), same run"
model_section 5 3 --config recipes/models/gpt2-small.json --batch-size 8
cp "$scratch/private-full.json" "$scratch/gpt2-small-private-full.json"

echo
echo "== DP noise (AES-256-CTR, snapped grid Gaussian; Privacy/GaussianSampler.swift) vs the private all-layer full steps above (target ≤ 2 %)"
for model in reference gpt2-small; do
    private_json=$(cat "$scratch/$model-private-full.json")
    private_seconds=$(sed -E 's/.*"seconds_per_step":([0-9.eE+-]+).*/\1/' <<<"$private_json")
    coordinates=$(sed -E 's/.*"trainable_parameters":([0-9]+).*/\1/' <<<"$private_json")
    noise_json=$("$bin" bench noise --json --coordinates "$coordinates" --repeats 5)
    noise_seconds=$(sed -E 's/.*"noise_seconds":([0-9.eE+-]+).*/\1/' <<<"$noise_json")
    cpu_ns=$(sed -E 's/.*"cpu_nanoseconds_per_draw":([0-9.eE+-]+).*/\1/' <<<"$noise_json")
    keystream=$(sed -E 's/.*"keystream":"([A-Za-z]+)".*/\1/' <<<"$noise_json")
    share=$(sed -E 's/.*"noise_share":([0-9.eE+-]+).*/\1/' <<<"$private_json")
    awk -v m="$model" -v n="$noise_seconds" -v p="$private_seconds" -v c="$coordinates" -v cpu="$cpu_ns" -v share="$share" -v k="$keystream" \
        'BEGIN { printf "  %-10s %.1f%% of its private step (%.3f s, median over the step'"'"'s own timings); %d draws alone: %.1f ms (%.2f ns per draw, %.2f CPU ns, keystream %s)\n", m, 100 * share, p, c, n * 1e3, n / c * 1e9, cpu, k }'
done

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

echo
echo "== LoRA on a 1.1B Llama (recipes/models/tinyllama-shape.json: TinyLlama-1.1B's shape, random weights), r=16 on every projection, B=4, T=256, same run"
large=(--config recipes/models/tinyllama-shape.json --batch-size 4 --sequence-length 256 --steps 1 --lora-rank 16)
step_line "dpft private layer-wise" "" "${large[@]}" --private layer-wise
dpft_large=$(cat "$scratch/last")
dpft_large_rss=$(cat "$scratch/last.rss")
parameters=$(sed -E 's/.*"model_parameters":([0-9]+).*/\1/' "$scratch/last.json")
step_line "dpft private layer-wise, recomputing" "" "${large[@]}" --private layer-wise --recompute-activations
dpft_recomputing_rss=$(cat "$scratch/last.rss")
if [ -x tools/.venv/bin/python ]; then
    python_line "PyTorch + PEFT non-private" "$dpft_large" bench_torch_step.py "${large[@]}"
fi
awk -v p="$parameters" -v r="$dpft_large_rss" -v c="$dpft_recomputing_rss" \
    'BEGIN { w = p * 4 / 1048576; printf "  fp32 weights %.1f MiB; dpft'"'"'s peak RSS = %.2f × the weights, %.2f × recomputing activations (aim ≤ 1.5)\n", w, r / w, c / w }'
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
