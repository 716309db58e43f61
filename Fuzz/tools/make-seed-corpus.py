#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (Fuzz/Corpus/<target>/), small valid and invalid
examples of each input format. Run from the repository root; the output is committed, so the
test suite needs no Python. Regression inputs (crash-*, timeout-*, oom-*) found by fuzzing are
added by hand and not touched here."""
import json, os, struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Corpus")


def put(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def safetensors(entries, payload, metadata=None, raw_header=None):
    header = dict(entries)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


def st_entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def safetensors_seeds():
    f32 = struct.pack("<6f", 1, -2, 3.5, 0, 1e-3, 7)
    put("safetensors", "valid-f32", safetensors(
        {"a.weight": st_entry("F32", [2, 2], 0, 16), "a.bias": st_entry("F32", [2], 16, 24)}, f32,
        metadata={"format": "pt"}))
    put("safetensors", "valid-f16-bf16", safetensors(
        {"h": st_entry("F16", [3], 0, 6), "b": st_entry("BF16", [1, 3], 6, 12)},
        struct.pack("<6H", 0x3C00, 0xC000, 0x7C00, 0x3F80, 0xBF80, 0x7FC0)))
    put("safetensors", "valid-empty-tensor", safetensors(
        {"z": st_entry("F32", [0, 4], 0, 0), "s": st_entry("F32", [], 0, 4)}, struct.pack("<f", 2)))
    put("safetensors", "valid-other-dtypes", safetensors(
        {"i": st_entry("I64", [1], 0, 8), "u": st_entry("U8", [4], 8, 12)}, bytes(12)))
    put("safetensors", "overlap", safetensors(
        {"a": st_entry("F32", [2], 0, 8), "b": st_entry("F32", [2], 4, 12)}, bytes(12)))
    put("safetensors", "hole", safetensors({"a": st_entry("F32", [1], 4, 8)}, bytes(8)))
    put("safetensors", "size-mismatch", safetensors({"a": st_entry("F32", [3], 0, 8)}, bytes(8)))
    put("safetensors", "unknown-dtype", safetensors({"a": st_entry("F128", [1], 0, 16)}, bytes(16)))
    put("safetensors", "huge-shape", safetensors(
        {"a": st_entry("F32", [4294967296, 4294967296], 0, 8)}, bytes(8)))
    put("safetensors", "duplicate-name",
        safetensors({}, bytes(8), raw_header=b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},'
                                             b' "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}'))
    put("safetensors", "header-length-too-large", struct.pack("<Q", 2**63) + b"{}")
    put("safetensors", "truncated", b"\x10\x00\x00")
    put("safetensors", "bad-metadata", safetensors({}, b"", metadata={"n": 1}))


def json_seeds():
    put("json", "object", '{"a": [1, -2.5e-3, true, false, null], "b": {"c": "d\\u00e9\\n"}, "e": []}')
    put("json", "numbers", '[0, -0, 1e308, 1e309, -1e-400, 123456789012345678901234567890, 0.1, 5E+2]')
    put("json", "strings", '["\\ud83d\\ude00", "\\u0000", "tab\\t", "\\"q\\"", "é", ""]')
    put("json", "nested", "[" * 40 + "]" * 40)
    put("json", "too-deep", "[" * 200 + "]" * 200)
    put("json", "duplicate-key", '{"a": 1, "a": 2}')
    put("json", "lone-surrogate", '["\\ud800"]')
    put("json", "trailing-comma", '{"a": 1,}')
    put("json", "truncated", '{"a": [1, 2')
    put("json", "invalid-utf8", b'["\xff\xfe"]')
    put("json", "bom", b'\xef\xbb\xbf{}')
    put("json", "scalar", '  "just a string"  ')


def jsonl_seeds():
    put("jsonl", "tokens", '{"input_ids": [1, 5, 9, 2]}\n{"input_ids": [1, 7, 2], "labels": [-100, 7, 2]}\n')
    put("jsonl", "mixed-records",
        '{"text": "hello"}\r\n\n{"instruction": "Say hi", "input": "", "output": "hi"}\n'
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
        '{"input_ids": [3, 4, 5]}\n')
    put("jsonl", "malformed", '{"input_ids": [1, 2.5]}\n{"input_ids": [-1, 2]}\n[1, 2]\nnot json\n'
        '{"input_ids": [1, 2], "labels": [1]}\n{"input_ids": [1, 2, 3], "labels": [-5, 1, 2]}\n')
    put("jsonl", "long-example", json.dumps({"input_ids": list(range(1, 40)), "labels": [-100] * 20 + list(range(20, 39))}) + "\n")
    put("jsonl", "no-scored-token", '{"input_ids": [1]}\n{"input_ids": [1, 2], "labels": [1, -100]}\n')
    put("jsonl", "empty", "")
    put("jsonl", "big-integers", '{"input_ids": [9223372036854775807, 1e300, true]}\n')


def recipe_seeds():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes")
    for name in ["lora-layerwise.json", "full-all-layer.json", "moe-expert.json", "pretrain-base.json"]:
        with open(os.path.join(here, name), "rb") as f:
            put("recipe", name, f.read())
    minimal = {"model": {"checkpoint": "base.h5"}, "data": {"train": "train.jsonl"},
               "privacy": {"noise_multiplier": 1.0, "delta": 1e-5}, "training": {"steps": 3, "batch_size": 4}}
    put("recipe", "minimal.json", json.dumps(minimal))
    put("recipe", "overrides", json.dumps(minimal).encode() + b"\x00training.steps=5\x00privacy.delta=1e-6"
        b"\x00training.optimizer.name=sgd\x00bad override")
    put("recipe", "unknown-key.json", json.dumps({**minimal, "trainig": {}}))
    put("recipe", "no-privacy.json", json.dumps({**minimal, "privacy": None}))
    put("recipe", "bad-values.json", json.dumps({**minimal, "training": {"steps": -1, "batch_size": 0}}))
    put("recipe", "not-object.json", "[1, 2]")


def rules_seeds():
    put("rules", "attention-vs-rest.json", json.dumps({"rules": [
        {"match": "*.attn.*", "group": "attention"}, {"match": "*", "group": "rest"}],
        "thresholds": {"attention": 0.8, "rest": 0.6}}))
    put("rules", "regex.json", json.dumps({"description": "per block", "rules": [
        {"regex": "transformer\\.h\\.[0-9]+\\..*", "group": "blocks"}, {"match": "*", "group": "rest"}]}))
    put("rules", "glob-sets.json", json.dumps({"rules": [
        {"match": "transformer.h.[0-1].ln_?.*", "group": "norms"}, {"match": "[!t]*", "group": "other"},
        {"match": "*\\*", "group": "star"}, {"match": "*", "group": "rest"}]}))
    put("rules", "unmatched.json", json.dumps({"rules": [{"match": "nothing", "group": "g"}]}))
    put("rules", "bad-glob.json", json.dumps({"rules": [{"match": "[abc", "group": "g"}]}))
    put("rules", "bad-regex.json", json.dumps({"rules": [{"regex": "(unclosed", "group": "g"}]}))
    put("rules", "bad-threshold.json", json.dumps({"rules": [{"match": "*", "group": "g"}], "thresholds": {"g": -1}}))
    put("rules", "empty-rules.json", json.dumps({"rules": []}))


def config_seeds():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes", "models")
    for name in ["gpt2-tiny.json", "llama-tiny.json", "mixtral-tiny.json"]:
        with open(os.path.join(here, name), "rb") as f:
            put("config", name, f.read())
    put("config", "qwen2.json", json.dumps({"model_type": "qwen2", "vocab_size": 64, "hidden_size": 32,
        "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 64, "tie_word_embeddings": True}))
    put("config", "too-large.json", json.dumps({"model_type": "gpt2", "vocab_size": 16777216, "n_embd": 16777216,
        "n_layer": 2, "n_head": 1, "n_positions": 128}))
    put("config", "unknown-type.json", '{"model_type": "bert"}')
    put("config", "bad-heads.json", '{"model_type": "gpt2", "vocab_size": 10, "n_embd": 10, "n_layer": 1, "n_head": 3}')
    put("config", "negative.json", '{"model_type": "llama", "vocab_size": -1, "hidden_size": 0}')


def plugin_seeds():
    put("plugin", "description.json", json.dumps({"name": "budget", "summary": "groups by size", "options": [
        {"name": "max_groups", "type": "integer", "default": 4, "required": False, "description": "at most"},
        {"name": "mode", "type": {"choice": ["a", "b"]}, "required": True, "description": "which"},
        {"name": "file", "type": "path", "required": False, "description": "rules"}]}))
    put("plugin", "description-bad-type.json", json.dumps({"name": "x", "summary": "", "options": [
        {"name": "o", "type": "float", "required": False, "description": ""}]}))
    put("plugin", "request.json", json.dumps({"strategy": "budget", "options": {"max_groups": 2, "mode": "a"},
        "parameters": [{"name": "transformer.wte.weight", "shape": [256, 64], "kind": "embedding", "role": "embedding",
                        "module": "transformer.wte", "isTiedHead": True}]}))
    put("plugin", "answer.json", json.dumps({"groups": [
        {"name": "all", "parameters": ["transformer.wte.weight", "transformer.wpe.weight"], "threshold": 1.0}]}))
    put("plugin", "answer-error.json", '{"error": "the plugin failed"}')
    put("plugin", "answer-unknown-tensor.json", '{"groups": [{"name": "g", "parameters": ["nope"]}]}')
    put("plugin", "answer-empty.json", "{}")
    put("plugin", "options.json", '{"max_groups": 3, "thresholds": {"a": 0.5}, "flag": true, "name": "x"}')


if __name__ == "__main__":
    safetensors_seeds(); json_seeds(); jsonl_seeds(); recipe_seeds(); rules_seeds(); config_seeds(); plugin_seeds()
