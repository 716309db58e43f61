#!/usr/bin/env python3
"""Opacus' side of `make bench`: one private step with ghost clipping (Opacus 1.6,
grad_sample_mode="ghost": per-example norms without per-example gradients, then a second
backward pass for the clipped sum), noise σ = 1, SGD, on the reference GPT of DESIGN.md §8, so
dpft's private step can be compared with it in one run.

GPT-2's attention and MLP projections are transformers' Conv1D, which Opacus has no
per-sample rule for; each is replaced by the same map as an nn.Linear (weight transposed)
before Opacus wraps the model, so the model computes exactly the same function. Ghost
clipping refuses tied parameters, so the output projection gets its own copy of the token
embedding (untied: the same forward, 2.1 M more trainable parameters on the reference GPT; the
step's multiplications are the same).

Usage: tools/.venv/bin/python tools/bench_opacus_step.py [--config recipes/models/gpt2-reference.json]
       [--batch-size 16] [--sequence-length 128] [--steps 5] [--threads 2]
"""
import statistics
import time

import torch
from opacus import PrivacyEngine

from bench_common import random_model, step_arguments


def linear_from_conv1d(conv: torch.nn.Module) -> torch.nn.Linear:
    """transformers' Conv1D computes x·W + b with W of shape (in, out)."""
    inputs, outputs = conv.weight.shape
    linear = torch.nn.Linear(inputs, outputs)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.t())
        linear.bias.copy_(conv.bias)
    return linear


def replace_conv1d(module: torch.nn.Module) -> None:
    for name, child in module.named_children():
        if type(child).__name__ == "Conv1D":
            setattr(module, name, linear_from_conv1d(child))
        else:
            replace_conv1d(child)


class TokenLoss(torch.nn.Module):
    """Per-example causal LM loss: the mean over each example's next-token predictions, then
    the mean over the batch (what Opacus' ghost clipping wraps)."""

    def __init__(self) -> None:
        super().__init__()
        self.reduction = "mean"

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        shifted = logits[:, :-1].transpose(1, 2)
        per_token = torch.nn.functional.cross_entropy(shifted, labels[:, 1:], reduction="none")
        per_example = per_token.mean(dim=1)
        return per_example.mean() if self.reduction == "mean" else per_example


def main() -> None:
    args = step_arguments(__doc__.splitlines()[0]).parse_args()
    config, model = random_model(args, tie_word_embeddings=False)
    replace_conv1d(model)
    model.train()
    ids = torch.randint(0, config.vocab_size, (args.batch_size, args.sequence_length))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids), batch_size=args.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    model, optimizer, criterion, loader = PrivacyEngine().make_private(
        module=model, optimizer=optimizer, data_loader=loader, criterion=TokenLoss(), noise_multiplier=1.0,
        max_grad_norm=1.0, grad_sample_mode="ghost", poisson_sampling=False)
    # Per-example positions: Opacus needs every input to carry the batch dimension.
    positions = torch.arange(args.sequence_length).repeat(args.batch_size, 1)
    times = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        logits = model(input_ids=ids, position_ids=positions).logits
        loss = criterion(logits, ids)
        loss.backward()
        optimizer.step()
        if step > 0:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"opacus ghost clipping (torch {torch.__version__}) private step ({config.model_type}, B={args.batch_size}, "
          f"T={args.sequence_length}, full, untied, {args.threads} threads): {median:.3f} s/step (median of {args.steps}), "
          f"{args.batch_size * args.sequence_length / median:.0f} tokens/s")


if __name__ == "__main__":
    main()
