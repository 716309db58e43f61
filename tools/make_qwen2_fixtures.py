#!/usr/bin/env python3
"""Qwen2 reference fixtures for dpft: tiny HF model folders, forward/backward references and
per-example gradients, made with transformers' Qwen2ForCausalLM (random weights from a config,
float32, eager attention). Nothing is downloaded.

Qwen2 is the Llama decoder with biases on the q, k and v projections (not o_proj, not the MLP);
the biases are drawn N(0, 0.1²) so that they matter (HF initialises them to zero).

Writes
  Tests/DPFTTests/Fixtures/hf/qwen2-tiny/        untied LM head (C = 16, 4 heads, 2 KV heads, D = 4,
  Tests/DPFTTests/Fixtures/hf/qwen2-tiny-tied/   I = 24, 2 layers, V = 301), tied LM head;
      config.json + model.safetensors + reference_logits.json, as tools/make_model_fixtures.py
      saves its models (save_model, reference_logits: the reloaded folder reproduces the
      in-memory model's state_dict and logits exactly).
  Tests/DPFTTests/Fixtures/reference/qwen2-full.h5, qwen2-lora.h5, qwen2-tied-full.h5
      make_forward_backward_fixtures.make_reference on these cases: the same batch, loss,
      self-checks and layout as the other reference files (LoRA: PEFT on q/k/v/o and the MLP).
  Tests/DPFTTests/Fixtures/per_example/qwen2-*.h5
      make_per_example_fixtures.make_case (all-layer and param-wise-automatic), plus two setups
      that group the tensors independently of dpft's grouping code (from the tensor names):
        /clipped/layer-wise/  one group per module (weight + bias, LoRA A + B)
        /clipped/per-block/   "embeddings", "block.<i>", "head" (final norm, untied lm_head)
      each with abadi clipping, R_k = median over examples of the group's nonzero norms:
        <tensor> float32 sum_i C_ik g_i|tensor, clip_factors float64 [B, K],
        thresholds float64 [K]; attrs groups (JSON list of lists), group_names (JSON list).

Usage (repository root): tools/.venv/bin/python tools/make_qwen2_fixtures.py
"""
import json
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_forward_backward_fixtures as fb  # noqa: E402
import make_model_fixtures as mm  # noqa: E402
import make_per_example_fixtures as pe  # noqa: E402

GENERATOR = "tools/make_qwen2_fixtures.py"
BIAS_STD = 0.1

CONFIG = dict(vocab_size=fb.VOCAB, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5,
              rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, use_sliding_window=False,
              bos_token_id=1, eos_token_id=2)

MODELS = [("qwen2-tiny", False, 2001), ("qwen2-tiny-tied", True, 2002)]

CASES = [
    ("qwen2-full", "qwen2-tiny", None, 31),
    ("qwen2-lora", "qwen2-tiny", dict(r=4, lora_alpha=8,
                                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                      "gate_proj", "up_proj", "down_proj"],
                                      fan_in_fan_out=False), 32),
    ("qwen2-tied-full", "qwen2-tiny-tied", None, 33),
]


def make_models():
    from transformers import Qwen2Config, Qwen2ForCausalLM
    for name, tied, seed in MODELS:
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(Qwen2Config(**CONFIG, tie_word_embeddings=tied))
        mm.perturb_(model)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith(".bias"):
                    assert any(f"self_attn.{x}_proj" in n for x in "qkv"), n
                    p.copy_(BIAS_STD * torch.randn_like(p))
        model.eval()
        d = os.path.join(fb.HF, name)
        mm.save_model(model, d)
        tensors = mm.read_saved_tensors(d)
        assert all(v[0] == "F32" for v in tensors.values()), tensors
        assert sorted({v[2] for v in tensors.values()}) == ["model.safetensors"]
        mm.reference_logits(model, d, name)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{name}: tied={tied} {len(tensors)} tensors, {size} bytes")


def module_of(name):
    for suffix in (".lora_A.weight", ".lora_B.weight", ".weight", ".bias"):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def block_of(name):
    """per-block's group: block.<i> inside a layer, embeddings, else head (final norm, lm_head)."""
    if name.startswith("model.layers."):
        return "block." + name.split(".")[2]
    return "embeddings" if "embed_tokens" in name else "head"


def add_grouped_setups(case, mdir, lora, seed):
    """Adds /clipped/layer-wise and /clipped/per-block to per_example/<case>.h5."""
    r = pe.per_example_gradients(case, mdir, lora, seed)
    names, g64, B = r["tensor_names"], r["g64"], r["B"]
    path = os.path.join(pe.OUT, f"{case}.h5")
    with h5py.File(path, "a") as f:
        for setup, key in (("layer-wise", module_of), ("per-block", block_of)):
            group_names = list(dict.fromkeys(key(n) for n in names))
            groups = [[n for n in names if key(n) == g] for g in group_names]
            norms = np.array([[sum((g64[n][i] ** 2).sum().item() for n in members) ** 0.5 for members in groups]
                              for i in range(B)])
            thresholds = np.array([float(np.median(norms[:, k][norms[:, k] > 0])) for k in range(len(groups))])
            factors = np.array([[pe.clip_factor("abadi", norms[i, k], thresholds[k]) for k in range(len(groups))]
                                for i in range(B)])
            per_tensor = [[factors[i][group_names.index(key(n))] for n in names] for i in range(B)]
            sums = pe.clipped_sum(g64, names, per_tensor)
            grp = f.create_group(f"clipped/{setup}")
            for n in names:
                grp.create_dataset(n, data=np.ascontiguousarray(sums[n].numpy().astype(np.float32)), track_times=False)
            grp.create_dataset("clip_factors", data=factors, track_times=False)
            grp.create_dataset("thresholds", data=thresholds, track_times=False)
            grp.attrs["clip_function"] = "abadi"
            grp.attrs["epsilon"] = pe.ABADI_EPS
            grp.attrs["threshold_rule"] = "R_k = median of group k's norms over examples with a nonzero norm"
            grp.attrs["groups"] = json.dumps(groups)
            grp.attrs["group_names"] = json.dumps(group_names)
            print(f"  {case} {setup}: {len(groups)} groups, thresholds {np.round(thresholds, 4).tolist()}")
    size = os.path.getsize(path)
    if size >= pe.SIZE_LIMIT:
        raise SystemExit(f"{path}: {size} bytes (limit {pe.SIZE_LIMIT})")


def main():
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    make_models()
    summary = []
    fb.make_reference(summary, cases=CASES, generator=GENERATOR)
    for s in summary:
        print(f"{s['case']}: {s['path']} {s['size']} bytes, loss {s['loss']:.6f}, "
              f"f32 vs f64 grads {s['checks']['f32_vs_f64_rel']:.2g}")
    for case, mdir, lora, seed in CASES:
        result = pe.make_case(case, mdir, lora, seed, generator=GENERATOR)
        print(f"{case}: {result['path']} P={result['P']} total norms {np.round(result['total'], 5).tolist()}")
        add_grouped_setups(case, mdir, lora, seed)


if __name__ == "__main__":
    sys.exit(main())
