#!/usr/bin/env python3
"""Loss of an exported model in transformers on a {"input_ids", "labels"?} JSON Lines file,
computed as `dpft eval` does (mean token cross-entropy over every scored token, HF shift), so the
two can be compared: e.g. a LoRA checkpoint evaluated by dpft vs its `--merge-lora` export.

Usage: tools/.venv/bin/python tools/check_export_loss.py EXPORT_DIR DATA.jsonl [--expect LOSS] [--tolerance 1e-4]
"""
import argparse
import json
import sys

import torch
import transformers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("data")
    parser.add_argument("--expect", type=float, help="dpft's loss; exit 1 unless within --tolerance (relative)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    model = transformers.AutoModelForCausalLM.from_pretrained(args.directory, attn_implementation="eager")
    model.eval()
    total, tokens = 0.0, 0
    with open(args.data) as handle, torch.no_grad():
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            ids = torch.tensor([record["input_ids"]])
            labels = torch.tensor([record.get("labels", record["input_ids"])])
            logits = model(input_ids=ids).logits[0, :-1].double()
            targets = labels[0, 1:]
            mask = targets != -100
            if mask.any():
                total += torch.nn.functional.cross_entropy(logits[mask], targets[mask], reduction="sum").item()
                tokens += int(mask.sum())
    loss = total / tokens
    print(f"transformers loss {loss:.6f} over {tokens} tokens")
    if args.expect is not None:
        ok = abs(loss - args.expect) / args.expect <= args.tolerance
        print(("PASS" if ok else "FAIL") + f": dpft {args.expect:.6f}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
