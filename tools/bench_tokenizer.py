#!/usr/bin/env python3
"""Encode throughput of Hugging Face `tokenizers` on one thread, timed as
`dpft tokenizer bench` times dpft: every line of the text (a .jsonl file contributes its
"text" fields) encoded without special tokens, best of --repeats passes.

    TOKENIZERS_PARALLELISM=false tools/.venv/bin/python tools/bench_tokenizer.py \\
        --model Tests/DPFTTests/Fixtures/bpe/qwen2.json --text recipes/data/pretrain-corpus.jsonl

encode_batch_fast (the package's fastest path: no offsets) runs the lines in Rust without a
Python call per line; TOKENIZERS_PARALLELISM=false (set here too) keeps it on one thread.
"""

import argparse
import json
import os
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402  (after the environment is set)


def lines_of(path):
    with open(path, encoding="utf-8") as f:
        if path.endswith(".jsonl"):
            return [json.loads(line)["text"] for line in f if line.strip()]
        return [line for line in f.read().split("\n") if line]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--text", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tok = Tokenizer.from_file(args.model)
    lines = lines_of(args.text)
    size = sum(len(line.encode("utf-8")) for line in lines)
    best, tokens = float("inf"), 0
    for _ in range(args.repeats):
        start = time.perf_counter()
        tokens = sum(len(e.ids) for e in tok.encode_batch_fast(lines, add_special_tokens=False))
        best = min(best, time.perf_counter() - start)
    print(f"tokenizers {args.model}: {len(lines)} lines, {size / 1e6:.2f} MB, {tokens} tokens; "
          f"encode {size / 1e6 / best:.2f} MB/s (best of {args.repeats}, one thread)")


if __name__ == "__main__":
    main()
