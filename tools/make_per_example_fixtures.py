#!/usr/bin/env python3
"""Per-example gradient fixtures for dpft's DP engine (DESIGN.md §3): true per-example squared
norms per tensor and group-wise clipped sums, computed independently of the engine's
book-keeping with torch.func (functional_call + vmap(grad)).

Inputs (nothing is downloaded):
  Tests/DPFTTests/Fixtures/hf/<model>/              tiny HF models (tools/make_model_fixtures.py)
  Tests/DPFTTests/Fixtures/reference/<case>.h5      batch, adapters and batch-mean gradients
                                                    (tools/make_forward_backward_fixtures.py)
The models are built with make_forward_backward_fixtures.build_case (same weights); LoRA adapter
values are then overwritten with the reference file's /adapters/ (and must already be equal).

Per-example loss L_i (as in the reference): HF shift, logits[t] vs labels[t+1], label -100
ignored, mean CE over example i's scored tokens, 0 when it has none (example 2). g_i = dL_i/dθ.
Each example runs inside vmap as its own padded row [1, T] with its attention-mask row.
Trainable tensors: every parameter ("-full"; a tied embedding/LM head is ONE parameter under the
embedding name, so its g_i holds both contributions incl. the cross term), LoRA A/B ("-lora").

Gradients are computed twice: float32 (checked against the reference /grads/, the batch-mean
gradient, and against a plain per-example autograd loop) and float64 (a float64 copy of the model
with RMSNorm / softmax kept in float64, as in the reference generator's float64 checks). Stored
values come from the float64 gradients.

Writes Tests/DPFTTests/Fixtures/per_example/<case>.h5 (no compression, no chunking):
  /per_example_squared_norms   float64 [B, P]  ||g_i restricted to tensor p||^2, p in tensor_names order
  /total_norms                 float64 [B]     sqrt(sum_p squared norms) (all-layer group norm)
  /clipped/all-layer/<tensor>  float32 (HF shape) sum_i C_i g_i|tensor, one group of all tensors,
                               abadi C_i = min(1, R / (n_i + 1e-6)),
                               R = median of total_norms over examples with a nonzero norm
  /clipped/all-layer/clip_factors                float64 [B]
  /clipped/param-wise-automatic/<tensor>         float32 (HF shape) sum_i C_ip g_i|p, one group per
                               tensor, automatic C_ip = R_p / (n_ip + 0.01), R_p = 0.1
  /clipped/param-wise-automatic/clip_factors     float64 [B, P]
  group attrs: threshold (float), clip_function, epsilon or gamma, groups (JSON list of lists)
  root attrs: case, reference, model_dir, generator, method, precision, tensor_names (JSON list),
              batch_size, loss_definition, torch/transformers/peft versions

Usage (repository root): tools/.venv/bin/python tools/make_per_example_fixtures.py
"""
import hashlib
import json
import os
import sys

import h5py
import numpy as np
import torch
from torch.func import functional_call, grad, vmap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_forward_backward_fixtures as fb  # noqa: E402

REPO = fb.REPO
REF = fb.REF_OUT
OUT = os.path.join(fb.FIX, "per_example")
GENERATOR = "tools/make_per_example_fixtures.py"
METHOD = "torch.func vmap(grad)"

ABADI_EPS = 1e-6
AUTO_GAMMA = 0.01
PARAM_WISE_R = 0.1
SIZE_LIMIT = 400 * 1024   # the reference generator's limit; see the note in main()

LOSS_DEFINITION = (
    "L_i = mean cross-entropy over example i's label tokens, HF shift (logits[t] vs labels[t+1], "
    "-100 ignored), 0 when it has none; g_i = dL_i/dparam, each example run alone as its padded "
    "row with its attention-mask row; mean over i of g_i equals the reference /grads/")


# ---------------------------------------------------------------------------------------------
# Per-example gradients


def trainable(model, lora):
    """{fixture name: (model parameter name, parameter)} in model order."""
    out = {}
    for n, p in model.named_parameters():   # tied weights appear once, under the embedding name
        if lora is None:
            out[n] = (n, p)
        elif p.requires_grad:
            out[fb.peft_name(n)] = (n, p)
    return out


def per_example_grads_vmap(model, names, ids, labels, mask):
    """{fixture name: [B, *shape]} per-example gradients via vmap(grad(functional_call))."""
    params = {mn: p.detach() for _, (mn, p) in names.items()}

    def loss_one(ps, ids_row, labels_row, mask_row):
        out = functional_call(model, ps, args=(),
                              kwargs={"input_ids": ids_row.unsqueeze(0),
                                      "attention_mask": mask_row.unsqueeze(0)},
                              tie_weights=True, strict=False)
        pel, _ = fb.per_example_losses(out.logits, labels_row.unsqueeze(0))
        return pel[0]

    g = vmap(grad(loss_one), in_dims=(None, 0, 0, 0))(params, ids, labels, mask)
    return {fn: g[mn].detach() for fn, (mn, _) in names.items()}


def per_example_grads_loop(model, names, ids, labels, mask):
    """Plain autograd, one example at a time (its padded row and mask): a check on vmap."""
    out = {fn: [] for fn in names}
    for i in range(ids.shape[0]):
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=ids[i:i + 1], attention_mask=mask[i:i + 1]).logits
        pel, _ = fb.per_example_losses(logits, labels[i:i + 1])
        if pel.requires_grad:
            pel[0].backward()
        for fn, (_, p) in names.items():
            out[fn].append(p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
    model.zero_grad(set_to_none=True)
    return {fn: torch.stack(v) for fn, v in out.items()}


def rel_max(a, b):
    """max |a - b| / max |b| (b the reference); absolute when b is all zero."""
    scale = b.abs().max().item()
    d = (a - b).abs().max().item()
    return d / scale if scale > 0 else d


def check_tie(model, names, case):
    """A tied model: the LM head IS the embedding parameter, and functional_call ties them."""
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    tied = emb is head
    if tied != bool(model.config.tie_word_embeddings):
        raise SystemExit(f"{case}: tie_word_embeddings does not match the loaded parameters")
    if not tied:
        return False
    emb_name = next(n for n, p in model.named_parameters() if p is emb)
    head_names = [n for n, p in model.named_parameters(remove_duplicate=False) if p is emb]
    assert len(head_names) == 2, head_names
    assert emb_name in {mn for mn, _ in names.values()} or not emb.requires_grad
    # functional_call with only the embedding name replaced must change the head too:
    # a zero embedding gives all-zero logits (no LM-head bias in these models).
    assert model.get_output_embeddings().bias is None
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        lg = functional_call(model, {emb_name: torch.zeros_like(emb)}, args=(),
                             kwargs={"input_ids": ids}, tie_weights=True, strict=False).logits
    if lg.abs().max().item() != 0.0:
        raise SystemExit(f"{case}: functional_call did not tie the LM head to {emb_name}")
    return emb_name


# ---------------------------------------------------------------------------------------------
# Clipping (DESIGN.md §3)


def clip_factor(kind, n, R):
    if not np.isfinite(n):
        return 0.0
    if kind == "abadi":
        return min(1.0, R / (n + ABADI_EPS))
    if kind == "automatic":
        return R / (n + AUTO_GAMMA)
    raise ValueError(kind)


def clipped_sum(g64, names, factors):
    """factors[i][p] -> {name: sum_i factors[i][p] * g_i|p} in float64."""
    out = {}
    for p, fn in enumerate(names):
        c = torch.tensor([factors[i][p] for i in range(len(factors))], dtype=torch.float64)
        out[fn] = (c.view(-1, *([1] * (g64[fn].dim() - 1))) * g64[fn]).sum(0)
    return out


# ---------------------------------------------------------------------------------------------


def load_reference(case):
    path = os.path.join(REF, f"{case}.h5")
    with h5py.File(path, "r") as f:
        ref = {k: torch.from_numpy(f[k][()]) for k in ("input_ids", "labels", "attention_mask")}
        ref["grads"] = {k: torch.from_numpy(f["grads"][k][()]) for k in f["grads"]}
        ref["adapters"] = ({k: torch.from_numpy(f["adapters"][k][()]) for k in f["adapters"]}
                           if "adapters" in f else None)
        ref["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        ref["per_example_losses"] = torch.from_numpy(f["per_example_losses"][()])
    return ref


def per_example_gradients(case, mdir, lora, seed):
    """The case's float64 per-example gradients g64 {name: [B, *shape]}, after every check
    against the reference file, a float32 vmap and a per-example autograd loop."""
    ref = load_reference(case)
    assert ref["attrs"]["model_dir"] == f"hf/{mdir}", ref["attrs"]["model_dir"]
    ids, labels, mask, _ = fb.make_batch()
    for k, t in (("input_ids", ids), ("labels", labels), ("attention_mask", mask)):
        if not torch.equal(ref[k], t):
            raise SystemExit(f"{case}: reference {k} differs from make_batch()")
    B = ids.shape[0]

    model, params, _ = fb.build_case(os.path.join(fb.HF, mdir), lora, seed)
    if lora is not None:
        assert ref["attrs"]["lora_rank"] == lora["r"] and ref["attrs"]["lora_alpha"] == lora["lora_alpha"]
        assert json.loads(ref["attrs"]["lora_targets"]) == lora["target_modules"]
        assert set(ref["adapters"]) == set(params), sorted(set(ref["adapters"]) ^ set(params))
        with torch.no_grad():
            for n, p in params.items():
                if not torch.equal(p, ref["adapters"][n]):
                    raise SystemExit(f"{case}: rebuilt adapter {n} differs from the reference file")
                p.copy_(ref["adapters"][n])
    names = trainable(model, lora)
    assert list(names) == list(params), "fixture names differ from build_case's"
    if set(names) != set(ref["grads"]):
        raise SystemExit(f"{case}: names differ from reference grads/: {sorted(set(names) ^ set(ref['grads']))}")
    tensor_names = list(names)
    tied = check_tie(model, names, case)

    # float32: vmap vs the reference batch-mean gradient and vs a per-example autograd loop
    g32 = per_example_grads_vmap(model, names, ids, labels, mask)
    loop = per_example_grads_loop(model, names, ids, labels, mask)
    mean_rel = max(rel_max(g32[n].sum(0) / B, ref["grads"][n]) for n in tensor_names)
    if mean_rel > 1e-5:
        raise SystemExit(f"{case}: sum_i g_i / B vs reference grads/: rel {mean_rel}")
    loop_rel = max(rel_max(g32[n], loop[n]) for n in tensor_names)
    if loop_rel > 1e-5:
        raise SystemExit(f"{case}: vmap vs per-example autograd loop: rel {loop_rel}")

    # float64
    with fb.Float64Everywhere():
        m64 = fb.to_float64(model)
        names64 = trainable(m64, lora)
        assert list(names64) == tensor_names
        if tied:
            assert m64.get_input_embeddings().weight is m64.get_output_embeddings().weight
        g64 = per_example_grads_vmap(m64, names64, ids, labels, mask)
    f64_rel = max(rel_max(g32[n].double(), g64[n]) for n in tensor_names)
    if f64_rel > 1e-3:
        raise SystemExit(f"{case}: float32 vs float64 per-example grads: rel {f64_rel}")
    mean64_rel = max(rel_max(g64[n].sum(0) / B, ref["grads"][n].double()) for n in tensor_names)
    if mean64_rel > 1e-4:
        raise SystemExit(f"{case}: float64 mean vs reference grads/: rel {mean64_rel}")

    for n in tensor_names:
        if not torch.isfinite(g64[n]).all():
            raise SystemExit(f"{case}: non-finite per-example gradient {n}")
    empty = fb.EMPTY_EXAMPLE
    if any(g64[n][empty].abs().max().item() != 0.0 for n in tensor_names):
        raise SystemExit(f"{case}: example {empty} (no labels) has a nonzero gradient")
    return dict(ref=ref, B=B, tensor_names=tensor_names, tied=tied, g64=g64, mean_rel=mean_rel,
                loop_rel=loop_rel, f64_rel=f64_rel, mean64_rel=mean64_rel, empty=empty)


def make_case(case, mdir, lora, seed, generator=GENERATOR):
    r = per_example_gradients(case, mdir, lora, seed)
    ref, B, tensor_names, tied, g64, empty = (r[k] for k in ("ref", "B", "tensor_names", "tied", "g64", "empty"))
    mean_rel, loop_rel, f64_rel, mean64_rel = (r[k] for k in ("mean_rel", "loop_rel", "f64_rel", "mean64_rel"))

    # norms
    P = len(tensor_names)
    sq = np.zeros((B, P), dtype=np.float64)
    for p, n in enumerate(tensor_names):
        sq[:, p] = (g64[n].reshape(B, -1) ** 2).sum(1).numpy()
    total = np.sqrt(sq.sum(1))
    # cross-check: flattened concatenation
    flat = torch.cat([g64[n].reshape(B, -1) for n in tensor_names], 1)
    assert np.allclose(flat.norm(dim=1).numpy(), total, rtol=1e-12, atol=0)
    if tied:
        # the tied tensor's norm is of the sum of both contributions: it is NOT the sum of two
        # separate norms; nothing to compare against here beyond the mean-gradient check above
        pass

    # all-layer, abadi, R = median of nonzero total norms
    nz = total[total > 0]
    R_all = float(np.median(nz))
    c_all = np.array([clip_factor("abadi", total[i], R_all) for i in range(B)], dtype=np.float64)
    sum_all = clipped_sum(g64, tensor_names, [[c_all[i]] * P for i in range(B)])
    # param-wise, automatic, R_p = 0.1
    c_pw = np.array([[clip_factor("automatic", np.sqrt(sq[i, p]), PARAM_WISE_R) for p in range(P)]
                     for i in range(B)], dtype=np.float64)
    sum_pw = clipped_sum(g64, tensor_names, c_pw.tolist())
    # the clipped sums' norms obey the clipping bound (group sensitivity)
    for i in range(B):
        assert c_all[i] * total[i] <= R_all * (1 + 1e-12)
        for p in range(P):
            assert c_pw[i, p] * np.sqrt(sq[i, p]) < PARAM_WISE_R

    # write
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"{case}.h5")
    if os.path.exists(path):
        os.remove(path)
    attrs = {"case": case, "reference": f"reference/{case}.h5", "model_dir": f"hf/{mdir}",
             "generator": generator, "method": METHOD,
             "precision": "gradients in float64 (float64 model copy; checked against float32 vmap "
                          "and the float32 reference grads/); clipped sums rounded to float32",
             "tensor_names": json.dumps(tensor_names), "batch_size": B,
             "empty_example": empty, "trainable": "all" if lora is None else "adapters",
             "tied": int(bool(tied)), "loss_definition": LOSS_DEFINITION, **fb.versions()}
    with h5py.File(path, "w", libver="earliest", track_order=False) as f:
        f.create_dataset("per_example_squared_norms", data=sq, track_times=False)
        f.create_dataset("total_norms", data=total, track_times=False)
        for gname, sums, cf, gattrs in (
                ("clipped/all-layer", sum_all, c_all,
                 {"threshold": R_all, "clip_function": "abadi", "epsilon": ABADI_EPS,
                  "threshold_rule": "median of total_norms over examples with a nonzero norm",
                  "groups": json.dumps([tensor_names])}),
                ("clipped/param-wise-automatic", sum_pw, c_pw,
                 {"threshold": PARAM_WISE_R, "clip_function": "automatic", "gamma": AUTO_GAMMA,
                  "threshold_rule": "R_k = 0.1 for every group",
                  "groups": json.dumps([[n] for n in tensor_names])})):
            grp = f.create_group(gname)
            for n in tensor_names:
                grp.create_dataset(n, data=np.ascontiguousarray(sums[n].numpy().astype(np.float32)),
                                   track_times=False)
            grp.create_dataset("clip_factors", data=cf, track_times=False)
            for k, v in gattrs.items():
                grp.attrs[k] = v
        for k, v in attrs.items():
            f.attrs[k] = str(v) if isinstance(v, str) else v
    size = os.path.getsize(path)
    if size >= SIZE_LIMIT:
        raise SystemExit(f"{path}: {size} bytes (limit {SIZE_LIMIT})")
    # read back
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["tensor_names"]) == tensor_names
        assert np.array_equal(f["per_example_squared_norms"][()], sq)
        for n in tensor_names:
            assert f["clipped/all-layer"][n].shape == tuple(ref["grads"][n].shape)
            assert np.array_equal(f["clipped/param-wise-automatic"][n][()],
                                  sum_pw[n].numpy().astype(np.float32))
    return {"case": case, "path": os.path.relpath(path, REPO), "size": size, "P": P,
            "total": total.tolist(), "R_all": R_all, "c_all": c_all.tolist(),
            "c_pw_range": (float(c_pw.min()), float(c_pw.max())),
            "losses": ref["per_example_losses"].tolist(), "tied": tied,
            "mean_rel": mean_rel, "loop_rel": loop_rel, "f64_rel": f64_rel, "mean64_rel": mean64_rel,
            "shapes": {n: tuple(ref["grads"][n].shape) for n in tensor_names},
            "sq": sq}


def main():
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    os.environ.setdefault("TQDM_DISABLE", "1")
    results = [make_case(*c) for c in fb.CASES]

    for s in results:
        print(f"\n{s['case']}: {s['path']}  {s['size']} bytes  P={s['P']} tied={s['tied']}")
        print(f"  per-example losses  {[round(x, 6) for x in s['losses']]}")
        print(f"  per-example total norms {[f'{x:.6g}' for x in s['total']]}")
        print(f"  all-layer abadi R={s['R_all']:.9g} clip factors {[f'{x:.6g}' for x in s['c_all']]}")
        print(f"  param-wise automatic R=0.1 clip factors in [{s['c_pw_range'][0]:.4g}, {s['c_pw_range'][1]:.4g}]")
        print(f"  checks (max rel): mean(vmap f32) vs grads/ {s['mean_rel']:.2g}; vmap vs loop {s['loop_rel']:.2g}; "
              f"f32 vs f64 {s['f64_rel']:.2g}; mean(f64) vs grads/ {s['mean64_rel']:.2g}")
        big = np.argsort(-s["sq"].max(0))[:3]
        names = list(s["shapes"])
        print("  largest per-tensor norms: " + ", ".join(
            f"{names[p]} {np.sqrt(s['sq'][:, p]).round(4).tolist()}" for p in big))
    print()
    for s in results:
        with open(os.path.join(REPO, s["path"]), "rb") as f:
            print(f"  sha256 {hashlib.sha256(f.read()).hexdigest()[:16]}  {s['path']}  {s['size']} bytes")


if __name__ == "__main__":
    sys.exit(main())
