#!/usr/bin/env bash
# The grouping study (issue 17; README "Which grouping should I use?"), run by `make study`:
# seven clipping styles × three seeds × three base sizes, private LoRA fine-tuning at ε = 8 on
# the support-ticket task. Bases missing from the tree are pretrained first, non-privately on
# public text only (recipes/pretrain-base.json, as `make base-model` does for the shipped one).
# Every sweep skips the runs it finished before, so after an interruption run it again.
# Writes benchmarks/grouping-study/results.csv (every run, with its base) and summary-SIZE.txt
# (mean ± std over seeds per style); the run directories and report pages go to runs/study/.
# Usage: benchmarks/grouping-study/run.sh [SIZE ...]   (default: small shipped large)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=.build/release/dpft
study=benchmarks/grouping-study
work=runs/study
sizes=("$@")
((${#sizes[@]})) || sizes=(small shipped large)

# pretrain SIZE OUTPUT EPOCHS → OUTPUT, a base of study/model-SIZE.json pretrained on public text
pretrain() {
    local size=$1 output=$2 epochs=$3 directory=$work/pretrain-$1
    echo "== pretraining the $size base ($study/model-$size.json, $epochs epochs of recipes/data/pretrain-corpus.jsonl) into $output"
    mkdir -p "$work" "$(dirname "$output")"
    "$bin" init --config "$study/model-$size.json" --tokenizer checkpoints/tokenizer.model --seed 1 --output "$work/$size-init.h5"
    "$bin" recipe recipes/pretrain-base.json --overwrite --set "model.checkpoint=$work/$size-init.h5" \
        --set "output.directory=$directory" --set "training.epochs=$epochs"
    "$bin" export "$directory/final.h5" --format hdf5 --output "$directory/export"
    cp "$directory/export/model.h5" "$output"
}

[ -f checkpoints/study-small.h5 ] || pretrain small checkpoints/study-small.h5 3
if [[ " ${sizes[*]} " == *" large "* ]] && [ ! -f "$work/bases/large.h5" ]; then
    pretrain large "$work/bases/large.h5" 3
fi

for size in "${sizes[@]}"; do
    echo "== $size base: $study/sweep-$size.json"
    "$bin" sweep "$study/sweep-$size.json" --output "$work/$size" | tee "$work/$size.log"
    # The summary table: from the line that starts it to the end of the sweep's output.
    sed -n '/^mean ± standard deviation/,$p' "$work/$size.log" >"$study/summary-$size.txt"
    "$bin" report "$work/$size" --output "$work/$size/report.html"
done

# One CSV of every run, the base size in front (rows of sizes not rerun now are kept).
{
    head -1 "$work/${sizes[0]}/results.csv" | sed 's/^/base,/'
    for size in small shipped large; do
        [ -f "$work/$size/results.csv" ] && tail -n +2 "$work/$size/results.csv" | sed "s/^/$size,/"
    done
} >"$study/results.csv"
echo "results: $study/results.csv, $study/summary-*.txt; pages: $work/*/report.html"
