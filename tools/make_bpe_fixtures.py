#!/usr/bin/env python3
"""Writes the byte-level BPE reference fixtures for Tests/DPFTTests/BPETokenizerTests.swift.

Trains small byte-level BPE tokenizers with Hugging Face's `tokenizers` package on the
repository's public corpus (recipes/data/pretrain-corpus.jsonl) in three pipelines, then
records the ids the package gives every line of a test text:

    Tests/DPFTTests/Fixtures/bpe/gpt2.json    GPT-2 pipeline: ByteLevel pre-tokenizer (GPT-2
                                              split pattern), ByteLevel decoder, <|endoftext|>
    Tests/DPFTTests/Fixtures/bpe/qwen2.json   Qwen2 pipeline: NFC, Split(Qwen2 regex: \\p{N}
                                              one digit at a time) + ByteLevel(use_regex=false),
                                              specials <|endoftext|> <|im_start|> <|im_end|>
    Tests/DPFTTests/Fixtures/bpe/llama3.json  Llama-3 pipeline: no normalizer, Split(Llama-3
                                              regex: \\p{N}{1,3}) + ByteLevel(use_regex=false),
                                              ignore_merges = true, a BOS template, and two vocab
                                              entries the merges cannot reach ("Ġxyzzy",
                                              "plugh") so that ignore_merges changes ids
    Tests/DPFTTests/Fixtures/bpe/texts.jsonl  the test text: one JSON string per line (lines may
                                              hold tabs, \\r and \\n)
    Tests/DPFTTests/Fixtures/bpe/<name>.ids   per text line, the package's ids
                                              (encode(text, add_special_tokens=False)),
                                              space-separated
    Tests/DPFTTests/Fixtures/bpe/gpt2-prefix-space.ids
                                              the first 300 lines' ids with gpt2.json's
                                              pre_tokenizer.add_prefix_space set to true

Run from the repository root:  tools/.venv/bin/python tools/make_bpe_fixtures.py
"""

import json
import os
import random

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import Regex

OUT_DIR = os.path.join("Tests", "DPFTTests", "Fixtures", "bpe")
CORPUS = os.path.join("recipes", "data", "pretrain-corpus.jsonl")

GPT2_PATTERN = None  # ByteLevel(use_regex=True) carries it
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
VOCAB_SIZE = 1200


def corpus_texts():
    with open(CORPUS, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def train(pipeline, texts, specials):
    tok = Tokenizer(models.BPE())
    if pipeline == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.post_processor = processors.ByteLevel(trim_offsets=True)
    else:
        pattern = QWEN2_PATTERN if pipeline == "qwen2" else LLAMA3_PATTERN
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ])
        if pipeline == "qwen2":
            tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def llama3_adjusted(tok):
    """ignore_merges on, two vocab entries no merge sequence builds, and a BOS template."""
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = True
    vocab = spec["model"]["vocab"]
    next_id = max(max(vocab.values()), max(t["id"] for t in spec["added_tokens"])) + 1
    for word in ["Ġxyzzy", "plugh"]:
        vocab[word] = next_id
        next_id += 1
    bos = next(t for t in spec["added_tokens"] if t["content"] == "<|begin_of_text|>")
    spec["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                  {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bos["id"]],
                                                  "tokens": ["<|begin_of_text|>"]}}}]}
    return Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))


FRAGMENTS = [
    "hello", "Hello", "HELLO", " world", "  two spaces", "   three", "\t", "\t\t", "\n", "\n\n",
    "\r\n", " \n ", " \t\n", "    \n", "x \r\n y", "2024", " 12345", "3.14159", "1,000,000", "007",
    "don't", "we're", "I'M", "they'll", "She'S", "YOU'VE", "it'd", "'t", "'sup", "''s", "'ſ",
    "o'clock", "rock'n'roll", "café", "cafe\u0301", "naïve", "nai\u0308ve", "Zürich", "Ångström",
    "straße", "œuvre", "crème brûlée", "日本語のテキスト", "中文分词测试", "한국어 문장", "مرحبا بالعالم",
    "हिन्दी पाठ", "Привет, мир!", "Ελληνικά", "עברית", "ไทย", "👍", "👨‍👩‍👧‍👦", "🏳️‍🌈",
    "👩🏽‍💻", "🇩🇪🇫🇷", "e\u0301\u0302", "a\u0300\u0301\u0302", "\u0301lone mark", "<|endoftext|>",
    "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|endoftext", "endoftext|>", "<|im_start|>user",
    "xyzzy", " xyzzy", "plugh", "Xyzzy", "!!!", "...", "?!", " --", "#include <stdio.h>", "a+b=c",
    "(x)", "[1, 2]", "{\"k\": 1}", "$100", "50%", "¼ ½", "Ⅻ", "٣٤٥", "१२३", "①②", "x²", "\u00a0nbsp",
    "\u3000ideographic", "\u2003em space", "\u200bzero width", "\u2028sep", "\x0b\x0c", "\x85nel",
    "🙂🙂🙂", "ｆｕｌｌ　ｗｉｄｔｈ", "ǅ title", "ﬁ ligature",
]

FIXED = [
    "", " ", "  ", "\n", " \n", "\n ", "a", " a", "a ", "a  b", "a \n b", "a\n\n\nb", "a\t\tb  \t c",
    "The quick brown fox jumps over the lazy dog.",
    "It's 3:45pm and I've 12 apples; you're 'late'!",
    "line one\r\nline two\r\n\r\nline four",
    "   leading spaces and trailing   ",
    "<|endoftext|>Hello<|endoftext|> world<|endoftext|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>",
    "<|begin_of_text|>xyzzy plugh xyzzy",
    "1234567890123 9876 42 7",
    "naïve café résumé — “quotes” ‘single’ «guillemets»",
    "e\u0301 vs é (combining vs precomposed)",
    "Family: 👨‍👩‍👧‍👦, flag: 🏳️‍🌈, skin: 👍🏿, keycap: 1️⃣",
    "混合 text with 中文 and English 123 and العربية",
    "tabs\tin\tthe\tmiddle",
    "spaces before newline   \nand after",
    "x" * 300,
    " " * 40 + "deep indent",
    "😀" * 20,
]


def test_lines(texts):
    rng = random.Random(18)
    lines = list(FIXED)
    # Corpus lines: real prose, code-like text and the instruction template's line breaks.
    for text in texts[:300]:
        for part in text.split("\n\n")[:2]:
            if part.strip():
                lines.append(part[:90])
    while len(lines) < 2000:
        pieces = [rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 4))]
        glue = [rng.choice(["", " ", "", " ", "  ", "\n"]) for _ in pieces]
        lines.append("".join(p + g for p, g in zip(pieces, glue)))
    return lines


def write_ids(path, tok, lines):
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(" ".join(str(i) for i in tok.encode(line, add_special_tokens=False).ids) + "\n")


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    texts = corpus_texts()
    tokenizers_by_name = {
        "gpt2": train("gpt2", texts, ["<|endoftext|>"]),
        "qwen2": train("qwen2", texts, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]),
        "llama3": llama3_adjusted(train("llama3", texts, ["<|begin_of_text|>", "<|end_of_text|>"])),
    }
    lines = test_lines(texts)
    with open(os.path.join(OUT_DIR, "texts.jsonl"), "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    for name, tok in tokenizers_by_name.items():
        with open(os.path.join(OUT_DIR, f"{name}.json"), "w", encoding="utf-8") as f:
            f.write(tok.to_str())
        write_ids(os.path.join(OUT_DIR, f"{name}.ids"), tok, lines)
    spec = json.loads(tokenizers_by_name["gpt2"].to_str())
    spec["pre_tokenizer"]["add_prefix_space"] = True
    prefixed = Tokenizer.from_str(json.dumps(spec))
    write_ids(os.path.join(OUT_DIR, "gpt2-prefix-space.ids"), prefixed, lines[:300])
    print(f"wrote {len(lines)} lines and {len(tokenizers_by_name)} tokenizers to {OUT_DIR}")


if __name__ == "__main__":
    main()
