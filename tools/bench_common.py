"""What tools/bench_torch_step.py and tools/bench_opacus_step.py share: the model options they
take (the same names and defaults as `dpft bench step`, so benchmarks/run.sh passes one set of
options to all three) and the random-weight model both time."""
import argparse
import json

import torch
import transformers


def step_arguments(description: str) -> argparse.ArgumentParser:
    """A parser with --config, --batch-size, --sequence-length, --steps and --threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default="recipes/models/gpt2-reference.json")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    return parser


def random_model(args: argparse.Namespace, tie_word_embeddings: bool = True):
    """(config, model): the config file's model with random weights (seed 0), dropout off and
    eager attention, on args.threads threads."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.config) as handle:
        config = transformers.AutoConfig.for_model(**json.load(handle))
    for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        if hasattr(config, key):
            setattr(config, key, 0.0)
    if not tie_word_embeddings:
        config.tie_word_embeddings = False
    return config, transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
