#!/usr/bin/env python3
"""Converts the Chit-Chat Challenge conversations (PyPI `chitchat-dataset`, MIT) to chat JSONL.

Source: the `chitchat_dataset/dataset.json` file shipped inside the PyPI package
`chitchat-dataset` (BYU Perception, Control & Cognition lab; 7,168 conversations). Its shape is
{conversation_id: {"messages": [[{"text", "timestamp", "sender"}, ...], ...], "start",
"prompt"?, "ratings"?}}: each inner list is a run of consecutive messages by one sender.

Conversion, per conversation (in sorted conversation-id order):
  * utterance texts are stripped; empty utterances are dropped;
  * consecutive utterances of the same sender are merged into one turn, joined with "\\n";
  * the sender of the first turn becomes "user", the other sender "assistant", so turns
    alternate user/assistant; conversations with only one sender (about 3,150 monologues
    where nobody answered) or with fewer than one user+assistant exchange are dropped;
  * a single turn longer than --max-turn-chars is cut at a word boundary;
  * a trailing user turn (no reply) is dropped;
  * the conversation is split into consecutive chunks of whole user+assistant pairs, each
    chunk starting with a user turn, with at most --max-chunk-chars characters of message
    content and at most --max-turns turns; chunks whose content is shorter than
    --min-chunk-chars are dropped.

Split: by conversation, never by chunk: a conversation goes to eval when
sha256(f"{seed}:{conversation_id}") mod 1000 < 1000 * --eval-fraction (default 5%).
If a split's chunks exceed its byte cap (--max-train-bytes / --max-eval-bytes), that split
is subsampled deterministically and "fairly": in seeded rounds, each conversation gets one
more (seeded-randomly chosen) chunk while the budget lasts, so as many conversations as
possible are represented and no conversation contributes much more than any other (the
summary line says what was kept). Output order: conversations in sorted-id order, chunks
in conversation order.

Each output line: {"messages": [{"role": "user", "content": "..."},
                                {"role": "assistant", "content": "..."}, ...]}

Also copies the package's licence file (dist-info LICENSE) to OUT_DIR/CHITCHAT-LICENSE.

Usage (from the repository root; needs `tools/.venv/bin/pip install chitchat-dataset`):

    tools/.venv/bin/python tools/convert_chitchat.py [--out-dir recipes/data] [--seed 0]
        [--eval-fraction 0.05] [--max-chunk-chars 1000] [--max-turns 16]
        [--max-turn-chars 400] [--min-chunk-chars 40] [--max-train-bytes 4300000]
        [--max-eval-bytes 400000]

writes OUT_DIR/chitchat-train.jsonl, OUT_DIR/chitchat-eval.jsonl and OUT_DIR/CHITCHAT-LICENSE.
Deterministic for a given package version and arguments.
"""

import argparse
import hashlib
import importlib.metadata as md
import json
import os
import random
import shutil

import chitchat_dataset


def load_conversations():
    path = os.path.join(os.path.dirname(chitchat_dataset.__file__), "dataset.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f), path


def turns_of(conv):
    """[(sender, text)] with empty utterances dropped and same-sender runs merged."""
    turns = []
    for group in conv["messages"]:
        for utt in group:
            text = utt["text"].strip()
            if not text:
                continue
            if turns and turns[-1][0] == utt["sender"]:
                turns[-1][1].append(text)
            else:
                turns.append((utt["sender"], [text]))
    return [(s, "\n".join(t)) for s, t in turns]


def cut(text, limit):
    if len(text) <= limit:
        return text
    head = text[:limit]
    space = max(head.rfind(" "), head.rfind("\n"))
    return (head[:space] if space > limit // 2 else head).rstrip()


def chunks_of(conv, args):
    turns = turns_of(conv)
    if len({s for s, _ in turns}) != 2:
        return []
    texts = [cut(t, args.max_turn_chars) for _, t in turns]
    if len(texts) % 2:
        texts = texts[:-1]  # trailing user turn without a reply
    pairs = [(texts[i], texts[i + 1]) for i in range(0, len(texts), 2)]
    chunks, cur, size = [], [], 0
    for u, a in pairs:
        n = len(u) + len(a)
        if cur and (size + n > args.max_chunk_chars or 2 * (len(cur) + 1) > args.max_turns):
            chunks.append(cur)
            cur, size = [], 0
        cur.append((u, a))
        size += n
    if cur:
        chunks.append(cur)
    out = []
    for chunk in chunks:
        if sum(len(u) + len(a) for u, a in chunk) < args.min_chunk_chars:
            continue
        msgs = []
        for u, a in chunk:
            msgs.append({"role": "user", "content": u})
            msgs.append({"role": "assistant", "content": a})
        out.append(msgs)
    return out


def in_eval(cid, args):
    h = int(hashlib.sha256(f"{args.seed}:{cid}".encode()).hexdigest(), 16)
    return h % 1000 < round(1000 * args.eval_fraction)


def line(msgs):
    return json.dumps({"messages": msgs}, ensure_ascii=False) + "\n"


def budget(conv_lines, limit, seed, name):
    """Fair size cap: spread the byte budget over as many conversations as possible.

    Visits conversations in a seeded order, in rounds: round r adds one more chunk (the
    conversation's chunks are themselves taken in a seeded order) to every conversation that
    still has one, as long as it fits; stops at the first round that adds nothing. So every
    kept conversation contributes at most k or k+1 chunks. Kept chunks keep their original
    order (sorted conversation id, then position in the conversation).
    """
    total = sum(len(l.encode()) for _, ls in conv_lines for l in ls)
    if total <= limit:
        return conv_lines, f"{name}: all chunks kept ({total} bytes)"
    rng = random.Random(seed)
    conv_order = list(range(len(conv_lines)))
    rng.shuffle(conv_order)
    chunk_order = []
    for _, ls in conv_lines:
        o = list(range(len(ls)))
        rng.shuffle(o)
        chunk_order.append(o)
    keep = [set() for _ in conv_lines]
    used, rnd = 0, 0
    while True:
        added = False
        for i in conv_order:
            if rnd < len(chunk_order[i]):
                j = chunk_order[i][rnd]
                n = len(conv_lines[i][1][j].encode())
                if used + n <= limit:
                    keep[i].add(j)
                    used += n
                    added = True
        if not added:
            break
        rnd += 1
    kept = [(cid, [l for j, l in enumerate(ls) if j in keep[i]])
            for i, (cid, ls) in enumerate(conv_lines) if keep[i]]
    n_all = sum(len(ls) for _, ls in conv_lines)
    n_kept = sum(len(ls) for _, ls in kept)
    most = max(len(k) for k in keep)
    return kept, (f"{name}: size cap {limit} bytes -> kept {n_kept} of {n_all} chunks "
                  f"({used} of {total} bytes) from {len(kept)} of {len(conv_lines)} "
                  f"conversations, at most {most} chunks per conversation (seeded fair "
                  f"subsample)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default=os.path.join("recipes", "data"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-fraction", type=float, default=0.05)
    ap.add_argument("--max-chunk-chars", type=int, default=1000)
    ap.add_argument("--max-turns", type=int, default=16)
    ap.add_argument("--max-turn-chars", type=int, default=400)
    ap.add_argument("--min-chunk-chars", type=int, default=40)
    ap.add_argument("--max-train-bytes", type=int, default=4_300_000)
    ap.add_argument("--max-eval-bytes", type=int, default=400_000)
    args = ap.parse_args()

    data, src = load_conversations()
    version = md.version("chitchat-dataset")
    stats = {"conversations": len(data), "one_sender": 0, "too_short": 0}
    split = {"train": [], "eval": []}
    for cid in sorted(data):
        conv = data[cid]
        if len({u["sender"] for g in conv["messages"] for u in g}) < 2:
            stats["one_sender"] += 1
            continue
        chunks = chunks_of(conv, args)
        if not chunks:
            stats["too_short"] += 1
            continue
        split["eval" if in_eval(cid, args) else "train"].append(
            (cid, [line(m) for m in chunks]))

    os.makedirs(args.out_dir, exist_ok=True)
    print(f"source: chitchat-dataset {version} ({src})")
    print(f"conversations: {stats['conversations']}, dropped one-sender: {stats['one_sender']}, "
          f"dropped too short: {stats['too_short']}")
    for name, limit in (("train", args.max_train_bytes), ("eval", args.max_eval_bytes)):
        before = split[name]
        kept, note = budget(before, limit, args.seed + (1 if name == "train" else 2), name)
        path = os.path.join(args.out_dir, f"chitchat-{name}.jsonl")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for _, ls in kept:
                f.writelines(ls)
        n_chunks = sum(len(ls) for _, ls in kept)
        n_all = sum(len(ls) for _, ls in before)
        print(f"{path}: {n_chunks} examples (of {n_all} before the size cap) from "
              f"{len(kept)} conversations, {os.path.getsize(path)} bytes; {note}")

    dist = md.distribution("chitchat-dataset")
    lic = [f for f in (dist.files or []) if os.path.basename(str(f)).upper().startswith("LICEN")]
    dst = os.path.join(args.out_dir, "CHITCHAT-LICENSE")
    if lic:
        shutil.copyfile(dist.locate_file(lic[0]), dst)
        print(f"licence: copied {lic[0]} -> {dst}")
    else:
        raise SystemExit("no licence file in the package metadata; write it by hand")


if __name__ == "__main__":
    main()
