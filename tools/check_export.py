#!/usr/bin/env python3
"""Check that a model directory exported by `dpft export` loads in transformers and equals a
reference Hugging Face directory exactly.

Usage: tools/.venv/bin/python tools/check_export.py EXPORTED_DIR REFERENCE_HF_DIR [--atol X]

Both directories are loaded with AutoModelForCausalLM.from_pretrained (local files only,
float32). The check fails when
  - either directory does not load, or loading reports missing, unexpected or
    shape-mismatched tensors (a missing tensor would silently be randomly initialised);
  - model_type, architecture or the state_dict names/shapes differ;
  - any state_dict tensor differs (torch.equal, or max |diff| <= atol when --atol is given);
  - the logits on a fixed input batch differ (same rule);
  - a tensor stored in the exported *.safetensors files is not F32.
Tensor names stored in the files that differ from the reference's files (e.g. an explicit
lm_head.weight in a tied model) are reported as notes, not failures: transformers resolves them.
Prints one final line "PASS: ..." or "FAIL: ..." and exits 0 on PASS, 1 on FAIL.
"""
import argparse
import json
import os
import sys

BASE_INPUT_IDS = [[1, 5, 9, 33, 100, 7], [2, 250, 17, 0, 42, 300]]


def file_tensors(path):
    """{name: dtype string} over every *.safetensors file in path."""
    from safetensors import safe_open
    out = {}
    for fn in sorted(os.listdir(path)):
        if fn.endswith(".safetensors"):
            with safe_open(os.path.join(path, fn), framework="pt") as f:
                for k in f.keys():
                    out[k] = f.get_slice(k).get_dtype()
    return out


def load(path, label, problems):
    import torch
    from transformers import AutoModelForCausalLM
    if not os.path.isdir(path):
        problems.append(f"{label}: {path} is not a directory")
        return None
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=torch.float32, output_loading_info=True)
    except Exception as e:  # noqa: BLE001 - report any loading failure
        problems.append(f"{label}: from_pretrained failed: {type(e).__name__}: {e}")
        return None
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        vals = info.get(kind) or []
        if vals:
            problems.append(f"{label}: {kind}: {sorted(map(str, vals))}")
    return model.eval()


def compare(a, b, atol):
    import torch
    if a.shape != b.shape:
        return f"shape {list(a.shape)} vs {list(b.shape)}"
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} vs {b.dtype}"
    if torch.equal(a, b):
        return None
    diff = (a.double() - b.double()).abs().max().item()
    if atol is not None and diff <= atol:
        return None
    return f"max |diff| {diff:.3e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exported")
    ap.add_argument("reference")
    ap.add_argument("--atol", type=float, default=None,
                    help="allow this absolute difference (default: bitwise identical)")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    torch.set_num_threads(1)
    problems = []
    exp = load(args.exported, "exported", problems)
    ref = load(args.reference, "reference", problems)

    if exp is not None and ref is not None:
        fe, fr = file_tensors(args.exported), file_tensors(args.reference)
        bad = {k: v for k, v in fe.items() if v != "F32"}
        if bad:
            problems.append(f"exported files hold non-F32 tensors: {bad}")
        if set(fe) != set(fr):
            print(f"note: names in files only in exported: {sorted(set(fe) - set(fr))}, "
                  f"only in reference: {sorted(set(fr) - set(fe))}")

    if exp is not None and ref is not None:
        ce, cr = exp.config, ref.config
        if ce.model_type != cr.model_type:
            problems.append(f"model_type {ce.model_type!r} vs {cr.model_type!r}")
        if type(exp).__name__ != type(ref).__name__:
            problems.append(f"architecture {type(exp).__name__} vs {type(ref).__name__}")
        te = getattr(ce, "tie_word_embeddings", None)
        tr = getattr(cr, "tie_word_embeddings", None)
        if te != tr:
            problems.append(f"tie_word_embeddings {te} vs {tr}")

        sde, sdr = exp.state_dict(), ref.state_dict()
        only_e, only_r = sorted(set(sde) - set(sdr)), sorted(set(sdr) - set(sde))
        if only_e:
            problems.append(f"tensors only in exported: {only_e}")
        if only_r:
            problems.append(f"tensors only in reference: {only_r}")
        n_ok = 0
        for k in sorted(set(sde) & set(sdr)):
            why = compare(sde[k], sdr[k], args.atol)
            if why:
                problems.append(f"tensor {k}: {why}")
            else:
                n_ok += 1
        print(f"state_dict: {n_ok}/{len(sdr)} reference tensors equal")

        vocab = min(getattr(ce, "vocab_size", 1), getattr(cr, "vocab_size", 1))
        ids = torch.tensor(BASE_INPUT_IDS, dtype=torch.long) % vocab
        try:
            with torch.no_grad():
                le = exp(input_ids=ids).logits
                lr = ref(input_ids=ids).logits
            why = compare(le, lr, args.atol)
            if why:
                problems.append(f"logits: {why}")
            else:
                print(f"logits: equal on input_ids {ids.tolist()} (shape {list(lr.shape)})")
        except Exception as e:  # noqa: BLE001
            problems.append(f"forward failed: {type(e).__name__}: {e}")

    if problems:
        for p in problems:
            print(f"  - {p}")
        print(f"FAIL: {args.exported} vs {args.reference}: {len(problems)} problem(s)")
        return 1
    mode = "bitwise identical" if args.atol is None else f"within atol={args.atol}"
    print(f"PASS: {args.exported} matches {args.reference} ({mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
