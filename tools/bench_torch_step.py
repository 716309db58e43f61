#!/usr/bin/env python3
"""The PyTorch side of `dpft bench step`: one non-private training step (forward + backward +
SGD update) on the reference GPT of DESIGN.md §8, on this machine, so the two can be compared
in one run (benchmarks/run.sh calls both).

Usage: tools/.venv/bin/python tools/bench_torch_step.py [--config recipes/models/gpt2-reference.json]
       [--batch-size 16] [--sequence-length 128] [--steps 5] [--threads 2] [--lora-rank R]
"""
import statistics
import time

import torch

from bench_common import random_model, step_arguments


def main() -> None:
    parser = step_arguments(__doc__.splitlines()[0])
    parser.add_argument("--lora-rank", type=int, default=None)
    args = parser.parse_args()

    config, model = random_model(args)
    if args.lora_rank:
        import peft
        targets = ["c_attn", "c_proj", "c_fc"] if config.model_type == "gpt2" else \
            ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = peft.get_peft_model(model, peft.LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank,
                                                           target_modules=targets, lora_dropout=0.0))
    model.train()
    ids = torch.randint(0, config.vocab_size, (args.batch_size, args.sequence_length))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=False)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        if step > 0:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    kind = f"LoRA r={args.lora_rank}" if args.lora_rank else "full"
    print(f"pytorch {torch.__version__} non-private step ({config.model_type}, B={args.batch_size}, "
          f"T={args.sequence_length}, {kind}, {args.threads} threads): {median:.3f} s/step (median of {args.steps}), "
          f"{args.batch_size * args.sequence_length / median:.0f} tokens/s")


if __name__ == "__main__":
    main()
