#!/usr/bin/env python3
"""Writes the SentencePiece reference fixtures for Tests/DPFTTests/TokenizerTests.swift.

Trains two small models with Python's `sentencepiece` on a deterministic corpus that this
script writes (English with accented words, digits and a little Greek), then records, for a
fixed list of texts, the ids Python produces, their pieces and the decoded text:

    Tests/DPFTTests/Fixtures/tokenizer/tok.model               BPE, vocab 256, unk/bos/eos = 0/1/2,
                                                               no pad, user symbol "<sep>"
    Tests/DPFTTests/Fixtures/tokenizer/expected.json           its special ids and cases
    Tests/DPFTTests/Fixtures/tokenizer/tok-unigram.model       unigram, vocab 400, byte fallback,
                                                               pad/unk/bos/eos = 0/1/2/3
    Tests/DPFTTests/Fixtures/tokenizer/expected-unigram.json   its special ids and cases

Each JSON file: {"model", "model_type", "sentencepiece_version", "vocab_size", "bos_id",
"eos_id", "pad_id", "unk_id", "cases": [{"text", "ids", "pieces", "decoded"}]}.

Run from the repository root:  tools/.venv/bin/python tools/make_tokenizer_fixture.py
"""

import json
import os
import random
import tempfile

import sentencepiece as spm

OUT_DIR = os.path.join("Tests", "DPFTTests", "Fixtures", "tokenizer")

SUBJECTS = ["the model", "a private dataset", "the café owner", "our naïve baseline",
            "the résumé", "a señor from Zürich", "the façade", "every student",
            "the accountant", "die Straße", "the œuvre", "an Ångström"]
VERBS = ["trains on", "forgets", "remembers", "clips", "adds noise to", "reads",
         "encodes", "improves", "measures", "protects"]
OBJECTS = ["42 examples", "the gradient", "1024 tokens", "each sentence", "the budget",
           "über-secret notes", "3.14 apples", "the año 2023 report", "privacy",
           "the smörgåsbord", "ελληνικά λόγια", "7 crème brûlées"]
ENDINGS = [".", "!", "?", " again.", " in 2024.", " twice.", ", then stops."]


def write_corpus(path: str) -> None:
    """1,500 sentences from a seeded generator: the same file on every run and platform."""
    rng = random.Random(20240601)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(1500):
            sentence = (f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} "
                        f"{rng.choice(OBJECTS)}{rng.choice(ENDINGS)}")
            f.write(sentence[0].upper() + sentence[1:] + f" Step {i % 97}.\n")


# Texts whose ids are recorded: empty, plain, accents, digits, surrounding and repeated
# spaces (removed by the default normaliser), NFKC folding (ligature, full-width digits),
# characters never seen in training (unk, or bytes with byte fallback), a user symbol.
TEXTS = [
    "",
    "The model trains on 42 examples.",
    "Le café naïve de Zürich, façade et résumé.",
    "Digits: 0123456789 and 3.14159",
    "  leading and trailing spaces  ",
    "many    inner\tspaces\nand a newline",
    "ﬁne ligature and full-width ０１２",
    "unknown ☃ snowman and 🙂 emoji",
    "ελληνικά λόγια über straße",
    "a<sep>b <sep> c",
    "ALL CAPS TEXT WITH NUMBERS 2024",
]


# A few NFKC-style rules of our own (ligature, full-width digits, no-break space) instead of
# the built-in "nmt_nfkc" table, whose compiled form alone is ~240 KB per model. Format:
# source code points <TAB> target code points, in hex.
NORMALIZATION_RULES = "\n".join(
    ["FB01\t66 69", "FB02\t66 6C", "A0\t20"]
    + [f"{0xFF10 + d:X}\t{0x30 + d:X}" for d in range(10)]) + "\n"


def train(prefix: str, **options) -> str:
    """Trains in the current directory on "corpus.txt", so that the paths SentencePiece
    stores in the model's trainer spec are the same on every run."""
    spm.SentencePieceTrainer.Train(input="corpus.txt", model_prefix=prefix,
                                   character_coverage=1.0, num_threads=1, minloglevel=1,
                                   **options)
    return prefix + ".model"


def cases_for(model_path: str, name: str, model_type: str) -> dict:
    sp = spm.SentencePieceProcessor(model_file=model_path)
    cases = []
    for text in TEXTS:
        ids = sp.encode(text)
        cases.append({"text": text, "ids": ids,
                      "pieces": [sp.id_to_piece(i) for i in ids],
                      "decoded": sp.decode(ids)})
    return {"model": name, "model_type": model_type,
            "sentencepiece_version": spm.__version__,
            "vocab_size": sp.get_piece_size(), "bos_id": sp.bos_id(), "eos_id": sp.eos_id(),
            "pad_id": sp.pad_id(), "unk_id": sp.unk_id(), "cases": cases}


def main() -> None:
    out_dir = os.path.abspath(OUT_DIR)
    os.makedirs(out_dir, exist_ok=True)
    home = os.getcwd()
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)
        write_corpus("corpus.txt")
        with open("rules.tsv", "w", encoding="utf-8") as f:
            f.write(NORMALIZATION_RULES)
        models = [
            ("tok.model", "expected.json", "bpe",
             dict(model_type="bpe", vocab_size=256, user_defined_symbols=["<sep>"],
                  normalization_rule_tsv="rules.tsv")),
            ("tok-unigram.model", "expected-unigram.json", "unigram",
             dict(model_type="unigram", vocab_size=400, byte_fallback=True,
                  normalization_rule_name="identity",
                  pad_id=0, unk_id=1, bos_id=2, eos_id=3)),
        ]
        for model_name, json_name, model_type, options in models:
            trained = train(model_type, **options)
            with open(trained, "rb") as f:
                model_bytes = f.read()
            with open(os.path.join(out_dir, model_name), "wb") as f:
                f.write(model_bytes)
            expected = cases_for(trained, model_name, model_type)
            with open(os.path.join(out_dir, json_name), "w", encoding="utf-8") as f:
                json.dump(expected, f, ensure_ascii=False, indent=1)
                f.write("\n")
            print(f"{model_name}: {expected['vocab_size']} pieces, {len(model_bytes)} bytes")
        os.chdir(home)


if __name__ == "__main__":
    main()
