#!/usr/bin/env python3
"""Builds the public (non-private) pre-training corpus for the shipped base model.

Output: OUT_DIR/pretrain-corpus.jsonl, one training text per line as {"text": "..."}
(newlines inside a text are kept inside the JSON string). Two kinds of text, shuffled
together with a fixed seed so that any prefix of the file is a representative sample:

1. English prose from the documentation strings of the CPython standard library of the
   interpreter running this script (the corpus is committed, so reproducing it byte for
   byte needs the same Python version; recipes/data/README.md records it):
     * pure-Python modules under sysconfig's "stdlib" directory, read with `ast` (module,
       class, function and method docstrings, cleaned exactly as `inspect.getdoc` /
       `inspect.cleandoc` does). The source is parsed instead of imported so that modules
       with import-time side effects (antigravity, this, turtle, ...) are harmless. All
       directories are read (test suites, idlelib and lib2to3 included) except encodings
       (generated codec boilerplate), ensurepip, pydoc_data (see below) and site-packages
       (third-party packages of the venv); files that do not parse are skipped;
     * built-in and extension modules (sys.builtin_module_names and lib-dynload; imported,
       test and private `_test*`/`xx*` modules skipped): `inspect.getdoc` of the module and
       of the classes, functions and methods it defines;
     * the interactive help topics shipped in `pydoc_data.topics` (the text `help("if")`
       shows; language-reference prose).
   Each docstring is split into paragraphs at blank lines. Paragraphs that look like code,
   doctests, tables, reST directives, bullet lists or option lists are dropped (any
   indented line, ">>>", "..", "::" and similar markers, a high share of symbol characters
   or identifier-like words), inline reST markup (:func:`x`, ``x``, `x`) is reduced to its
   text, lines are joined with single spaces, and only paragraphs of 12-200 words that
   start with a capital letter and end with ". ? !" are kept. Exact duplicates are dropped;
   first occurrence wins, visiting sources in sorted order.

2. Generic instruction-following examples in the exact Alpaca template that dpft's data
   loader uses (with and without an input), on small tasks with trivially computable
   answers unrelated to the fine-tuning tasks: arithmetic questions, summarizing a
   generated sentence, reversing/sorting/counting words, upper-casing, plurals, opposites,
   past tense, even/odd, numbers to words, continuing a sequence, counting ranges,
   spelling. Each example is the full prompt followed by the response. The base model thus
   learns the template, but nothing about support tickets or chit-chat.

Usage (from the repository root):

    tools/.venv/bin/python tools/make_pretraining_corpus.py \
        [--out recipes/data/pretrain-corpus.jsonl] [--alpaca-examples 2400] [--seed 7] \
        [--max-bytes 3000000]

Prints the counts and byte sizes of both parts. Deterministic for a given Python version and
arguments (pure standard library).
"""

import argparse
import ast
import importlib
import inspect
import json
import os
import random
import re
import sys
import sysconfig
import textwrap
import warnings

PROMPT_INPUT = ("Below is an instruction that describes a task, paired with an input that "
                "provides further context. Write a response that appropriately completes the "
                "request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
                "### Response:\n{output}")
PROMPT_NO_INPUT = ("Below is an instruction that describes a task. Write a response that "
                   "appropriately completes the request.\n\n### Instruction:\n{instruction}"
                   "\n\n### Response:\n{output}")

SKIP_DIRS = {"site-packages", "__pycache__", "pydoc_data", "encodings", "ensurepip"}

# ------------------------------------------------------------------------------------------
# Part 1: standard-library prose


def py_docstrings(root):
    """(source, docstring) for every module/class/function docstring of .py files."""
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith("config-"))
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            path = os.path.join(d, f)
            try:
                with open(path, encoding="utf-8") as fh:
                    tree = ast.parse(fh.read())
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            rel = os.path.relpath(path, root)
            # ast.walk is breadth-first and deterministic
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                     ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node, clean=True)
                    if doc:
                        yield rel, doc


def c_module_names(root):
    names = set(sys.builtin_module_names)
    dyn = os.path.join(root, "lib-dynload")
    if os.path.isdir(dyn):
        for f in os.listdir(dyn):
            if f.endswith(".so") or f.endswith(".pyd"):
                names.add(f.split(".")[0])
    skip = re.compile(r"^(_test|_xx|xx|_ctypes_test)")
    return sorted(n for n in names if not skip.match(n))


def c_docstrings(root):
    """(source, docstring) from built-in / extension modules via inspect.getdoc."""
    for name in c_module_names(root):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mod = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional modules (e.g. no display) are skipped
            continue
        doc = inspect.getdoc(mod)
        if doc:
            yield name, doc
        for attr in sorted(vars(mod)):
            obj = vars(mod)[attr]
            if not (inspect.isclass(obj) or inspect.isroutine(obj)):
                continue
            if getattr(obj, "__module__", name) not in (name, None):
                continue
            doc = inspect.getdoc(obj)
            if doc:
                yield f"{name}.{attr}", doc
            if inspect.isclass(obj):
                for m in sorted(vars(obj)):
                    member = vars(obj)[m]
                    if inspect.isroutine(member) or inspect.isdatadescriptor(member):
                        d = getattr(member, "__doc__", None)
                        if isinstance(d, str) and d:
                            yield f"{name}.{attr}.{m}", inspect.cleandoc(d)


def topic_docstrings():
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return
    for key in sorted(topics):
        yield f"pydoc_data.topics[{key}]", topics[key]


ROLE = re.compile(r":[a-zA-Z:]+:`~?!?([^`<]*?)(?:\s*<[^>]*>)?`")
DOUBLE_BACKTICK = re.compile(r"``([^`]*)``")
QUOTE_BACKTICK = re.compile(r"`([^`'\s]*)'")
SINGLE_BACKTICK = re.compile(r"`([^`]*)`_?")
CODE_MARKERS = (">>>", "...", "..", "::", "$ ", "%", "#", "|", "+--", "===", "---", "***",
                "-", "* ", "+ ", "o ")
SYMBOLS = set("()[]{}=<>_\\/|#@$%^~*`\"'")
MIN_WORDS = 7
IDENT = re.compile(r"\w[\w.]*(?:_|\.\w|\(\)|[a-z][A-Z])")


def paragraphs(doc):
    prev = ""
    for para in re.split(r"\n\s*\n", doc.strip("\n")):
        after_colon = prev.rstrip().endswith(":")
        prev = para
        if not para.strip():
            continue
        if para.startswith((" ", "\t")):
            if after_colon:
                continue  # literal block / body of a "term:" item
            para = textwrap.dedent(para)  # uniformly indented prose (e.g. help topics)
        lines = para.split("\n")
        if any(l.startswith((" ", "\t")) for l in lines):
            continue  # ragged indentation: code, continuation of a list, literal block
        if any(l.lstrip().startswith(CODE_MARKERS) for l in lines):
            continue
        if any(l.rstrip().endswith(("::", ":")) for l in lines[:-1]):
            continue  # "term:" definition lists
        if any(re.match(r"^\s*(\d+[.)]|[a-zA-Z][.)]|-{1,2}\w)\s", l) for l in lines):
            continue  # numbered lists, option lists
        yield " ".join(l.strip() for l in lines)


def clean_prose(text):
    text = ROLE.sub(r"\1", text)
    text = DOUBLE_BACKTICK.sub(r"\1", text)
    text = QUOTE_BACKTICK.sub(r"\1", text)
    text = SINGLE_BACKTICK.sub(r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text


def is_prose(text):
    words = text.split()
    if not MIN_WORDS <= len(words) <= 200:
        return False
    if not (text[0].isupper() and text[-1] in ".?!"):
        return False
    if text.rstrip(".").endswith(":") or "XXX" in text or "TODO" in text:
        return False
    if any(ord(c) > 127 for c in text):
        return False
    if sum(c in SYMBOLS for c in text) > 0.04 * len(text):
        return False
    if sum(c.isalpha() or c == " " for c in text) < 0.88 * len(text):
        return False
    plain = sum(w.strip(",.;:?!()\"'").isalpha() and w.strip(",.;:?!()\"'").islower()
                for w in words)
    if plain < 0.7 * len(words):
        return False
    if sum(bool(IDENT.search(w)) for w in words) > 0.12 * len(words):
        return False
    if re.search(r"\b(def|return|lambda|import|self)\s*[(.=]|\w+\(\w*\)\s*[-=]", text):
        return False
    return True


def stdlib_prose():
    root = sysconfig.get_paths()["stdlib"]
    seen, out, per_source = set(), [], {"py": 0, "c": 0, "topics": 0}
    for kind, gen in (("py", py_docstrings(root)), ("c", c_docstrings(root)),
                      ("topics", topic_docstrings())):
        for _, doc in gen:
            for para in paragraphs(doc):
                text = clean_prose(para)
                if text in seen or not is_prose(text):
                    continue
                seen.add(text)
                out.append(text)
                per_source[kind] += 1
    return out, per_source


# ------------------------------------------------------------------------------------------
# Part 2: generic Alpaca-template examples (unrelated to the fine-tuning tasks)

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n):
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    rest = n % 100
    return ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))


NOUNS = ["fox", "teacher", "river", "garden", "lamp", "violin", "mountain", "cat", "ship",
         "farmer", "bird", "child", "painter", "tree", "horse", "baker", "cloud", "train",
         "dog", "student", "forest", "owl", "engineer", "candle", "bridge", "wolf", "poet",
         "lake", "rabbit", "clock"]
PLURALS = {"fox": "foxes", "child": "children", "wolf": "wolves", "box": "boxes",
           "city": "cities", "mouse": "mice", "leaf": "leaves", "bus": "buses",
           "story": "stories", "knife": "knives", "man": "men", "woman": "women",
           "tooth": "teeth", "foot": "feet", "berry": "berries", "church": "churches",
           "glass": "glasses", "potato": "potatoes", "hero": "heroes", "sheep": "sheep",
           "fish": "fish", "goose": "geese", "baby": "babies", "wish": "wishes",
           "lady": "ladies", "shelf": "shelves", "person": "people"}
ADJS = ["small", "old", "quiet", "bright", "tired", "young", "clever", "gentle", "brave",
        "curious", "happy", "tall", "busy", "calm", "proud"]
COLORS = ["red", "brown", "grey", "white", "golden", "green", "blue", "black"]
ADVERBS = ["quickly", "slowly", "carefully", "happily", "silently", "eagerly", "suddenly",
           "gracefully"]
VERBS = {  # present 3rd person -> past, plus a sensible object phrase
    "walks": "walked", "jumps": "jumped", "runs": "ran", "sings": "sang", "writes": "wrote",
    "reads": "read", "paints": "painted", "climbs": "climbed", "watches": "watched",
    "builds": "built", "finds": "found", "carries": "carried", "visits": "visited",
    "draws": "drew", "cleans": "cleaned", "opens": "opened", "sees": "saw", "makes": "made",
}
OBJECTS = ["a letter", "the old map", "a small boat", "the garden gate", "a wooden box",
           "the tall tower", "a new song", "the morning paper", "a blue kite", "the stone wall"]
PLACES = ["near the river", "in the park", "at the edge of the forest", "by the old mill",
          "on a sunny morning", "after the long rain", "behind the village school",
          "under the bright moon", "across the wide valley"]
OPPOSITES = {"hot": "cold", "tall": "short", "early": "late", "happy": "sad", "open": "closed",
             "light": "dark", "fast": "slow", "full": "empty", "strong": "weak",
             "above": "below", "young": "old", "wet": "dry", "loud": "quiet", "hard": "soft",
             "rich": "poor", "first": "last", "win": "lose", "begin": "end", "push": "pull",
             "up": "down", "inside": "outside", "new": "old", "heavy": "light",
             "thick": "thin", "wide": "narrow", "near": "far", "day": "night"}
WORDS = ["apple", "river", "stone", "cloud", "piano", "lemon", "forest", "candle", "window",
         "garden", "pencil", "rocket", "island", "mirror", "basket", "orange", "tiger", "violet",
         "meadow", "silver", "winter", "harbor", "marble", "feather", "lantern", "compass"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


def art(word):
    return ("an " if word[0] in "aeiou" else "a ") + word


def task_arith(rng):
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op = rng.choice(["plus", "minus", "times"])
    if op == "times":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
    if op == "minus" and b > a:
        a, b = b, a
    ans = {"plus": a + b, "minus": a - b, "times": a * b}[op]
    q = f"What is {a} {op} {b}?"
    if rng.random() < 0.5:
        return rng.choice(["Answer the question.", "Answer the following question."]), q, str(ans)
    return q, None, str(ans)


def task_fact(rng):
    kind = rng.randrange(4)
    if kind == 0:
        i = rng.randrange(7)
        return "Answer the question.", f"Which day comes after {WEEKDAYS[i]}?", WEEKDAYS[(i + 1) % 7]
    if kind == 1:
        i = rng.randrange(12)
        return "Answer the question.", f"Which month comes after {MONTHS[i]}?", MONTHS[(i + 1) % 12]
    if kind == 2:
        a, b = rng.sample(range(1, 200), 2)
        return "Answer the question.", f"Which number is larger, {a} or {b}?", str(max(a, b))
    w = rng.choice(WORDS)
    return "Answer the question.", f"How many letters are in the word \"{w}\"?", str(len(w))


def task_summarize(rng):
    noun, obj = rng.choice(NOUNS), rng.choice(OBJECTS)
    verb = rng.choice(sorted(VERBS))
    adj1, adj2 = rng.sample(ADJS, 2)
    color = rng.choice(COLORS)
    adv, place = rng.choice(ADVERBS), rng.choice(PLACES)
    sentence = f"The {adj1} {color} {noun} {adv} {verb} {obj} {place}, and everyone who " \
               f"saw it thought the {noun} looked {adj2}."
    obj_core = art(obj.split(" ", 1)[1])  # "the old map" -> "an old map"
    summary = f"{art(noun).capitalize()} {verb} {obj_core}."
    return rng.choice(["Summarize the sentence.", "Summarize the sentence in a few words."]), \
        sentence, summary


def task_past(rng):
    noun, obj, verb = rng.choice(NOUNS), rng.choice(OBJECTS), rng.choice(sorted(VERBS))
    place = rng.choice(PLACES)
    return "Rewrite the sentence in the past tense.", \
        f"The {noun} {verb} {obj} {place}.", f"The {noun} {VERBS[verb]} {obj} {place}."


def task_words(rng):
    ws = rng.sample(WORDS, rng.randint(3, 6))
    kind = rng.randrange(4)
    text = " ".join(ws)
    if kind == 0:
        return "Reverse the order of the words.", text, " ".join(reversed(ws))
    if kind == 1:
        return "Sort the words in alphabetical order.", ", ".join(ws), ", ".join(sorted(ws))
    if kind == 2:
        return "Count the words in the text.", text, str(len(ws))
    return "Convert the text to uppercase.", text, text.upper()


def task_numbers(rng):
    kind = rng.randrange(4)
    if kind == 0:
        ns = rng.sample(range(1, 100), rng.randint(3, 6))
        return "Sort the numbers from smallest to largest.", ", ".join(map(str, ns)), \
            ", ".join(map(str, sorted(ns)))
    if kind == 1:
        n = rng.randint(1, 999)
        return "Is the number even or odd?", str(n), "even" if n % 2 == 0 else "odd"
    if kind == 2:
        n = rng.randint(0, 999)
        return "Write the number in words.", str(n), number_words(n)
    start, step = rng.randint(1, 30), rng.randint(2, 9)
    seq = [start + i * step for i in range(4)]
    return "Continue the sequence with the next number.", ", ".join(map(str, seq)), \
        str(start + 4 * step)


def task_lexical(rng):
    kind = rng.randrange(3)
    if kind == 0:
        w = rng.choice(sorted(PLURALS))
        return "Give the plural of the word.", w, PLURALS[w]
    if kind == 1:
        w = rng.choice(sorted(OPPOSITES))
        return "Give the opposite of the word.", w, OPPOSITES[w]
    w = rng.choice(WORDS)
    return f"Spell the word \"{w}\" letter by letter.", None, "-".join(w)


def task_no_input(rng):
    kind = rng.randrange(3)
    if kind == 0:
        a = rng.randint(1, 40)
        b = a + rng.randint(3, 8)
        return f"Count from {a} to {b}.", None, ", ".join(str(i) for i in range(a, b + 1))
    if kind == 1:
        i = rng.randrange(0, 20)
        j = i + rng.randint(3, 6)
        letters = "abcdefghijklmnopqrstuvwxyz"[i:j + 1]
        return f"Write the letters of the alphabet from {letters[0]} to {letters[-1]}.", None, \
            " ".join(letters)
    noun = rng.choice(NOUNS)
    return f"Write a sentence about {art(noun)}.", None, \
        f"The {rng.choice(ADJS)} {noun} {rng.choice(sorted(VERBS))} {rng.choice(OBJECTS)} " \
        f"{rng.choice(PLACES)}."


TASKS = [task_arith, task_fact, task_summarize, task_past, task_words, task_numbers,
         task_lexical, task_no_input]


def alpaca_examples(n, rng):
    out, seen = [], set()
    while len(out) < n:
        instruction, inp, output = rng.choice(TASKS)(rng)
        if inp is None:
            text = PROMPT_NO_INPUT.format(instruction=instruction, output=output)
        else:
            text = PROMPT_INPUT.format(instruction=instruction, input=inp, output=output)
        if text in seen:
            continue
        seen.add(text)
        out.append(text)
    return out


# ------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("recipes", "data", "pretrain-corpus.jsonl"))
    ap.add_argument("--alpaca-examples", type=int, default=2400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-bytes", type=int, default=3_000_000)
    args = ap.parse_args()

    prose, per_source = stdlib_prose()
    rng = random.Random(args.seed)
    alpaca = alpaca_examples(args.alpaca_examples, rng)
    rows = [(t, "prose") for t in prose] + [(t, "alpaca") for t in alpaca]
    rng.shuffle(rows)
    lines = [json.dumps({"text": t}, ensure_ascii=False) + "\n" for t, _ in rows]
    size = sum(len(l.encode()) for l in lines)
    if size > args.max_bytes:
        raise SystemExit(f"corpus is {size} bytes > --max-bytes {args.max_bytes}; "
                         "lower --alpaca-examples")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
    p_bytes = sum(len(json.dumps({"text": t}).encode()) + 1 for t in prose)
    print(f"python {sys.version.split()[0]} stdlib at {sysconfig.get_paths()['stdlib']}")
    print(f"prose paragraphs: {len(prose)} ({per_source['py']} from .py docstrings, "
          f"{per_source['c']} from built-in/extension modules, {per_source['topics']} from "
          f"pydoc_data.topics), {p_bytes} bytes")
    print(f"alpaca-template examples: {len(alpaca)}, {size - p_bytes} bytes")
    print(f"{args.out}: {len(lines)} lines, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
