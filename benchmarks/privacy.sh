#!/usr/bin/env bash
# Times `dpft privacy epsilon` for 100,000 steps with the release build, RDP and PRV accountants
# (best of 3 wall-clock runs each; the answer is printed with the time). Two settings: a typical
# run (σ = 0.8, q = 0.001, δ = 1e-6, ε ≈ 2.9) and a heavy one whose large ε needs a wide
# privacy-loss grid (σ = 1, q = 0.01, δ = 1e-5, ε ≈ 25.6).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DPFT_BIN:-.build/release/dpft}

best_of_3() {  # command... → prints "<best seconds> <last output line>"
    local best="" output start end elapsed
    for _ in 1 2 3; do
        start=$(date +%s%N)
        output=$("$@" | head -n 1)
        end=$(date +%s%N)
        elapsed=$(( (end - start) / 1000000 ))
        if [[ -z "$best" || $elapsed -lt $best ]]; then best=$elapsed; fi
    done
    printf '%d.%03d s  %s\n' $((best / 1000)) $((best % 1000)) "$output"
}

echo "== privacy accounting: dpft privacy epsilon, 100000 steps (best of 3)"
for setting in "0.8 0.001 1e-6" "1.0 0.01 1e-5"; do
    read -r sigma q delta <<<"$setting"
    for accountant in rdp prv; do
        printf '  %-3s σ=%-3s q=%-5s δ=%-5s  ' "$accountant" "$sigma" "$q" "$delta"
        best_of_3 "$bin" privacy epsilon --noise-multiplier "$sigma" --sample-rate "$q" \
            --steps 100000 --delta "$delta" --accountant "$accountant"
    done
done
