#!/usr/bin/env python3
"""Forward/backward reference fixtures (logits, loss, every gradient) and eval fixtures for dpft.

Builds on the tiny HF models in Tests/DPFTTests/Fixtures/hf/ (tools/make_model_fixtures.py);
nothing is downloaded.

Writes
  Tests/DPFTTests/Fixtures/reference/<case>.h5      one file per case (see CASES)
  Tests/DPFTTests/Fixtures/eval/llama-gqa-ids.jsonl  pre-tokenized eval data
  Tests/DPFTTests/Fixtures/eval/llama-gqa-text.jsonl {"text"} eval data
  Tests/DPFTTests/Fixtures/eval/expected.json        what `dpft eval` must report for each

Loss (DESIGN.md §3), computed here from the logits, not by HF's built-in loss:
  HF shift: logits[:, t] are scored against labels[:, t+1], t = 0..T-2; label -100 = ignored.
  L_i = mean CE over example i's scored tokens (0 when it has none: no gradient either);
  loss = (1/B) * sum_i L_i, B counting every example (also the empty one).

Reference file layout (all float data float32, all integer data int64, no compression):
  /input_ids [B,T]  /labels [B,T]  /attention_mask [B,T]  /lengths [B]  /label_token_counts [B]
  /logits [B,T,V]   (whole batch incl. pad positions; compare real positions only)
  /per_example_losses [B]   /loss  scalar dataspace, shape []
  /grads/<name>     one per trainable tensor, HF names and HF shapes (GPT-2 Conv1D [in, out]);
                    tied embedding/LM head: one tensor under the embedding name (sum of both).
                    LoRA: PEFT saved-file names without "base_model.model.", e.g.
                    transformer.h.0.attn.c_attn.lora_A.weight [r, in], ...lora_B.weight [out, r]
  /adapters/<name>  (LoRA cases) the adapter values used
  root attrs: case, model_dir, generator, torch/transformers/peft versions, loss_shape_note,
              loss_definition, pad_token_id, trainable, tied; LoRA: lora_rank, lora_alpha,
              lora_scaling, lora_targets (JSON list), lora_fan_in_fan_out

Self-checks: loss vs. torch cross_entropy per example, float64 finite differences of a few
gradient entries, float32 vs float64 gradients, padding invariance (other pad ids change no
real-position logit and no gradient), zero contribution of the example without labels.

Usage (repository root): tools/.venv/bin/python tools/make_forward_backward_fixtures.py
"""
import copy
import hashlib
import json
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(REPO, "Tests", "DPFTTests", "Fixtures")
HF = os.path.join(FIX, "hf")
REF_OUT = os.path.join(FIX, "reference")
EVAL_OUT = os.path.join(FIX, "eval")
GENERATOR = "tools/make_forward_backward_fixtures.py"

VOCAB = 301
B, T = 4, 12
LENGTHS = [12, 7, 3, 9]
PAD_ID = 0
PROMPT_MASK = {0: 3, 3: 2}   # example -> number of leading label tokens set to -100
EMPTY_EXAMPLE = 2            # every label -100
BATCH_SEED = 4242
LORA_B_STD = 0.05

CASES = [
    # name, model dir, lora config or None, seed
    ("gpt2-full", "gpt2-tiny", None, 11),
    ("gpt2-lora", "gpt2-tiny", dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"],
                                    fan_in_fan_out=True), 12),
    ("llama-gqa-full", "llama-tiny-gqa", None, 13),
    ("llama-gqa-lora", "llama-tiny-gqa", dict(r=4, lora_alpha=16,
                                              target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                              "gate_proj", "up_proj", "down_proj"],
                                              fan_in_fan_out=False), 14),
    ("llama-tied-full", "llama-tiny-tied", None, 15),
]

LOSS_DEFINITION = (
    "HF shift: logits[:, t] scored against labels[:, t+1] for t = 0..T-2, label -100 ignored; "
    "per_example_losses[i] = mean cross-entropy over example i's scored tokens (0 if none); "
    "loss = sum(per_example_losses) / B with B = 4 (the example without labels counts); "
    "grads = d loss / d param (float32 autograd)")
LOSS_SHAPE_NOTE = "loss is a scalar dataspace (shape []), float32; per_example_losses is [B] float32"


def versions():
    import peft
    import transformers
    return {"torch_version": torch.__version__, "transformers_version": transformers.__version__,
            "peft_version": peft.__version__}


# ---------------------------------------------------------------------------------------------
# Batch and loss


def make_batch():
    g = torch.Generator().manual_seed(BATCH_SEED)
    ids = torch.randint(3, VOCAB, (B, T), generator=g, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for i, n in enumerate(LENGTHS):
        mask[i, :n] = 1
    ids = ids * mask + PAD_ID * (1 - mask)
    labels = ids.clone()
    labels[mask == 0] = -100
    for i, n in PROMPT_MASK.items():
        labels[i, :n] = -100
    labels[EMPTY_EXAMPLE, :] = -100
    # pad ids for the padding-invariance check
    alt = torch.randint(3, VOCAB, (B, T), generator=g, dtype=torch.long)
    alt_ids = ids * mask + alt * (1 - mask)
    return ids, labels, mask, alt_ids


def per_example_losses(logits, labels):
    """[B] per-example mean token CE (HF shift); 0 for an example without label tokens."""
    sl = logits[:, :-1, :]
    tl = labels[:, 1:]
    valid = tl != -100
    logp = torch.log_softmax(sl, dim=-1)
    nll = -logp.gather(-1, tl.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    nll = torch.where(valid, nll, torch.zeros_like(nll))
    counts = valid.sum(dim=1)
    return nll.sum(dim=1) / counts.clamp(min=1).to(nll.dtype), counts


def run(model, ids, labels, mask, params):
    """Forward + backward on the batch loss. Returns logits, per-example losses, loss, grads."""
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids, attention_mask=mask).logits
    pel, counts = per_example_losses(logits, labels)
    loss = pel.sum() / B
    loss.backward()
    grads = {}
    for name, p in params.items():
        grads[name] = (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
    return logits.detach(), pel.detach(), loss.detach(), grads, counts


# ---------------------------------------------------------------------------------------------
# Models


def load_model(model_dir):
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager",
                                             dtype=torch.float32)
    m.eval()
    return m


def check_loaded(model, model_dir):
    """The loaded model reproduces the fixture's reference_logits.json; tied weights are shared."""
    with open(os.path.join(model_dir, "reference_logits.json")) as f:
        ref = json.load(f)
    with torch.no_grad():
        lg = model(input_ids=torch.tensor(ref["input_ids"])).logits
    diff = (lg - torch.tensor(ref["logits"], dtype=torch.float32)).abs().max().item()
    if diff > 1e-5:
        raise SystemExit(f"{model_dir}: logits differ from reference_logits.json by {diff}")
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if bool(model.config.tie_word_embeddings) != (emb is head):
        raise SystemExit(f"{model_dir}: tie_word_embeddings does not match the loaded parameters")


def peft_name(n):
    """PEFT parameter name -> PEFT saved-file name without the base_model.model. prefix."""
    prefix = "base_model.model."
    assert n.startswith(prefix), n
    n = n[len(prefix):]
    for ab in ("lora_A", "lora_B"):
        n = n.replace(f".{ab}.default.", f".{ab}.")
    return n


def build_case(model_dir, lora, seed):
    """Returns (model, {fixture name: parameter}) with exactly the trainable tensors."""
    torch.manual_seed(seed)
    model = load_model(model_dir)
    check_loaded(model, model_dir)
    if lora is None:
        for p in model.parameters():
            p.requires_grad_(True)
        params = dict(model.named_parameters())  # tied weights appear once (embedding name)
        return model, params, None
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    cfg = LoraConfig(r=lora["r"], lora_alpha=lora["lora_alpha"], lora_dropout=0.0,
                     target_modules=lora["target_modules"], fan_in_fan_out=lora["fan_in_fan_out"],
                     bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    model.eval()
    g = torch.Generator().manual_seed(seed * 1000 + 7)
    info = {"scaling": set(), "modules": []}
    with torch.no_grad():
        for mname, mod in model.named_modules():
            if hasattr(mod, "lora_B") and "default" in getattr(mod, "lora_B", {}):
                w = mod.lora_B["default"].weight
                w.copy_(torch.randn(w.shape, generator=g) * LORA_B_STD)
                info["scaling"].add(float(mod.scaling["default"]))
                info["modules"].append((peft_name(mname + ".x")[:-2], type(mod.base_layer).__name__,
                                        tuple(mod.base_layer.weight.shape)))
    params = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert "lora_" in n, f"unexpected trainable {n}"
            params[peft_name(n)] = p
        else:
            assert "lora_" not in n, f"frozen adapter {n}"
    saved = {k[len("base_model.model."):] for k in get_peft_model_state_dict(model)}
    if saved != set(params):
        raise SystemExit(f"PEFT saved names differ from derived names: {sorted(saved ^ set(params))}")
    return model, params, info


# ---------------------------------------------------------------------------------------------
# Checks


def _rmsnorm_forward_keep_dtype(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


class Float64Everywhere:
    """HF Llama computes RMSNorm and the attention softmax in float32 even for a float64 model;
    that float32 rounding (~1e-8) makes finite differences noisy. Inside this context (and on
    models passed through to_float64) those run in float64. (Rotary cos/sin stay float32-made
    constants: they do not depend on parameters.)"""

    def __enter__(self):
        self._softmax = F.softmax
        orig = self._softmax

        def softmax(input, dim=None, _stacklevel=3, dtype=None):
            if dtype is torch.float32 and input.dtype == torch.float64:
                dtype = None
            return orig(input, dim=dim, _stacklevel=_stacklevel, dtype=dtype)
        torch.nn.functional.softmax = softmax
        return self

    def __exit__(self, *exc):
        torch.nn.functional.softmax = self._softmax
        return False


def to_float64(model):
    import types
    m64 = copy.deepcopy(model).double()
    for mod in m64.modules():
        if type(mod).__name__.endswith("RMSNorm"):
            mod.forward = types.MethodType(_rmsnorm_forward_keep_dtype, mod)
    return m64


def finite_difference_checks(model, params, ids, labels, mask, case):
    """float64: autograd vs central differences for a few entries; returns float64 grads."""
    with Float64Everywhere():
        return _finite_difference_checks(model, params, ids, labels, mask, case)


def _finite_difference_checks(model, params, ids, labels, mask, case):
    m64 = to_float64(model)
    p64 = {}
    named = dict(m64.named_parameters())
    # map fixture names onto the float64 copy
    for n, p in named.items():
        if p.requires_grad:
            key = peft_name(n) if n.startswith("base_model.model.") else n
            if key in params:
                p64[key] = p
    assert set(p64) == set(params), (sorted(set(params) - set(p64)))
    _, _, loss64, g64, _ = run(m64, ids, labels, mask, p64)

    def loss_at():
        with torch.no_grad():
            lg = m64(input_ids=ids, attention_mask=mask).logits
            pel, _ = per_example_losses(lg, labels)
            return (pel.sum() / B).item()

    names = list(params)
    picks = [names[0], names[len(names) // 2], names[-1]]
    eps = 1e-6
    results = []
    for name in picks:
        g = g64[name]
        idx = np.unravel_index(int(g.abs().argmax()), tuple(g.shape))
        p = p64[name]
        with torch.no_grad():
            orig = p[idx].item()
            p[idx] = orig + eps
            lp = loss_at()
            p[idx] = orig - eps
            lm = loss_at()
            p[idx] = orig
        fd = (lp - lm) / (2 * eps)
        ad = g[idx].item()
        rel = abs(fd - ad) / max(abs(ad), 1e-12)
        results.append((name, tuple(int(i) for i in idx), ad, fd, rel))
        if rel > 1e-5:
            raise SystemExit(f"{case}: finite difference mismatch for {name}{idx}: autograd {ad} fd {fd}")
    return loss64.item(), g64, results


def check_case(case, model, params, ids, labels, mask, alt_ids, logits, pel, loss, grads):
    # 1. loss definition against torch's cross_entropy per example
    for i in range(B):
        tl = labels[i, 1:]
        if (tl != -100).any():
            ref = F.cross_entropy(logits[i, :-1].double(), tl, ignore_index=-100).item()
        else:
            ref = 0.0
        if abs(ref - pel[i].item()) > 1e-5:
            raise SystemExit(f"{case}: per-example loss {i} {pel[i].item()} vs cross_entropy {ref}")
    if abs(pel.double().mean().item() - loss.item()) > 1e-6:
        raise SystemExit(f"{case}: loss is not the mean of per-example losses")

    # 2. padding invariance
    lg2, pel2, loss2, g2, _ = run(model, alt_ids, labels, mask, params)
    real = mask.bool()
    dl = (lg2[real] - logits[real]).abs().max().item()
    dg = max((g2[n] - grads[n]).abs().max().item() for n in grads)
    bitwise = torch.equal(lg2[real], logits[real]) and all(torch.equal(g2[n], grads[n]) for n in grads)
    if dl > 1e-6 or dg > 1e-7 or not torch.equal(pel2, pel):
        raise SystemExit(f"{case}: padding changes results (logits {dl}, grads {dg})")

    # 3. example without labels contributes nothing: grads of the 3 other examples, scaled 3/4
    keep = [i for i in range(B) if i != EMPTY_EXAMPLE]
    model.zero_grad(set_to_none=True)
    lg3 = model(input_ids=ids[keep], attention_mask=mask[keep]).logits
    pel3, _ = per_example_losses(lg3, labels[keep])
    (pel3.sum() / B).backward()
    dz = max(((p.grad if p.grad is not None else torch.zeros_like(p)) - grads[n]).abs().max().item()
             for n, p in params.items())
    model.zero_grad(set_to_none=True)
    if dz > 1e-6:
        raise SystemExit(f"{case}: empty example changes gradients ({dz})")

    # 4. float64 finite differences + float32 vs float64 gradients
    loss64, g64, fd = finite_difference_checks(model, params, ids, labels, mask, case)
    worst = 0.0
    for n in grads:
        scale = max(g64[n].abs().max().item(), 1e-3)
        worst = max(worst, (grads[n].double() - g64[n]).abs().max().item() / scale)
    if worst > 1e-3 or abs(loss64 - loss.item()) > 1e-5:
        raise SystemExit(f"{case}: float32 vs float64 mismatch (grads rel {worst}, loss {loss64} vs {loss.item()})")
    return {"pad_logit_diff": dl, "pad_grad_diff": dg, "pad_bitwise": bitwise,
            "empty_example_diff": dz, "fd": fd, "f32_vs_f64_rel": worst, "loss64": loss64}


# ---------------------------------------------------------------------------------------------
# Writing


def write_h5(path, root_attrs, arrays, groups):
    if os.path.exists(path):
        os.remove(path)
    with h5py.File(path, "w", libver="earliest", track_order=False) as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v, track_times=False)
        for gname, content in groups.items():
            grp = f.create_group(gname)
            for k in sorted(content):
                grp.create_dataset(k, data=content[k], track_times=False)
        for k, v in root_attrs.items():
            # plain str (torch.__version__ is a str subclass h5py cannot store) -> UTF-8 string
            f.attrs[k] = str(v) if isinstance(v, str) else v


def f32(t):
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))


def i64(t):
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.int64))


def make_reference(summary, cases=CASES, generator=GENERATOR):
    """Writes reference/<case>.h5 for each (case, model dir under hf/, lora, seed) of `cases`."""
    os.makedirs(REF_OUT, exist_ok=True)
    ids, labels, mask, alt_ids = make_batch()
    for case, mdir, lora, seed in cases:
        model_dir = os.path.join(HF, mdir)
        model, params, lora_info = build_case(model_dir, lora, seed)
        logits, pel, loss, grads, counts = run(model, ids, labels, mask, params)
        checks = check_case(case, model, params, ids, labels, mask, alt_ids, logits, pel, loss, grads)
        for n, p in params.items():
            assert grads[n].shape == p.shape
            assert torch.isfinite(grads[n]).all()
        attrs = {"case": case, "model_dir": f"hf/{mdir}", "generator": generator,
                 "loss_shape_note": LOSS_SHAPE_NOTE, "loss_definition": LOSS_DEFINITION,
                 "pad_token_id": PAD_ID, "trainable": "all" if lora is None else "adapters",
                 "tied": int(bool(model.config.tie_word_embeddings)),
                 "attn_implementation": "eager", "dtype": "float32", **versions()}
        groups = {"grads": {n: f32(g) for n, g in grads.items()}}
        if lora is not None:
            scal = sorted(lora_info["scaling"])
            assert scal == [lora["lora_alpha"] / lora["r"]], scal
            attrs.update({"lora_rank": lora["r"], "lora_alpha": lora["lora_alpha"],
                          "lora_scaling": float(scal[0]),
                          "lora_targets": json.dumps(lora["target_modules"]),
                          "lora_fan_in_fan_out": int(lora["fan_in_fan_out"]),
                          "lora_dropout": 0.0,
                          "lora_B_init": f"normal(0, {LORA_B_STD}) seeded, overwriting PEFT's zeros",
                          "lora_A_init": "PEFT default (kaiming_uniform(a=sqrt(5))) after torch.manual_seed"})
            groups["adapters"] = {n: f32(p) for n, p in params.items()}
        arrays = {"input_ids": i64(ids), "labels": i64(labels), "attention_mask": i64(mask),
                  "lengths": np.array(LENGTHS, dtype=np.int64),
                  "label_token_counts": i64(counts),
                  "logits": f32(logits), "per_example_losses": f32(pel),
                  "loss": np.float32(loss.item())}
        path = os.path.join(REF_OUT, f"{case}.h5")
        write_h5(path, attrs, arrays, groups)
        size = os.path.getsize(path)
        if size >= 400 * 1024:
            raise SystemExit(f"{path}: {size} bytes (limit 400 KB)")
        # read back
        with h5py.File(path, "r") as f:
            assert f["loss"].shape == () and f["loss"].dtype == np.float32
            for n, g in grads.items():
                assert np.array_equal(f["grads"][n][()], f32(g))
        summary.append({"case": case, "path": os.path.relpath(path, REPO), "size": size,
                        "loss": loss.item(), "per_example": pel.tolist(), "counts": counts.tolist(),
                        "grads": {n: tuple(g.shape) for n, g in grads.items()},
                        "lora": lora_info, "checks": checks})


# ---------------------------------------------------------------------------------------------
# Eval fixtures

EVAL_TEXTS = [
    "The model trains on private data every step.",
    "Yesterday, a careful researcher checks the privacy ledger before lunch!",
    "The noisy update adds some noise to the weights.",
    "Sometimes the server saves a new checkpoint at the end of the epoch and my friend counts the tokens 42.",
    "Now every client learns slowly?",
]


def make_eval_ids():
    g = torch.Generator().manual_seed(777)
    lengths = [5, 9, 13, 20, 7, 16]
    lines = []
    for k, n in enumerate(lengths):
        ids = torch.randint(3, VOCAB, (n,), generator=g).tolist()
        if k in (0, 3):        # no "labels": labels = input_ids
            lines.append({"input_ids": ids})
        elif k == 1:           # explicit labels equal to input_ids
            lines.append({"input_ids": ids, "labels": list(ids)})
        elif k == 2:           # prompt masking: first 6 not trained on
            lines.append({"input_ids": ids, "labels": [-100] * 6 + ids[6:]})
        elif k == 4:           # masked prefix and a masked token in the middle
            lab = list(ids)
            lab[0] = lab[1] = -100
            lab[4] = -100
            lines.append({"input_ids": ids, "labels": lab})
        else:                  # mask first 10 and the last one
            lab = [-100] * 10 + ids[10:-1] + [-100]
            lines.append({"input_ids": ids, "labels": lab})
    return lines


def eval_examples(model, examples):
    """Mean token CE over all label tokens of the file (HF shift), per-example forward, float64 sums."""
    total, tokens, per = 0.0, 0, []
    for ex in examples:
        ids = torch.tensor([ex["input_ids"]], dtype=torch.long)
        labels = torch.tensor([ex.get("labels", ex["input_ids"])], dtype=torch.long)
        with torch.no_grad():
            out = model(input_ids=ids, labels=labels)
        lg = out.logits[0, :-1].double()
        tl = labels[0, 1:]
        valid = tl != -100
        ce = F.cross_entropy(lg[valid], tl[valid], reduction="sum").item() if valid.any() else 0.0
        n = int(valid.sum())
        # transformers' own mean loss for this example must agree
        if n and abs(out.loss.item() - ce / n) > 1e-5:
            raise SystemExit(f"eval: own CE {ce / n} vs transformers {out.loss.item()}")
        total += ce
        tokens += n
        per.append({"tokens": n, "ce_sum": ce})
    loss = total / tokens
    return loss, tokens, per


def make_eval(summary):
    import sentencepiece as spm
    os.makedirs(EVAL_OUT, exist_ok=True)
    mdir = "llama-tiny-gqa"
    model = load_model(os.path.join(HF, mdir))
    m64 = to_float64(model)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(HF, mdir, "tokenizer.model"))
    assert sp.get_piece_size() == VOCAB

    ids_lines = make_eval_ids()
    text_ids = [sp.encode(t, add_bos=False, add_eos=False) for t in EVAL_TEXTS]
    for t, tid in zip(EVAL_TEXTS, text_ids):
        if sp.unk_id() in tid:
            raise SystemExit(f"eval text has unknown pieces: {t!r} -> {sp.id_to_piece(tid)}")
        if not (5 <= len(tid) <= 40):
            raise SystemExit(f"eval text length {len(tid)}: {t!r}")
        if sp.decode(tid) != t:
            raise SystemExit(f"eval text does not round-trip: {t!r} -> {sp.decode(tid)!r}")
    text_examples = [{"input_ids": tid} for tid in text_ids]

    files = [("llama-gqa-ids.jsonl", ids_lines, ids_lines, None),
             ("llama-gqa-text.jsonl", [{"text": t} for t in EVAL_TEXTS], text_examples, text_ids)]
    entries = []
    for fname, lines, examples, tids in files:
        with open(os.path.join(EVAL_OUT, fname), "w") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        loss, tokens, per = eval_examples(model, examples)
        with Float64Everywhere():
            loss64, tokens64, _ = eval_examples(m64, examples)
        assert tokens64 == tokens
        entry = {"file": fname, "model_dir": f"hf/{mdir}", "loss": loss, "tokens": tokens,
                 "examples": len(examples), "perplexity": math.exp(loss),
                 "loss_float64_model": loss64,
                 "per_example": per}
        if tids is not None:
            entry["token_ids"] = tids
            entry["tokenization"] = {"tokenizer": f"hf/{mdir}/tokenizer.model", "add_bos": False,
                                     "add_eos": False,
                                     "labels": "input_ids (every token after the first is scored)"}
        entries.append(entry)
        summary.append({"eval": fname, "loss": loss, "tokens": tokens, "examples": len(examples),
                        "perplexity": math.exp(loss), "loss64": loss64,
                        "size": os.path.getsize(os.path.join(EVAL_OUT, fname))})
    expected = {
        "generator": GENERATOR, **versions(),
        "definition": "loss = sum of token cross-entropy over ALL label tokens of the file / number of "
                      "those tokens (HF shift: logits[t] vs labels[t+1], -100 ignored; no labels = "
                      "input_ids); each example run alone (no padding, no attention mask), float32 "
                      "model, eager attention, CE summed in float64; perplexity = exp(loss). "
                      "loss_float64_model: the same with the model in float64.",
        "files": entries,
    }
    with open(os.path.join(EVAL_OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


# ---------------------------------------------------------------------------------------------


def main():
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    os.environ.setdefault("TQDM_DISABLE", "1")
    summary = []
    make_reference(summary)
    make_eval(summary)

    print("== reference fixtures")
    for s in summary:
        if "case" not in s:
            continue
        print(f"\n{s['case']}: {s['path']}  {s['size']} bytes  loss={s['loss']:.9g}")
        print(f"  per_example_losses={[round(x, 7) for x in s['per_example']]} "
              f"label_token_counts={s['counts']}")
        c = s["checks"]
        print(f"  padding: max logit diff {c['pad_logit_diff']:.3g}, max grad diff {c['pad_grad_diff']:.3g}, "
              f"bitwise={c['pad_bitwise']}; empty example diff {c['empty_example_diff']:.3g}; "
              f"f32 vs f64 grad rel {c['f32_vs_f64_rel']:.3g}; loss64 {c['loss64']:.12g}")
        for name, idx, ad, fd, rel in c["fd"]:
            print(f"  fd64 {name}{list(idx)}: autograd {ad:.10g} fd {fd:.10g} rel {rel:.2g}")
        if s["lora"]:
            print(f"  lora scaling {sorted(s['lora']['scaling'])}")
            for mname, typ, shape in s["lora"]["modules"]:
                print(f"    wraps {mname:40s} {typ} weight {list(shape)}")
        print(f"  grads ({len(s['grads'])}):")
        for n, shape in s["grads"].items():
            print(f"    grads/{n:55s} float32 {list(shape)}")
    print("\n== eval fixtures")
    for s in summary:
        if "eval" in s:
            print(f"  {s['eval']}: {s['size']} bytes loss={s['loss']:.12g} tokens={s['tokens']} "
                  f"examples={s['examples']} ppl={s['perplexity']:.9g} (float64 model {s['loss64']:.12g})")
    print(f"  expected.json: {os.path.getsize(os.path.join(EVAL_OUT, 'expected.json'))} bytes")
    for fn in sorted(os.listdir(REF_OUT)) + ["../eval/" + x for x in sorted(os.listdir(EVAL_OUT))]:
        p = os.path.join(REF_OUT, fn)
        with open(p, "rb") as f:
            print(f"  sha256 {hashlib.sha256(f.read()).hexdigest()[:16]}  {os.path.normpath(os.path.relpath(p, REPO))}")


if __name__ == "__main__":
    sys.exit(main())
