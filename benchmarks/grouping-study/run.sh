#!/usr/bin/env bash
# The grouping study (issue 17; README "Which grouping should I use?"), run by `make study`:
# seven clipping styles × three seeds × three base sizes, private LoRA fine-tuning at ε = 8 on
# the support-ticket task. Bases missing from the tree are pretrained first, non-privately on
# public text only (recipes/pretrain-base.json, as `make base-model` does for the shipped one).
# Every sweep skips the runs it finished before, so after an interruption run it again.
# Writes benchmarks/grouping-study/results.csv (every run, with its base), table.md (mean ± std
# over seeds per base and style) and summary-SIZE.txt (each sweep's own summary); the run
# directories and report pages go to runs/study/.
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
# table.md: mean ± standard deviation (n − 1) over seeds per base and style, from results.csv.
# Fields are counted from the end of a row: the override columns before them may hold commas.
awk -F, 'NR > 1 {
    style = $2; sub(/^grouping-/, "", style); sub(/_seed-[0-9]+$/, "", style)
    sub(/_grouping_options-groups_/, ", groups ", style); sub(/_grouping_options-allocation_/, ", ", style)
    key = $1 " | " style
    if (!(key in n)) order[++keys] = key
    n[key]++
    split($(NF-8) " " 100 * $(NF-6) " " $(NF-3) / 1048576 " " $(NF-2) / 1048576 " " $(NF-4), v, " ")
    for (m = 1; m <= 5; m++) { sum[key, m] += v[m]; squares[key, m] += v[m] * v[m] }
}
function cell(key, m, digits,   mean, variance) {
    mean = sum[key, m] / n[key]
    variance = n[key] > 1 ? (squares[key, m] - n[key] * mean * mean) / (n[key] - 1) : 0
    return sprintf("%." digits "f ± %." digits "f", mean, variance > 0 ? sqrt(variance) : 0)
}
END {
    print "| base | style | runs | eval loss | exact match % | book MiB | peak RSS MiB | s/step |"
    print "|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= keys; i++) {
        key = order[i]
        printf "| %s | %d | %s | %s | %s | %s | %s |\n", key, n[key], cell(key, 1, 4), cell(key, 2, 1),
            cell(key, 3, 1), cell(key, 4, 0), cell(key, 5, 3)
    }
}' "$study/results.csv" >"$study/table.md"
echo "results: $study/results.csv, $study/table.md, $study/summary-*.txt; pages: $work/*/report.html"
