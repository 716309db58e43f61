#!/usr/bin/env python3
"""Writes the synthetic "private" support-ticket classification data set (Alpaca format).

Every line of the output is one JSON object

    {"instruction": "Classify the support ticket.",
     "input": "<ticket text>",
     "output": "<category>"}

where <category> is exactly one of billing, shipping, account, hardware, software, refund
(so a generated answer can be checked by exact match after stripping whitespace). The tickets are made up from templates:
category-specific problem sentences (keyword pools such as printer/toner/keyboard for
hardware, password/sign in/two-factor for account), optional detail sentences, optional
"distractor" sentences that mention another category's vocabulary in a clearly
non-problem way ("The package arrived on time, but ..."), optional greetings, closings and
sign-offs, and random fillers (invented customer names built from syllables, invented
product names, order/invoice numbers, dates). Each ticket has 1-3 sentences and at most
40 words; the sentence carrying the problem is placed at a random position, so the label
is learnable from the wording but not from one fixed position. All names and products
are invented; nothing comes from real people or real tickets.

Train and eval are generated with different seeds; eval tickets whose text also occurs in
train are regenerated, so the two splits are disjoint (ticket text compared ignoring case,
punctuation and spacing; the same key also removes duplicates within a split). Both splits are
exactly balanced over the six categories and shuffled.

Usage (from the repository root):

    tools/.venv/bin/python tools/make_ticket_data.py \
        [--train-per-class 670] [--eval-per-class 50] \
        [--train-seed 1234] [--eval-seed 98765] [--out-dir recipes/data]

writes OUT_DIR/tickets-train.jsonl (6 x 670 = 4020 lines) and OUT_DIR/tickets-eval.jsonl
(6 x 50 = 300 lines). Output is byte-identical for the same arguments (pure-Python `random`,
no dependencies beyond the standard library).
"""

import argparse
import json
import os
import random
import re
from collections import Counter

# The instruction does not list the six categories: the label set is learned from the
# training answers. Listing them made the small demo model copy the first one ("billing")
# for every ticket for many steps, and cost ~20 tokens per example.
INSTRUCTION = "Classify the support ticket."
CATEGORIES = ["billing", "shipping", "account", "hardware", "software", "refund"]
MAX_WORDS = 40

# --------------------------------------------------------------------------------------
# Fillers (all invented)

NAME_START = ["Ka", "Mi", "Lo", "Te", "Ra", "Vi", "Do", "Su", "Ne", "Ba", "Fe", "Jo",
              "Ta", "Ze", "Pi", "Wen", "Bro", "Ca", "Eli", "Ori", "Ysa", "Hal", "Mar", "Quin"]
NAME_MID = ["", "", "ra", "li", "ve", "no", "sa", "de", "mi", "ta", "lo"]
NAME_END = ["n", "ra", "lo", "th", "via", "ne", "mo", "sk", "ric", "lla", "dor", "wyn", "ko"]
SURNAMES_A = ["Brel", "Osk", "Tarn", "Vell", "Quor", "Dunn", "Fral", "Mirr", "Hask", "Lend",
              "Pell", "Zorv", "Cald", "Ebb", "Gosk", "Ruv"]
SURNAMES_B = ["ington", "ow", "amy", "ard", "ek", "ley", "ani", "ström", "ers", "ovich", "ey",
              "wick", "and", "etti"]

BRANDS = ["Zentrix", "Lumora", "Quellon", "Norvik", "Brightpath", "Cobaltix", "Veyra",
          "Tundrel", "Orbisa", "Kestrava"]
MODELS = ["X200", "Pro", "Air", "S5", "Mini", "Max", "9", "Plus", "Lite", "One", "Z3", "Neo"]
APPS = ["NovaDesk", "Plantly", "Ledgerly", "SyncBox", "Chatterbird", "PhotoNest", "Trackwise",
        "Notewise", "Budgeteer", "Calendo"]

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

GREETINGS = ["Hi,", "Hello,", "Hi there,", "Hello team,", "Good morning,", "Good afternoon,",
             "Hey,", "Dear support,", "Hi support,", "Greetings,", "Hello again,"]
GREETINGS_NAMED = ["Hi, this is {name}.", "Hello, my name is {name}.", "{name} here."]
CLOSINGS = ["Thanks in advance.", "Please help.", "Can someone look into this?",
            "Any help is appreciated.", "Thank you.", "Please advise.",
            "I would appreciate a quick reply.", "Thanks for your help.",
            "Let me know what you need from me.", "Please get back to me soon.",
            "This is urgent for me.", "Thanks!"]
SIGNOFFS = [" - {name}", " Regards, {name}", " Best, {first}", " Cheers, {first}",
            " Thanks, {first}"]

WHEN = ["since {weekday}", "since last {weekday}", "since {month} {day}", "since yesterday",
        "since this morning", "since the weekend", "since last week", "since the last update"]


def make_name(rng):
    first = rng.choice(NAME_START) + rng.choice(NAME_MID) + rng.choice(NAME_END)
    last = rng.choice(SURNAMES_A) + rng.choice(SURNAMES_B)
    return first, f"{first} {last}"


def fill_common(rng):
    first, name = make_name(rng)
    return {
        "first": first,
        "name": name,
        "brand": rng.choice(BRANDS),
        "model": rng.choice(MODELS),
        "app": rng.choice(APPS),
        "order": f"#{rng.choice('ABCDEKMRTW')}{rng.randint(10000, 99999)}",
        "invoice": f"INV-{rng.randint(100000, 999999)}",
        "amount": f"${rng.randint(5, 480)}.{rng.choice(['00', '99', '49', '50', '95'])}",
        "weekday": rng.choice(WEEKDAYS),
        "month": rng.choice(MONTHS),
        "day": rng.randint(1, 28),
        "days": rng.randint(2, 21),
        "version": f"{rng.randint(1, 9)}.{rng.randint(0, 19)}",
        "code": f"E{rng.randint(100, 999)}",
    }


# --------------------------------------------------------------------------------------
# Category vocabulary. {x} slots are filled from the pools in POOLS[category] or from the
# common fillers above.

POOLS = {
    "billing": {
        "charge": ["charged twice", "double charged", "charged the wrong amount",
                   "billed for a plan I never chose", "charged after I cancelled",
                   "overcharged", "billed two times"],
        "billthing": ["invoice", "monthly bill", "subscription fee", "billing statement",
                      "receipt", "annual plan charge"],
        "payissue": ["my card keeps getting declined", "the payment method will not update",
                     "the invoice shows the wrong billing address",
                     "the tax on my bill is wrong", "autopay failed this month",
                     "I cannot change my credit card on file",
                     "my bank shows a pending charge I do not recognize"],
    },
    "shipping": {
        "pkg": ["package", "parcel", "delivery", "shipment", "order"],
        "shipissue": ["has not arrived yet", "is stuck in transit",
                      "was delivered to the wrong address", "shows no tracking updates",
                      "was marked delivered but never showed up", "is days late",
                      "is still waiting at the courier depot", "was left with a neighbour"],
        "shipask": ["change the delivery address", "get a tracking number",
                    "find out when the courier will come", "upgrade to express shipping",
                    "reschedule the delivery", "know why the shipment is delayed"],
    },
    "account": {
        "acctissue": ["I cannot sign in", "I forgot my password", "my account is locked",
                      "the two-factor code never arrives", "my password reset link expired",
                      "I am locked out of my account", "the login page rejects my password",
                      "my username is not recognized", "the verification email never came"],
        "acctask": ["change the email on my account", "reset my password",
                    "turn off two-factor authentication", "delete my account",
                    "merge my two accounts", "update my username",
                    "recover my account", "change my security questions"],
    },
    "hardware": {
        "device": ["printer", "keyboard", "monitor", "laptop", "mouse", "headset", "webcam",
                   "docking station", "router", "scanner", "tablet", "speaker"],
        "hwissue": ["won't turn on", "keeps overheating", "makes a grinding noise",
                    "stopped responding to input", "has a cracked casing",
                    "keeps disconnecting", "will not charge", "is physically damaged",
                    "shows blinking warning lights", "rattles when I move it"],
        "hwsentence": ["the screen flickers constantly", "the printer says the toner is empty "
                       "even with a new cartridge", "several keys on the keyboard are stuck",
                       "the laptop battery drains in an hour", "the USB port is loose",
                       "the fan is extremely loud", "the printer jams on every page",
                       "the charger sparks when plugged in", "the touchpad does not click",
                       "the power button is stuck", "the monitor has a dead pixel",
                       "the laptop hinge is broken"],
    },
    "software": {
        "swissue": ["crashes on startup", "freezes when I open a file", "will not install",
                    "shows error {code}", "keeps logging errors", "fails to sync",
                    "closes itself after a few minutes", "runs extremely slowly after the update",
                    "shows a blank window", "will not save my changes"],
        "swsentence": ["the latest update broke the export feature",
                       "the installer stops at 90 percent", "the app crashes with error {code}",
                       "version {version} keeps freezing", "the plugin no longer loads",
                       "the desktop client will not launch", "the update fails to download",
                       "the program throws an exception when I print a report",
                       "the sync feature duplicates my files", "the search function returns nothing"],
    },
    "refund": {
        "refundask": ["I would like a refund", "I want my money back",
                      "please refund my purchase", "I am requesting a full refund",
                      "I need a refund for order {order}", "I would like to be reimbursed",
                      "I want to return this and get refunded",
                      "please process a refund to my card"],
        "refundstatus": ["my refund still has not arrived", "the refund I was promised is missing",
                         "I returned the item but got no refund",
                         "the refund amount was smaller than expected",
                         "my return was received but the refund is pending"],
    },
}

# Problem sentences; {x} from POOLS or common fillers. Several shapes per category so the
# cue words appear at different positions in the sentence.
PROBLEMS = {
    "billing": [
        "I was {charge} for my {billthing} this month.",
        "My {billthing} says I was {charge}.",
        "Why was I {charge} on {invoice}?",
        "It looks like {payissue}.",
        "Since {month}, {payissue}.",
        "I just noticed I was {charge}, the {billthing} shows {amount}.",
        "Please check {invoice}, I think I was {charge}.",
        "The {billthing} for {month} is wrong, I was {charge}.",
        "I need help with my {billthing} because {payissue}.",
        "Could you explain the {amount} charge on my {billthing}?",
        "My payment of {amount} went through twice.",
    ],
    "shipping": [
        "My {pkg} {order} {shipissue}.",
        "The {pkg} I ordered on {weekday} {shipissue}.",
        "Order {order} {shipissue}.",
        "I need to {shipask} for order {order}.",
        "Can you help me {shipask}?",
        "Where is my {pkg}? It {shipissue}.",
        "The tracking page for {order} has not changed {when}.",
        "The courier says my {pkg} {shipissue}.",
        "I would like to {shipask}, my {pkg} {shipissue}.",
        "Still waiting on {pkg} {order}, it {shipissue}.",
    ],
    "account": [
        "{acctissue}.",
        "{acctissue} {when}.",
        "I need to {acctask}.",
        "Please help me {acctask}.",
        "Every time I try to sign in to {app}, {acctissue_lc}.",
        "How do I {acctask}?",
        "{acctissue} and I need to {acctask}.",
        "I tried to {acctask} but {acctissue_lc}.",
        "My login for {app} stopped working {when}, {acctissue_lc}.",
    ],
    "hardware": [
        "My {brand} {model} {device} {hwissue}.",
        "The {device} {hwissue}.",
        "Since {weekday} {hwsentence}.",
        "{hwsentence_cap} on my {brand} {model}.",
        "Our office {device} {hwissue} {when}.",
        "I think the {device} is faulty, it {hwissue}.",
        "The new {device} I bought {hwissue}.",
        "After a week of use {hwsentence}.",
        "My {device} {hwissue} and {hwsentence}.",
    ],
    "software": [
        "{app} {swissue}.",
        "The {app} app {swissue} {when}.",
        "Since updating to version {version}, {app} {swissue}.",
        "{swsentence_cap}.",
        "When I use {app}, {swsentence}.",
        "{app} version {version} {swissue} on my computer.",
        "I reinstalled {app} but it still {swissue}.",
        "Since the update {swsentence}.",
        "The {app} desktop program {swissue}.",
    ],
    "refund": [
        "{refundask_cap}.",
        "{refundask_cap}, the item was not what I expected.",
        "{refundstatus_cap}.",
        "{refundstatus_cap} {when}.",
        "I returned order {order} and {refundstatus}.",
        "{refundask_cap} for the {amount} I paid.",
        "The {brand} {model} was not for me, {refundask}.",
        "I cancelled within the trial period, {refundask}.",
        "{refundask_cap}, please tell me how to send it back.",
    ],
}

# Optional second sentences that reinforce the category (still varied wording).
DETAILS = {
    "billing": ["My account number is on {invoice}.", "The extra charge was {amount}.",
                "I only have one subscription.", "My bank statement shows both payments.",
                "The card ends in {last4}."],
    "shipping": ["The tracking number has not updated {when}.",
                 "I paid for express delivery.", "The address on the label is wrong.",
                 "It was supposed to arrive on {weekday}."],
    "account": ["I already tried the reset link twice.", "I still have access to my email.",
                "My phone number changed recently.", "The error says invalid credentials."],
    "hardware": ["I already tried a different cable.", "It is still under warranty.",
                 "The device is about {days} days old.", "I have restarted it several times."],
    "software": ["I already tried reinstalling it.", "I am on version {version}.",
                 "The log mentions error {code}.", "Clearing the cache did not help."],
    "refund": ["I sent the item back on {weekday}.", "I paid {amount}.",
               "The return label was scanned on {weekday}.", "I no longer need the product."],
}

# Distractors: another category's vocabulary, explicitly NOT the problem.
DISTRACTORS = {
    "billing": ["The payment itself went through fine.", "My invoice looks correct.",
                "I am not disputing any charge."],
    "shipping": ["The package arrived on time.", "Delivery was quick, no complaints there.",
                 "The order {order} arrived on {weekday}.", "Shipping was fast."],
    "account": ["I can sign in without any trouble.", "My password works fine.",
                "My account settings are all correct."],
    "hardware": ["My laptop itself works fine.", "The printer is not the issue.",
                 "I already restarted my computer."],
    "software": ["The app is fully up to date.", "I already updated the software.",
                 "There are no error messages."],
    "refund": ["I am not asking for a refund.", "I do not want my money back.",
               "I do not need a refund, just a fix."],
}


def cap(s):
    return s[:1].upper() + s[1:]


def lc(s):
    # lower-case the first letter unless the first word is "I" or an invented name
    first = s.split(" ", 1)[0].rstrip(",.?")
    if first == "I" or first in BRANDS or first in APPS or not first[1:].islower():
        return s
    return s[:1].lower() + s[1:]


def fill(template, slots):
    """Fill {x} slots; pool entries may themselves contain common slots."""
    out = template
    for _ in range(4):  # nested slots (pool entries with {order}, {code}, ...)
        if "{" not in out:
            break
        out = out.format_map(slots)
    return out


class Slots(dict):
    """Lazily draws pool values; `_cap`/`_lc` suffixes transform the drawn value."""

    def __init__(self, rng, category):
        super().__init__(fill_common(rng))
        self.rng = rng
        self.pools = POOLS[category]
        self.drawn = {}
        self["last4"] = f"{rng.randint(0, 9999):04d}"

    def __missing__(self, key):
        base, _, suffix = key.partition("_")
        if base == "when":
            value = self.rng.choice(WHEN).format_map(self)
        elif base in self.pools:
            if base not in self.drawn:
                self.drawn[base] = self.rng.choice(self.pools[base])
            value = self.drawn[base]
        else:
            raise KeyError(key)
        value = value.format_map(self) if "{" in value else value
        if suffix == "cap":
            value = cap(value)
        elif suffix == "lc":
            value = lc(value)
        return value


def make_ticket(rng, category):
    slots = Slots(rng, category)
    problem = cap(fill(rng.choice(PROBLEMS[category]), slots))
    sentences = [problem]
    r = rng.random()
    if r < 0.30:
        other = rng.choice([c for c in CATEGORIES if c != category])
        distractor = fill(rng.choice(DISTRACTORS[other]), slots)
        # distractor before or after the problem sentence
        sentences.insert(rng.randint(0, 1), distractor)
    elif r < 0.65:
        sentences.append(fill(rng.choice(DETAILS[category]), slots))
    if len(sentences) < 3 and rng.random() < 0.4:
        sentences.append(rng.choice(CLOSINGS))
    text = " ".join(sentences)
    g = rng.random()
    if g < 0.35:
        text = rng.choice(GREETINGS) + " " + lc(text)
    elif g < 0.45 and len(sentences) < 3:
        text = rng.choice(GREETINGS_NAMED).format_map(slots) + " " + text
    if rng.random() < 0.2:
        text += rng.choice(SIGNOFFS).format_map(slots)
    # style noise: occasional lower-case or missing final period, as in real tickets
    s = rng.random()
    if s < 0.07:
        text = text.lower()
    elif s < 0.12 and text.endswith("."):
        text = text[:-1]
    return text


def norm_key(text):
    """Duplicate key: case, punctuation and spacing ignored."""
    return re.sub(r"\W+", " ", text.lower()).strip()


def generate(per_class, seed, exclude=frozenset()):
    rng = random.Random(seed)
    rows, seen = [], set(exclude)
    for category in CATEGORIES:
        n = 0
        attempts = 0
        while n < per_class:
            attempts += 1
            if attempts > per_class * 200:
                raise RuntimeError(f"cannot make {per_class} unique {category} tickets")
            text = make_ticket(rng, category)
            key = norm_key(text)
            if len(text.split()) > MAX_WORDS or key in seen:
                continue
            seen.add(key)
            rows.append({"instruction": INSTRUCTION, "input": text, "output": category})
            n += 1
    rng.shuffle(rows)
    return rows


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-per-class", type=int, default=670)
    ap.add_argument("--eval-per-class", type=int, default=50)
    ap.add_argument("--train-seed", type=int, default=1234)
    ap.add_argument("--eval-seed", type=int, default=98765)
    ap.add_argument("--out-dir", default=os.path.join("recipes", "data"))
    args = ap.parse_args()
    if args.train_seed == args.eval_seed:
        ap.error("train and eval seeds must differ")

    train = generate(args.train_per_class, args.train_seed)
    train_keys = frozenset(norm_key(r["input"]) for r in train)
    evals = generate(args.eval_per_class, args.eval_seed, exclude=train_keys)
    assert not train_keys & {norm_key(r["input"]) for r in evals}

    os.makedirs(args.out_dir, exist_ok=True)
    for name, rows in (("tickets-train.jsonl", train), ("tickets-eval.jsonl", evals)):
        path = os.path.join(args.out_dir, name)
        write_jsonl(path, rows)
        words = [len(r["input"].split()) for r in rows]
        counts = Counter(r["output"] for r in rows)
        print(f"{path}: {len(rows)} lines, {os.path.getsize(path)} bytes, words/ticket "
              f"min {min(words)} mean {sum(words) / len(words):.1f} max {max(words)}, "
              f"labels {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
