#!/usr/bin/env python3
"""Mixtral (sparse mixture-of-experts) reference fixtures for dpft: a tiny HF model folder and
forward/backward references (logits, loss, every gradient), made with transformers'
MixtralForCausalLM (random weights from a config, float32, eager attention). Nothing is
downloaded.

Writes
  Tests/DPFTTests/Fixtures/hf/mixtral-tiny/   config.json + model.safetensors, saved in the
      classic per-expert layout that Mixtral checkpoints use and `dpft import/export` read and
      write: model.layers.{l}.block_sparse_moe.gate.weight [E, C] and
      model.layers.{l}.block_sparse_moe.experts.{e}.w1/w2/w3.weight (w1 = gate [I, C],
      w3 = up [I, C], w2 = down [C, I]). transformers 5 fuses the experts in memory
      (mlp.experts.gate_up_proj [E, 2I, C] = cat(w1, w3), mlp.experts.down_proj [E, C, I],
      mlp.gate.weight); the script maps both ways and checks that from_pretrained on the
      saved folder reproduces the in-memory model's logits exactly.
  Tests/DPFTTests/Fixtures/reference/mixtral-full.h5   every tensor trainable
  Tests/DPFTTests/Fixtures/reference/mixtral-lora.h5   LoRA on q/v/o and every expert's w1/w2/w3

The reference files use the layout of tools/make_forward_backward_fixtures.py (same batch: B = 4,
T = 12, lengths [12, 7, 3, 9], masked prompts, one example without label tokens, same loss
definition), so ReferenceModelTests reads them unchanged. Gradients are stored under the
per-expert dpft/HF names.

Routing: the router weights are drawn with std 0.3 (logits of a few units) and the script
asserts that the top-2 choice is never a near tie (a router-logit gap ≥ 1e-3 between the 2nd
and 3rd expert of every real token). In layer 1, expert 3's router row is solved (least squares) so that its logit
is below every other expert's for every real token of the batch: expert 3 of layer 1 receives no
token (asserted), its weights get zero gradient, its router row a tiny one.

LoRA: PEFT cannot wrap transformers 5's fused expert tensors as w1/w2/w3 linears, so LoRA is
written as a parametrisation: W_eff = W + (alpha/r)·B·A for every adapted weight (for the experts:
rows 0..I of gate_up_proj[e] are w1, rows I..2I are w3, down_proj[e] is w2). This is exactly
y = W x + (alpha/r) B A x. A ~ kaiming-uniform (seeded), B ~ N(0, 0.05²) (seeded, non-zero).
Adapter names follow PEFT: model.layers.{l}.block_sparse_moe.experts.{e}.w1.lora_A.weight [r, C].

Self-checks: per-example loss against torch's cross_entropy, padding invariance (other pad ids
change no real logit and no gradient), float32 vs float64 gradients (relative 1e-3), the empty
expert, and the from_pretrained round trip.

Usage (repository root): tools/.venv/bin/python tools/make_moe_fixtures.py
"""
import copy
import json
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F
import torch.nn.utils.parametrize as parametrize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(REPO, "Tests", "DPFTTests", "Fixtures")
MODEL_DIR = os.path.join(FIX, "hf", "mixtral-tiny")
REF_OUT = os.path.join(FIX, "reference")
GENERATOR = "tools/make_moe_fixtures.py"

# The batch (ids, padding, masked prompts, the label-less example), the loss and the HDF5
# writer are those of the dense fixtures, shared from that script.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_forward_backward_fixtures import (  # noqa: E402
    B, BATCH_SEED, EMPTY_EXAMPLE, LENGTHS, LORA_B_STD, PAD_ID, PROMPT_MASK, T, VOCAB,
    f32, i64, make_batch, per_example_losses, write_h5)

LAYERS, EXPERTS, TOP_K, HIDDEN, INNER = 2, 4, 2, 32, 48
EMPTY_LAYER, EMPTY_EXPERT = 1, 3

CONFIG = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INNER, num_hidden_layers=LAYERS,
              num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
              num_local_experts=EXPERTS, num_experts_per_tok=TOP_K, rms_norm_eps=1e-5, rope_theta=10000.0,
              tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, router_jitter_noise=0.0,
              sliding_window=None, initializer_range=0.1, output_router_logits=False)

CASES = [
    ("mixtral-full", None, 21),
    ("mixtral-lora", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj", "w1", "w2", "w3"]), 22),
]

LOSS_DEFINITION = (
    "HF shift: logits[:, t] scored against labels[:, t+1] for t = 0..T-2, label -100 ignored; "
    "per_example_losses[i] = mean cross-entropy over example i's scored tokens (0 if none); "
    "loss = sum(per_example_losses) / B with B = 4 (the example without labels counts); "
    "grads = d loss / d param (float32 autograd)")


def versions():
    import transformers
    return {"torch_version": str(torch.__version__), "transformers_version": transformers.__version__}


# ---------------------------------------------------------------------------------------------
# Names: transformers 5 fused experts <-> per-expert (dpft, classic Mixtral checkpoints)


def per_expert_state(model):
    """{per-expert HF name: tensor} from the in-memory (fused) state dict."""
    out = {}
    for name, value in model.state_dict().items():
        value = value.detach().clone()
        if ".mlp.experts.gate_up_proj" in name:
            prefix = name.split(".mlp.")[0] + ".block_sparse_moe.experts."
            for e in range(EXPERTS):
                out[f"{prefix}{e}.w1.weight"] = value[e, :INNER].contiguous()
                out[f"{prefix}{e}.w3.weight"] = value[e, INNER:].contiguous()
        elif ".mlp.experts.down_proj" in name:
            prefix = name.split(".mlp.")[0] + ".block_sparse_moe.experts."
            for e in range(EXPERTS):
                out[f"{prefix}{e}.w2.weight"] = value[e].contiguous()
        elif ".mlp.gate.weight" in name:
            out[name.replace(".mlp.gate.", ".block_sparse_moe.gate.")] = value
        else:
            out[name] = value
    return out


def fused_gradients(model_params, grads):
    """Per-expert gradient names from fused gradients {fused name: grad}."""
    out = {}
    for name, g in grads.items():
        if name.endswith("experts.gate_up_proj"):
            prefix = name.split(".mlp.")[0] + ".block_sparse_moe.experts."
            for e in range(EXPERTS):
                out[f"{prefix}{e}.w1.weight"] = g[e, :INNER]
                out[f"{prefix}{e}.w3.weight"] = g[e, INNER:]
        elif name.endswith("experts.down_proj"):
            prefix = name.split(".mlp.")[0] + ".block_sparse_moe.experts."
            for e in range(EXPERTS):
                out[f"{prefix}{e}.w2.weight"] = g[e]
        elif name.endswith("mlp.gate.weight"):
            out[name.replace(".mlp.gate.", ".block_sparse_moe.gate.")] = g
        else:
            out[name] = g
    return out


# ---------------------------------------------------------------------------------------------
# Model


def router_inputs(model, ids, mask):
    """The router input of each layer, [B*T, C], via forward hooks on the routers."""
    seen = {}
    hooks = []
    for l, layer in enumerate(model.model.layers):
        hooks.append(layer.mlp.gate.register_forward_hook(
            lambda mod, args, out, l=l: seen.__setitem__(l, args[0].reshape(-1, HIDDEN).detach().clone())))
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    for h in hooks:
        h.remove()
    return seen


def build_model(ids, mask):
    from transformers import MixtralConfig, MixtralForCausalLM
    torch.manual_seed(7)
    config = MixtralConfig(**CONFIG)
    model = MixtralForCausalLM(config).float()
    model.config._attn_implementation = "eager"
    model.config._experts_implementation = "eager"  # the plain per-expert loop, float64-capable
    g = torch.Generator().manual_seed(77)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("mlp.gate.weight"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    model.eval()

    # layer EMPTY_LAYER, expert EMPTY_EXPERT: logit below every other expert's for every real token
    x = router_inputs(model, ids, mask)[EMPTY_LAYER]
    real = mask.reshape(-1).bool()
    xr = x[real].double()
    gate = model.model.layers[EMPTY_LAYER].mlp.gate.weight
    others = [e for e in range(EXPERTS) if e != EMPTY_EXPERT]
    logits = xr @ gate.detach().double()[others].T
    target = logits.min(dim=1).values - 3.0
    solution = torch.linalg.lstsq(xr, target.unsqueeze(1)).solution.squeeze(1)
    with torch.no_grad():
        gate[EMPTY_EXPERT] = solution.float()
    return model


def routing_report(model, ids, mask):
    """Per layer: tokens per expert (real tokens only) and the smallest gap between the k-th and
    (k+1)-th router logit (probabilities order as logits do)."""
    xs = router_inputs(model, ids, mask)
    real = mask.reshape(-1).bool()
    report = []
    for l, layer in enumerate(model.model.layers):
        with torch.no_grad():
            logits = F.linear(xs[l], layer.mlp.gate.weight)[real]
        probs = torch.softmax(logits.float(), dim=-1)
        ordered = logits.sort(dim=-1, descending=True).values
        gap = (ordered[:, TOP_K - 1] - ordered[:, TOP_K]).min().item()
        chosen = torch.topk(probs, TOP_K, dim=-1).indices
        counts = [int((chosen == e).sum()) for e in range(EXPERTS)]
        per_example = []
        offset = 0
        for n in LENGTHS:
            per_example.append([int((chosen[offset:offset + n] == e).sum()) for e in range(EXPERTS)])
            offset += n
        report.append({"layer": l, "tokens_per_expert": counts, "per_example": per_example, "min_gap": gap})
    return report


def save_model_dir(model):
    from safetensors.torch import save_file
    os.makedirs(MODEL_DIR, exist_ok=True)
    for fn in os.listdir(MODEL_DIR):
        os.remove(os.path.join(MODEL_DIR, fn))
    state = per_expert_state(model)
    save_file({k: v.contiguous() for k, v in sorted(state.items())}, os.path.join(MODEL_DIR, "model.safetensors"),
              metadata={"format": "pt"})
    config = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "dtype": "float32",
              "hidden_act": "silu", "attention_dropout": 0.0, "router_aux_loss_coef": 0.001,
              "use_cache": True, **CONFIG}
    config = {k: v for k, v in config.items() if k not in ("output_router_logits",)}
    with open(os.path.join(MODEL_DIR, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    return state


def check_round_trip(model, ids, mask):
    """from_pretrained on the per-expert folder gives the same model (names mapped as assumed)."""
    from transformers import AutoModelForCausalLM
    loaded, info = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32, attn_implementation="eager",
                                                        output_loading_info=True)
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(kind):
            raise SystemExit(f"from_pretrained {kind}: {info[kind]}")
    loaded.config._experts_implementation = "eager"
    loaded.eval()
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask).logits
        b = loaded(input_ids=ids, attention_mask=mask).logits
    if not torch.equal(a, b):
        raise SystemExit(f"from_pretrained logits differ by {(a - b).abs().max().item()}")


# ---------------------------------------------------------------------------------------------
# LoRA as a parametrisation


class LoRADelta(torch.nn.Module):
    """W -> W + scale · B A, for a plain [out, in] weight."""

    def __init__(self, a, b, scale):
        super().__init__()
        self.a, self.b, self.scale = a, b, scale

    def forward(self, w):
        return w + self.scale * self.b @ self.a


class ExpertLoRADelta(torch.nn.Module):
    """Fused expert tensor -> the same with each expert's LoRA delta added. `parts` lists
    (row range, [(A_e, B_e) or None per expert])."""

    def __init__(self, parts, scale):
        super().__init__()
        self.parts, self.scale = parts, scale

    def forward(self, w):
        rows = []
        for e in range(w.shape[0]):
            pieces = []
            for (start, end), adapters in self.parts:
                block = w[e, start:end]
                if adapters[e] is not None:
                    a, b = adapters[e]
                    block = block + self.scale * b @ a
                pieces.append(block)
            rows.append(torch.cat(pieces, dim=0))
        return torch.stack(rows)


def add_lora(model, lora, seed):
    """Freezes the model and adds parametrised LoRA; returns {PEFT name: parameter}."""
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(seed * 1000 + 7)
    r, scale = lora["r"], lora["lora_alpha"] / lora["r"]
    params = {}

    def new_adapter(name, out_features, in_features):
        bound = 1 / math.sqrt(in_features)  # PEFT's kaiming_uniform(a=√5) bound
        a = torch.nn.Parameter((torch.rand(r, in_features, generator=g) * 2 - 1) * bound)
        b = torch.nn.Parameter(torch.randn(out_features, r, generator=g) * LORA_B_STD)
        params[name + ".lora_A.weight"] = a
        params[name + ".lora_B.weight"] = b
        return a, b

    holders = torch.nn.ParameterList()
    for l, layer in enumerate(model.model.layers):
        for short in ("q_proj", "k_proj", "v_proj", "o_proj"):
            if short in lora["target_modules"]:
                module = getattr(layer.self_attn, short)
                out_f, in_f = module.weight.shape
                a, b = new_adapter(f"model.layers.{l}.self_attn.{short}", out_f, in_f)
                parametrize.register_parametrization(module, "weight", LoRADelta(a, b, scale), unsafe=True)
        experts = layer.mlp.experts
        prefix = f"model.layers.{l}.block_sparse_moe.experts."
        w1 = [new_adapter(f"{prefix}{e}.w1", INNER, HIDDEN) if "w1" in lora["target_modules"] else None
              for e in range(EXPERTS)]
        w3 = [new_adapter(f"{prefix}{e}.w3", INNER, HIDDEN) if "w3" in lora["target_modules"] else None
              for e in range(EXPERTS)]
        w2 = [new_adapter(f"{prefix}{e}.w2", HIDDEN, INNER) if "w2" in lora["target_modules"] else None
              for e in range(EXPERTS)]
        parametrize.register_parametrization(
            experts, "gate_up_proj", ExpertLoRADelta([((0, INNER), w1), ((INNER, 2 * INNER), w3)], scale), unsafe=True)
        parametrize.register_parametrization(experts, "down_proj", ExpertLoRADelta([((0, HIDDEN), w2)], scale),
                                             unsafe=True)
    for p in params.values():
        holders.append(p)
    model._lora_holders = holders  # keeps them alive and visible to .double()
    return params


# ---------------------------------------------------------------------------------------------
# Running and checks


def run(model, ids, mask, labels, params):
    for p in params.values():
        p.grad = None
    logits = model(input_ids=ids, attention_mask=mask).logits
    pel, counts = per_example_losses(logits, labels)
    loss = pel.sum() / B
    loss.backward()
    grads = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)) for n, p in params.items()}
    return logits.detach(), pel.detach(), loss.detach(), grads, counts


def case_params(model, lora):
    if lora is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return dict(model.named_parameters())
    return None


def build_case(base, lora, seed):
    model = copy.deepcopy(base)
    if lora is None:
        return model, case_params(model, None)
    params = add_lora(model, lora, seed)
    return model, params


def stored_gradients(lora, grads):
    return fused_gradients(None, grads) if lora is None else dict(grads)


def check_case(case, base, lora, seed, ids, labels, mask, alt_ids, logits, pel, loss, grads):
    for i in range(B):
        tl = labels[i, 1:]
        ref = F.cross_entropy(logits[i, :-1].double(), tl, ignore_index=-100).item() if (tl != -100).any() else 0.0
        if abs(ref - pel[i].item()) > 1e-5:
            raise SystemExit(f"{case}: per-example loss {i} {pel[i].item()} vs cross_entropy {ref}")
    # padding invariance
    model, params = build_case(base, lora, seed)
    lg2, pel2, _, g2, _ = run(model, alt_ids, mask, labels, params)
    real = mask.bool()
    dl = (lg2[real] - logits[real]).abs().max().item()
    dg = max((g2[n] - grads[n]).abs().max().item() for n in grads)
    if dl > 1e-5 or dg > 1e-6:
        raise SystemExit(f"{case}: padding changes results (logits {dl}, grads {dg})")
    # float64
    m64, p64 = build_case(copy.deepcopy(base).double(), lora, seed)
    if lora is not None:
        for p in p64.values():
            p.data = p.data.double()
    _, _, loss64, g64, _ = run(m64, ids, mask, labels, p64)
    worst = 0.0
    for n in grads:
        scale = max(g64[n].abs().max().item(), 1e-3)
        worst = max(worst, (grads[n].double() - g64[n]).abs().max().item() / scale)
    if worst > 1e-3 or abs(loss64.item() - loss.item()) > 1e-5:
        raise SystemExit(f"{case}: float32 vs float64 mismatch (grads rel {worst})")
    return {"pad_logit_diff": dl, "pad_grad_diff": dg, "f32_vs_f64_rel": worst}


def main():
    import warnings
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    ids, labels, mask, alt_ids = make_batch()
    base = build_model(ids, mask)
    routing = routing_report(base, ids, mask)
    for layer in routing:
        if layer["min_gap"] < 1e-3:
            raise SystemExit(f"layer {layer['layer']}: top-{TOP_K} logit gap {layer['min_gap']} (near tie)")
    if routing[EMPTY_LAYER]["tokens_per_expert"][EMPTY_EXPERT] != 0:
        raise SystemExit(f"expert {EMPTY_EXPERT} of layer {EMPTY_LAYER} still receives tokens: {routing}")
    state = save_model_dir(base)
    check_round_trip(base, ids, mask)

    os.makedirs(REF_OUT, exist_ok=True)
    for case, lora, seed in CASES:
        model, params = build_case(base, lora, seed)
        logits, pel, loss, grads, counts = run(model, ids, mask, labels, params)
        checks = check_case(case, base, lora, seed, ids, labels, mask, alt_ids, logits, pel, loss, grads)
        stored = stored_gradients(lora, grads)
        if lora is None:
            if set(stored) != set(state):
                raise SystemExit(f"{case}: gradient names differ from the model's: {sorted(set(stored) ^ set(state))}")
            prefix = f"model.layers.{EMPTY_LAYER}.block_sparse_moe.experts.{EMPTY_EXPERT}."
            for w in ("w1", "w2", "w3"):
                if stored[prefix + w + ".weight"].abs().max().item() != 0:
                    raise SystemExit(f"{case}: the empty expert's {w} has a gradient")
        attrs = {"case": case, "model_dir": "hf/mixtral-tiny", "generator": GENERATOR,
                 "loss_definition": LOSS_DEFINITION, "pad_token_id": PAD_ID,
                 "trainable": "all" if lora is None else "adapters", "tied": 0,
                 "attn_implementation": "eager", "dtype": "float32",
                 "routing": json.dumps(routing), **versions()}
        groups = {"grads": {n: f32(g) for n, g in stored.items()}}
        if lora is not None:
            attrs.update({"lora_rank": lora["r"], "lora_alpha": lora["lora_alpha"],
                          "lora_scaling": lora["lora_alpha"] / lora["r"],
                          "lora_targets": json.dumps(lora["target_modules"]),
                          "lora_B_init": f"normal(0, {LORA_B_STD}) seeded",
                          "lora_A_init": "uniform(-1/sqrt(in), 1/sqrt(in)) seeded"})
            groups["adapters"] = {n: f32(p) for n, p in params.items()}
        arrays = {"input_ids": i64(ids), "labels": i64(labels), "attention_mask": i64(mask),
                  "lengths": np.array(LENGTHS, dtype=np.int64), "label_token_counts": i64(counts),
                  "logits": f32(logits), "per_example_losses": f32(pel), "loss": np.float32(loss.item())}
        path = os.path.join(REF_OUT, f"{case}.h5")
        write_h5(path, attrs, arrays, groups)
        size = os.path.getsize(path)
        if size >= 1024 * 1024:
            raise SystemExit(f"{path}: {size} bytes (limit 1 MB)")
        print(f"{case}: {os.path.relpath(path, REPO)} {size} bytes loss={loss.item():.9g} "
              f"per_example={[round(x, 6) for x in pel.tolist()]} grads={len(stored)} checks={checks}")
    print(f"model: {os.path.relpath(MODEL_DIR, REPO)} "
          f"{os.path.getsize(os.path.join(MODEL_DIR, 'model.safetensors'))} bytes")
    for layer in routing:
        print(f"  layer {layer['layer']}: tokens per expert {layer['tokens_per_expert']}, "
              f"per example {layer['per_example']}, min top-{TOP_K} gap {layer['min_gap']:.3g}")


if __name__ == "__main__":
    sys.exit(main())
