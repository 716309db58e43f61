#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures for Tests/DPFTTests/OptimizerTests.swift.

Optimizers: every case runs `torch.optim.SGD`, `Adam` or `AdamW` (single-tensor CPU path,
`foreach=False`) for 5 steps over two small float32 tensors, with a fixed gradient
sequence and a learning rate that changes every step (as a schedule would), and records the
parameters after each step:

    Tests/DPFTTests/Fixtures/optimizer/optimizers.json
        {"torch_version", "initial": {name: {"shape", "values"}},
         "gradients": [{name: values}, ...]  (one entry per step),
         "learning_rates": [...],
         "cases": [{"name", "kind": "sgd"|"adam"|"adamw", "hyperparameters": {...},
                    "parameters_after_step": [{name: values}, ...],
                    "state_after_last_step": {"exp_avg/<name>": values, ...}}]}

Schedules: the learning rate Hugging Face's schedulers (transformers.optimization, through
torch's LambdaLR) give for update 0, 1, ..., total (the scheduler's lr before its k-th step):

    Tests/DPFTTests/Fixtures/optimizer/schedules.json
        {"transformers_version", "peak_learning_rate",
         "cases": [{"name", "kind", "warmup_steps", "total_steps", "min_lr_rate", "learning_rates"}]}

Run from the repository root:  tools/.venv/bin/python tools/make_optimizer_fixtures.py
"""

import json
import os

import torch
import transformers
from transformers.optimization import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

OUT_DIR = os.path.join("Tests", "DPFTTests", "Fixtures", "optimizer")
STEPS = 5
SHAPES = {"layer.weight": [3, 4], "layer.bias": [5]}
LEARNING_RATES = [0.05, 0.04, 0.03, 0.025, 0.02]

CASES = [
    ("sgd", "sgd", dict(momentum=0.0, weight_decay=0.0, nesterov=False)),
    ("sgd_weight_decay", "sgd", dict(momentum=0.0, weight_decay=0.1, nesterov=False)),
    ("sgd_momentum", "sgd", dict(momentum=0.9, weight_decay=0.0, nesterov=False)),
    ("sgd_momentum_weight_decay", "sgd", dict(momentum=0.9, weight_decay=0.1, nesterov=False)),
    ("sgd_nesterov", "sgd", dict(momentum=0.8, weight_decay=0.05, nesterov=True)),
    ("adam", "adam", dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
    ("adam_weight_decay", "adam", dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)),
    ("adam_betas", "adam", dict(betas=(0.8, 0.95), eps=1e-6, weight_decay=0.0)),
    ("adamw", "adamw", dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)),
    ("adamw_betas", "adamw", dict(betas=(0.85, 0.98), eps=1e-7, weight_decay=0.3)),
]


def values(tensor: torch.Tensor) -> list:
    return [float(v) for v in tensor.detach().reshape(-1).tolist()]


def optimizer_fixture() -> dict:
    generator = torch.Generator().manual_seed(20240607)
    initial = {name: torch.randn(shape, generator=generator) for name, shape in SHAPES.items()}
    # Gradients of varied scale (including a few exact zeros) so that Adam's normalisation
    # and the moments' history both matter.
    gradients = []
    for step in range(STEPS):
        step_gradients = {}
        for name, shape in SHAPES.items():
            g = torch.randn(shape, generator=generator) * (0.5 + step)
            g.reshape(-1)[step % g.numel()] = 0.0
            step_gradients[name] = g
        gradients.append(step_gradients)

    cases = []
    for case_name, kind, hyper in CASES:
        params = {name: torch.nn.Parameter(t.clone()) for name, t in initial.items()}
        ordered = [params[name] for name in SHAPES]
        if kind == "sgd":
            opt = torch.optim.SGD(ordered, lr=LEARNING_RATES[0], foreach=False, **hyper)
        elif kind == "adam":
            opt = torch.optim.Adam(ordered, lr=LEARNING_RATES[0], foreach=False, **hyper)
        else:
            opt = torch.optim.AdamW(ordered, lr=LEARNING_RATES[0], foreach=False, **hyper)
        after = []
        for step in range(STEPS):
            for group in opt.param_groups:
                group["lr"] = LEARNING_RATES[step]
            for name, p in params.items():
                p.grad = gradients[step][name].clone()
            opt.step()
            after.append({name: values(p) for name, p in params.items()})
        state = {}
        for name, p in params.items():
            for key, tensor in opt.state[p].items():
                if key != "step" and tensor is not None:
                    state[f"{key}/{name}"] = values(tensor)
        recorded = dict(hyper)
        if "betas" in recorded:
            recorded["beta1"], recorded["beta2"] = recorded.pop("betas")
        cases.append({"name": case_name, "kind": kind, "hyperparameters": recorded,
                      "parameters_after_step": after, "state_after_last_step": state})

    return {
        "torch_version": torch.__version__,
        "initial": {name: {"shape": list(t.shape), "values": values(t)} for name, t in initial.items()},
        "gradients": [{name: values(g) for name, g in step.items()} for step in gradients],
        "learning_rates": LEARNING_RATES,
        "cases": cases,
    }


def schedule_fixture() -> dict:
    peak = 3e-4
    cases = []
    specs = [
        ("constant_warmup", "constant", 4, 20, 0.0),
        ("linear", "linear", 0, 20, 0.0),
        ("linear_warmup", "linear", 5, 23, 0.0),
        ("cosine", "cosine", 0, 20, 0.0),
        ("cosine_warmup", "cosine", 6, 31, 0.0),
        ("cosine_min_lr", "cosine", 3, 17, 0.1),
        ("linear_warmup_equals_total", "linear", 8, 8, 0.0),
    ]
    for name, kind, warmup, total, min_lr_rate in specs:
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([param], lr=peak)
        if kind == "constant":
            scheduler = get_constant_schedule_with_warmup(opt, warmup)
        elif kind == "linear":
            scheduler = get_linear_schedule_with_warmup(opt, warmup, total)
        elif min_lr_rate > 0:
            scheduler = get_cosine_with_min_lr_schedule_with_warmup(opt, warmup, total, min_lr_rate=min_lr_rate)
        else:
            scheduler = get_cosine_schedule_with_warmup(opt, warmup, total)
        rates = []
        for _ in range(total + 1):
            rates.append(scheduler.get_last_lr()[0])
            opt.step()
            scheduler.step()
        cases.append({"name": name, "kind": kind, "warmup_steps": warmup, "total_steps": total,
                      "min_lr_rate": min_lr_rate, "learning_rates": rates})
    return {"transformers_version": transformers.__version__, "peak_learning_rate": peak, "cases": cases}


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    for file_name, fixture in [("optimizers.json", optimizer_fixture()), ("schedules.json", schedule_fixture())]:
        path = os.path.join(OUT_DIR, file_name)
        with open(path, "w") as f:
            json.dump(fixture, f, indent=1)
            f.write("\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
