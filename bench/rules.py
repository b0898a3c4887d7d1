"""Benchmark: does the rule engine's cost stay flat as aliases grow?

For 10 .. 100,000 generated place-like aliases and 1,000 rules, over a 5 KB article (sentences,
curly quotes, dashes, a little Arabic, as in real news text), prints the engine's median
microseconds per article, a naive loop of one regex per alias (capped at 1,000 regexes)
measured in the same run, and the time to build the index (automaton).

    .venv/bin/python bench/rules.py [--runs 60]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rules.engine import match
from rules.index import compile_ruleset
from rules.model import Group, Node, Place, Rule, Ruleset, Term
from rules.types import Severity, Text

SIZES = (10, 100, 1_000, 10_000, 100_000)
RULES = 1_000
ONSETS = ["k", "m", "t", "d", "b", "s", "sh", "r", "n", "h", "j", "z", "q", "f", "l", "kh"]
VOWELS = ["a", "i", "u", "aa", "ee", "o"]
CODAS = ["", "n", "r", "z", "b", "l", "t", "m"]
FILLER = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "on",
    "with",
    "as",
    "was",
    "by",
    "at",
    "from",
    "said",
    "fighters",
    "town",
    "rebels",
    "group",
    "village",
    "road",
    "border",
    "monitoring",
    "forces",
    "advance",
    "report",
    "statement",
    "council",
    "market",
    "civilians",
    "area",
    "near",
    "north",
]


def names(count: int, rng: random.Random) -> list[str]:
    out: set[str] = set()
    while len(out) < count:
        parts = []
        for _ in range(rng.choice((1, 2, 2, 3))):
            word = "".join(
                rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(rng.choice((2, 3)))
            )
            parts.append(word.capitalize())
        out.add(" ".join(parts))
    return sorted(out)


def ruleset(aliases: list[str], mentioned: list[str], rng: random.Random) -> Ruleset:
    """1,000 rules: one per mentioned alias (these fire), the rest over aliases the article lacks."""
    places = {}
    for i, alias in enumerate(aliases):
        pid = f"p{i}"
        places[pid] = Place(pid, alias, (), 36 + rng.random(), 37 + rng.random())
    groups = {"islamic-state": Group("islamic-state", "Islamic State", ("ISIS", "IS", "Daesh"))}
    by_name = {p.name: p.id for p in places.values()}
    hot = [by_name[a] for a in mentioned]
    cold = [pid for pid in places if pid not in set(hot)]
    rules = {}
    for r in range(RULES):
        if r < len(hot):
            terms = (Term("place", hot[r]), Term("keyword", f"kw{r}"))
        else:
            terms = (
                Term("place", rng.choice(cold)),
                Term("place", rng.choice(cold)),
                Term("keyword", f"kw{r}"),
            )
        expr = Node("all", (Node("all", (Term("group", "islamic-state"),)), Node("any", terms)))
        rules[f"r{r}"] = Rule(f"r{r}", f"rule {r}", Severity.MEDIUM, expr)
    return Ruleset(places, groups, {}, rules, [], "bench")


# Real news text is rarely pure ASCII: curly quotes, dashes, an ellipsis, a little Arabic.
FLOURISHES = [
    "“we will not leave,”",
    "fighters’",
    "group’s",
    "—",
    "–",
    "…",
    "(إعزاز)",
    "قوات المعارضة",
    "‘reliable’",
    "Aléppo",
]


def article(mentioned: list[str], rng: random.Random, size: int = 5_000) -> str:
    words: list[str] = []
    mentions = list(mentioned)
    sentence = 0
    while sum(len(w) + 1 for w in words) + sum(len(m) + 1 for m in mentions) < size:
        if rng.random() < 0.01 and mentions:
            words.append(mentions.pop())
        elif rng.random() < 0.005:
            words.append("ISIS")
        elif rng.random() < 0.03:
            words.append(rng.choice(FLOURISHES))
        else:
            words.append(rng.choice(FILLER))
        sentence += 1
        if sentence > rng.randint(12, 28):  # sentences, so snippets find their bounds as in real text
            words[-1] += "."
            sentence = 0
    for mention in mentions:  # every mention is in, so each size's 5 hot rules fire
        words.insert(rng.randrange(len(words)), mention)
    return " ".join(words)


def median_us(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    rng = random.Random(4)
    all_names = names(max(SIZES), rng)
    print(
        f"{'aliases':>8} {'rules':>6} {'build s':>8} {'engine µs':>10} {'naive µs':>10} "
        f"{'regexes':>8} {'matches':>8}"
    )
    baseline = None
    for n in SIZES:
        aliases = all_names[:n]
        mentioned = rng.sample(aliases, 5)
        rs = ruleset(aliases, mentioned, rng)
        t = time.perf_counter()
        rs = compile_ruleset(rs)
        build = time.perf_counter() - t
        doc = Text(title="Report", text=article(mentioned, rng))
        found = len(match(doc, rs))
        engine_us = median_us(lambda doc=doc, rs=rs: match(doc, rs), args.runs)
        naive = [re.compile(r"\b" + re.escape(a) + r"\b", re.IGNORECASE) for a in aliases[:1000]]

        def naive_loop(naive=naive, text=doc.text):
            return [p for p in naive if p.search(text)]

        naive_us = median_us(naive_loop, max(5, args.runs // 4))
        baseline = baseline or engine_us
        print(
            f"{n:>8} {RULES:>6} {build:>8.3f} {engine_us:>10.0f} {naive_us:>10.0f} {len(naive):>8} {found:>8}"
        )
    print(f"engine at {max(SIZES)} aliases / at {min(SIZES)}: {engine_us / baseline:.2f}x (target ≤ 2x)")


if __name__ == "__main__":
    main()
