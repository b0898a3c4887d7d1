"""The compiled index of a ruleset and ``CompiledRuleset``, the ruleset that carries it: one
Aho-Corasick automaton over every folded name of every place, group and keyword (plus
gazetteer names), the rules each term can trigger, and the regexes as one RE2 set.
``compile_ruleset`` builds it once per load; the engine only reads it.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, NamedTuple

import ahocorasick

from rules.fold import fold, fold_many, is_short_caps
from rules.model import Group, Node, Place, Rule, Ruleset, Term
from rules.regexes import CompiledRegex, RegexSet, compile_regexes

if TYPE_CHECKING:
    from rules.gazetteer import Gazetteer
    from rules.types import EntryKind


class Entry(NamedTuple):
    """What an automaton key stands for: a watched place or group, a keyword, or gazetteer names.

    A named tuple: index builds make one per name (100,000+), and tuples are cheap to make."""

    kind: EntryKind
    target: str  # place/group id, or the folded name for gaz
    cs_form: str | None = None  # exact-case form when the alias is case-sensitive
    capital: bool = False  # gazetteer: the mention must start with a capital letter
    short_caps: bool = False  # IS, SDF: not trusted in all-capital text ("IS IT OVER?")
    key: tuple[str, ...] = ()  # keyword: the term key


EntrySplit = tuple[tuple[Entry, ...], tuple[Entry, ...]]
"""A key's entries split into (watched places, groups and gazetteer names; keywords)."""

AutomatonValue = tuple[int, tuple[Entry, ...], EntrySplit | None]
"""What the automaton returns for a key: the key's length, its entries, and those entries
already split when none of them needs a check against the original text (else None)."""


@dataclass
class Index:
    automaton: ahocorasick.Automaton | None  # folded name -> AutomatonValue
    term_rules: dict[tuple[str, ...], tuple[str, ...]]  # term key -> ids of the rules it anchors
    regexes: list[tuple[str, CompiledRegex]]  # (pattern, compiled), in the order of regex_set
    regex_set: RegexSet | None
    areas: tuple[str, ...]  # areas some rule refers to
    gazetteer: Gazetteer | None = None
    size: int = 0  # automaton keys


def build_index(ruleset: Ruleset, gazetteer: Gazetteer | None = None) -> Index:
    # A build makes a few hundred thousand small acyclic objects (tuples, lists, strings): the
    # cyclic garbage collector, triggered over and over by them, would take a third of the time
    # at 100,000 names while finding nothing to free. Paused for the build, then restored.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _build_index(ruleset, gazetteer)
    finally:
        if paused:
            gc.enable()


def _build_index(ruleset: Ruleset, gazetteer: Gazetteer | None) -> Index:
    # Names are gathered first and folded in one call, each with the Entry its place, group or
    # keyword shares: per-name Python work is what a 100,000-name build spends its time on.
    names: list[str] = []
    owners: list[tuple[Entry, bool]] = []  # (shared entry, case-sensitive), per name
    watched: list[tuple[EntryKind, Place | Group]] = [("place", p) for p in ruleset.places.values()]
    watched += [("group", g) for g in ruleset.groups.values()]
    for kind, owner in watched:
        shared = (Entry(kind, owner.id), False)
        names.append(owner.name)
        names.extend(owner.aliases)
        owners.extend([shared] * (1 + len(owner.aliases)))
    term_rules: dict[tuple[str, ...], set[str]] = defaultdict(set)
    regex_patterns: dict[str, None] = {}
    areas: dict[str, None] = {}
    for rule in ruleset.rules.values():
        for term in rule.expr.terms():
            if term.kind == "keyword":
                names.append(term.value)
                owners.append((Entry("keyword", term.value, key=term.key), term.case_sensitive))
            elif term.kind == "regex":
                regex_patterns[term.value] = None
            elif term.kind == "area":
                areas[term.value] = None
        for key in anchor_keys(rule):
            term_rules[key].add(rule.id)
    entries = _entries_by_name(names, owners, gazetteer)
    regexes, regex_set = compile_regexes(list(regex_patterns))
    order = {rid: i for i, rid in enumerate(ruleset.rules)}
    return Index(
        _automaton(entries),
        {k: tuple(sorted(v, key=order.__getitem__)) for k, v in term_rules.items()},
        regexes,
        regex_set,
        tuple(areas),
        gazetteer,
        len(entries),
    )


def _entries_by_name(
    names: list[str], owners: list[tuple[Entry, bool]], gazetteer: Gazetteer | None
) -> dict[str, list[Entry]]:
    """Folded name -> the distinct entries it stands for, gazetteer names last."""
    entries: dict[str, list[Entry]] = {}
    for folded, name, (entry, sensitive) in zip(fold_many(names), names, owners, strict=True):
        if not folded or folded.isspace():
            continue
        if sensitive or is_short_caps(name):
            entry = entry._replace(cs_form=fold(name, casefold=False), short_caps=not sensitive)
        bucket = entries.get(folded)
        if bucket is None:
            entries[folded] = [entry]
        elif entry not in bucket:
            bucket.append(entry)
    if gazetteer is not None:
        for folded, capital in gazetteer.names():
            entries.setdefault(folded, []).append(Entry("gaz", folded, capital=capital))
    return entries


def _automaton(entries: dict[str, list[Entry]]) -> ahocorasick.Automaton | None:
    if not entries:
        return None
    automaton = ahocorasick.Automaton()
    for folded, bucket in entries.items():
        automaton.add_word(folded, _automaton_value(folded, bucket))
    automaton.make_automaton()
    return automaton


def _automaton_value(folded: str, bucket: list[Entry]) -> AutomatonValue:
    """What the automaton returns for a key: its length, its entries, and, when no entry needs a
    check against the original text (the usual case), its names and keywords already split."""
    entries = tuple(bucket)
    if len(entries) == 1:  # most keys: one name of one place
        e = entries[0]
        if e.cs_form is not None or e.short_caps or e.capital:
            return (len(folded), entries, None)
        return (len(folded), entries, ((), entries) if e.kind == "keyword" else (entries, ()))
    if any(e.cs_form is not None or e.short_caps or e.capital for e in entries):
        return (len(folded), entries, None)
    named = tuple(e for e in entries if e.kind != "keyword")
    kws = tuple(e for e in entries if e.kind == "keyword")
    return (len(folded), entries, (named, kws))


# How common a term kind tends to be: a rule is indexed under its most specific necessary terms.
_WEIGHT = {"keyword": 1, "regex": 1, "place": 1, "group": 4, "area": 4, "source": 8, "lang": 8}


def anchor_keys(rule: Rule) -> set[tuple[str, ...]]:
    """Term keys of which at least one must be found for ``rule`` to hold (cheapest such set).

    A rule ``all: [group: islamic-state, any: [place: a, place: b]]`` is indexed under places a
    and b only, so an article that merely names the group evaluates none of the place rules."""
    found = _anchor(rule.expr)
    return found if found else {t.key for t in rule.positive_terms}


def _anchor(node: Node | Term) -> set[tuple[str, ...]] | None:
    if isinstance(node, Term):
        return {node.key}
    if node.op == "none":
        return None
    children = [_anchor(c) for c in node.children]
    if node.op == "all":
        usable = [c for c in children if c]
        return min(usable, key=lambda keys: sum(_WEIGHT.get(k[0], 4) for k in keys)) if usable else None
    anchored = [c for c in children if c is not None]
    if len(anchored) < len(children):  # any / at_least: one of the children must hold
        return None
    return set().union(*anchored)


@dataclass
class CompiledRuleset(Ruleset):
    """A ruleset with the index the engine matches by: what ``load_ruleset`` returns."""

    index: Index = field(kw_only=True, repr=False)


def compile_ruleset(ruleset: Ruleset, gazetteer: Gazetteer | None = None) -> CompiledRuleset:
    """``ruleset`` with its index built (``gazetteer`` names added for ``area`` terms)."""
    gazetteer = gazetteer if gazetteer is not None else ruleset.gazetteer
    given = {f.name: getattr(ruleset, f.name) for f in fields(Ruleset) if not f.name.startswith("_")}
    return CompiledRuleset(**{**given, "gazetteer": gazetteer}, index=build_index(ruleset, gazetteer))
