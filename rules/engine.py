"""The matching engine: pure functions from a document and a ``CompiledRuleset`` to ``Match``es.

One Aho-Corasick automaton holds every folded name of every place, group and keyword in all
rule files (plus gazetteer names when one is given), so one pass over the text finds every
candidate whatever the number of rules. Hits are kept only at word boundaries (Arabic
proclitics allowed), short all-capital aliases only in capitals, and among overlapping names
the leftmost-longest wins ("Gioiosa Marea" is not Marea). Only rules indexed under a term that
was found are evaluated.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rules.fold import fold, fold_with_map, is_word_char
from rules.model import Node, Rule, Term, haversine_km
from rules.snippets import make_snippet, title_copy_end
from rules.types import TEXT_FIELDS, Document, Match, Mentions, PlaceRef, TermHit

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import ahocorasick

    from rules.gazetteer import Gazetteer, GazPlace
    from rules.index import AutomatonValue, CompiledRuleset, Entry, Index
    from rules.types import FactKind, TextField

# Arabic clitics written joined to the next word: و (and), ف, ب (in), ل (to), ك, and the article.
ARABIC_PROCLITICS = frozenset(
    {"و", "ف", "ب", "ل", "ك", "ال", "وال", "فال", "بال", "كال", "لل", "ولل", "فلل", "وب", "فب", "ول", "فل"}
)


# -- finding names ----------------------------------------------------------------------------


@dataclass
class NameHit:
    field: TextField
    start: int  # offsets into the original field
    end: int
    found: str
    entries: tuple[Entry, ...]


@dataclass
class FoundPlace:
    ref: PlaceRef
    hit: NameHit


@dataclass
class Findings:
    """Everything found in one document, before any rule is evaluated."""

    hits: dict[tuple[str, ...], list[TermHit]] = field(default_factory=lambda: defaultdict(list))
    places: list[FoundPlace] = field(default_factory=list)  # watched and gazetteer, in text order
    area_places: dict[str, list[tuple[TermHit, PlaceRef]]] = field(default_factory=lambda: defaultdict(list))


def _boundary_ok(folded: str, start: int, stop: int) -> bool:
    if stop < len(folded) and is_word_char(folded[stop]) and is_word_char(folded[stop - 1]):
        return False
    if start > 0 and is_word_char(folded[start - 1]) and is_word_char(folded[start]):
        if not _is_arabic(folded[start]):
            return False
        ws = start - 1
        while ws > 0 and is_word_char(folded[ws - 1]):
            ws -= 1
        return folded[ws:start] in ARABIC_PROCLITICS
    return True


def _is_arabic(ch: str) -> bool:
    return "\u0600" <= ch <= "\u06ff" or "\u0750" <= ch <= "\u077f"


def _shouting(text: str, start: int, end: int) -> bool:
    """Is the text around a hit written in capitals, so "IS" there may be the verb?"""
    around = text[max(0, start - 40) : start] + text[end : end + 40]
    if around.isascii():  # the usual case, counted in C: cased letters are A-Z and a-z
        raw = around.encode()
        letters = len(raw.translate(None, _NOT_ASCII_LETTER))
        return letters >= 8 and len(raw.translate(None, _NOT_ASCII_UPPER)) >= 0.7 * letters
    cased = [c for c in around if c.isalpha() and c.lower() != c.upper()]
    return len(cased) >= 8 and sum(c.isupper() for c in cased) >= 0.7 * len(cased)


_ASCII_UPPER = bytes(range(ord("A"), ord("Z") + 1))
_NOT_ASCII_UPPER = bytes(b for b in range(128) if b not in _ASCII_UPPER)
_NOT_ASCII_LETTER = bytes(b for b in _NOT_ASCII_UPPER if not chr(b).islower())


def _entry_ok(entry: Entry, original: str, text: str, start: int, end: int) -> bool:
    if entry.cs_form is not None and fold(original, casefold=False) != entry.cs_form:
        return False
    if entry.short_caps and _shouting(text, start, end):
        return False
    if entry.capital:
        first = original[:1]
        if first.lower() != first.upper() and not first.isupper():
            return False
    return True


def find_names(
    text: str, field_name: TextField, automaton: ahocorasick.Automaton | None
) -> tuple[list[NameHit], list[NameHit]]:
    """(names after leftmost-longest selection, keyword hits) in one field."""
    if automaton is None or not text:
        return [], []
    folded, fmap = fold_with_map(text)
    names: list[NameHit] = []
    keywords: list[NameHit] = []
    size = len(folded)
    keys_found: Iterable[tuple[int, AutomatonValue]] = automaton.iter(folded)  # (end offset, value)
    for end, (length, bucket, split) in keys_found:
        start, stop = end - length + 1, end + 1
        # Word boundaries, inlined from _boundary_ok for the common case: spaces around the hit.
        if (stop < size and is_word_char(folded[stop]) and is_word_char(folded[end])) or (
            start > 0 and is_word_char(folded[start - 1]) and not _boundary_ok(folded, start, stop)
        ):
            continue
        o_start, o_end = fmap[start], fmap[end] + 1
        original = text[o_start:o_end]
        if split is None:
            valid = tuple(e for e in bucket if _entry_ok(e, original, text, o_start, o_end))
            if not valid:
                continue
            named = tuple(e for e in valid if e.kind != "keyword")
            kws = tuple(e for e in valid if e.kind == "keyword")
        else:
            named, kws = split
        if named:
            names.append(NameHit(field_name, o_start, o_end, original, named))
        if kws:
            keywords.append(NameHit(field_name, o_start, o_end, original, kws))
    return _leftmost_longest(names), keywords


def _leftmost_longest(hits: list[NameHit]) -> list[NameHit]:
    hits.sort(key=lambda h: (h.start, -(h.end - h.start)))
    out: list[NameHit] = []
    last_end = -1
    for h in hits:
        if h.start >= last_end:
            watched = tuple(e for e in h.entries if e.kind != "gaz")
            if watched:
                h.entries = watched  # an equal-length watched name beats the gazetteer's
            out.append(h)
            last_end = h.end
    return out


def analyse(doc: Document, ruleset: CompiledRuleset, *, with_areas: bool = True) -> Findings:
    index = ruleset.index
    assert index is not None, "ruleset without index: load it with rules.load_ruleset"
    result = Findings()
    gaz_hits: list[NameHit] = []
    for field_name in TEXT_FIELDS:
        text = getattr(doc, field_name, "") or ""
        names, keywords = find_names(text, field_name, index.automaton)
        for h in keywords:
            for e in h.entries:
                result.hits[e.key].append(TermHit("keyword", e.target, h.found, h.field, h.start, h.end))
        for h in names:
            for e in h.entries:
                if e.kind == "place":
                    place = ruleset.places[e.target]
                    ref = PlaceRef(place.id, place.name, place.lat, place.lon, True)
                    result.places.append(FoundPlace(ref, h))
                    result.hits[("place", place.id)].append(
                        TermHit("place", place.id, h.found, h.field, h.start, h.end)
                    )
                elif e.kind == "group":
                    result.hits[("group", e.target)].append(
                        TermHit("group", e.target, h.found, h.field, h.start, h.end)
                    )
            if index.gazetteer is not None and h.entries[0].kind == "gaz":
                gaz_hits.append(h)
        if index.regexes:
            _find_regexes(text, field_name, index, result)
    if gaz_hits and with_areas:
        _resolve_gazetteer(gaz_hits, index.gazetteer, result)
    facts: tuple[tuple[FactKind, str | None], ...] = (("source", doc.source), ("lang", doc.language))
    for kind, value in facts:
        if value:
            result.hits[(kind, value.casefold())].append(TermHit(kind, value, value, kind, 0, 0))
    if with_areas and index.areas and result.places:
        _find_areas(ruleset, index.areas, result)
    return result


def _find_regexes(text: str, field_name: TextField, index: Index, result: Findings) -> None:
    if not text or index.regex_set is None:
        return
    for i in index.regex_set.Match(text) or ():
        pattern, compiled = index.regexes[i]
        for m in compiled.finditer(text):
            if m.end() > m.start():
                result.hits[("regex", pattern)].append(
                    TermHit("regex", pattern, m.group(0), field_name, m.start(), m.end())
                )


def _resolve_gazetteer(hits: list[NameHit], gazetteer: Gazetteer | None, result: Findings) -> None:
    """An ambiguous name is the candidate nearest the article's other places, else the most populous."""
    assert gazetteer is not None
    candidates = [(h, gazetteer.lookup(h.entries[0].target)) for h in hits]
    context = [(fp.ref.lat, fp.ref.lon) for fp in result.places]
    context += [(c[0].lat, c[0].lon) for _, c in candidates if len(c) == 1]
    for h, cands in candidates:
        if not cands:
            continue
        if len(cands) == 1:
            chosen = cands[0]
        elif context:
            chosen = min(cands, key=lambda c: min(haversine_km(c.lat, c.lon, la, lo) for la, lo in context))
        else:
            chosen = max(cands, key=lambda c: c.population)
        result.places.append(FoundPlace(_gaz_ref(chosen), h))


def _gaz_ref(place: GazPlace) -> PlaceRef:
    return PlaceRef(f"geonames:{place.geonameid}", place.name, place.lat, place.lon, False)


def _find_areas(ruleset: CompiledRuleset, area_ids: Iterable[str], result: Findings) -> None:
    for area_id in area_ids:
        area = ruleset.areas.get(area_id)
        if area is None:
            continue
        seen: set[str] = set()
        for fp in result.places:
            ref = fp.ref
            if not area.contains(ref.lat, ref.lon):
                continue
            h = fp.hit
            hit = TermHit("area", area_id, h.found, h.field, h.start, h.end)
            result.hits[("area", area_id)].append(hit)
            if ref.id not in seen:
                seen.add(ref.id)
                distance = round(area.distance_km(ref.lat, ref.lon), 1)
                placed = PlaceRef(ref.id, ref.name, ref.lat, ref.lon, ref.watched, area_id, distance)
                result.area_places[area_id].append((hit, placed))


# -- rules ------------------------------------------------------------------------------------


def match(doc: Document, ruleset: CompiledRuleset) -> list[Match]:
    """Every rule of ``ruleset`` that fires on ``doc``, with its evidence. Pure."""
    return _matches(analyse(doc, ruleset), doc, ruleset)


def match_and_scan(doc: Document, ruleset: CompiledRuleset) -> tuple[list[Match], Mentions]:
    """``match`` and ``scan`` from one pass over the text (what ingesting an article needs)."""
    found = analyse(doc, ruleset)
    return _matches(found, doc, ruleset), _mentions(found)


def _matches(found: Findings, doc: Document, ruleset: CompiledRuleset) -> list[Match]:
    index = ruleset.index
    assert index is not None
    candidates: set[str] = set()
    for key, hits in found.hits.items():
        if hits and key in index.term_rules:
            candidates.update(index.term_rules[key])
    if not candidates:
        return []
    words = _WordPositions(doc)
    out = []
    for rule_id in ruleset.rules:  # file order, deterministic
        if rule_id in candidates:
            m = evaluate(ruleset.rules[rule_id], found, doc, ruleset, words)
            if m is not None:
                out.append(m)
    return out


def scan(doc: Document, ruleset: CompiledRuleset) -> Mentions:
    """Every watched place and group mentioned in title or body, whatever the rules."""
    return _mentions(analyse(doc, ruleset, with_areas=False))


def _mentions(found: Findings) -> Mentions:
    places: dict[str, PlaceRef] = {}
    groups: dict[str, None] = {}
    hits: list[TermHit] = []
    for (kind, *_), term_hits in found.hits.items():
        if kind == "place":
            hits.extend(term_hits)
        elif kind == "group":
            hits.extend(term_hits)
            groups[term_hits[0].ref] = None
    for fp in found.places:
        if fp.ref.watched:
            places.setdefault(fp.ref.id, fp.ref)
    hits.sort(key=_hit_order)
    return Mentions(tuple(places.values()), tuple(groups), tuple(hits))


def _hit_order(h: TermHit) -> tuple[int, int, int, str, str]:
    # kind and ref break ties, so two hits on one name (place and area) keep one order everywhere
    return (TEXT_FIELDS.index(h.field) if h.field in TEXT_FIELDS else -1, h.start, h.end, h.kind, h.ref)


def _holds(
    node: Node | Term, present: Callable[[tuple[str, ...]], bool], anywhere: Callable[[tuple[str, ...]], bool]
) -> bool:
    if isinstance(node, Term):
        return present(node.key)
    if node.op == "none":
        return not any(_holds(c, anywhere, anywhere) for c in node.children)
    results = (_holds(c, present, anywhere) for c in node.children)
    if node.op == "all":
        return all(results)
    if node.op == "any":
        return any(results)
    return sum(1 for r in results if r) >= node.n


class _WordPositions:
    """Word index of a character offset, title words first, for ``within``; and what every
    rule's snippet for the same document shares: the sentence bounds already found, and where the
    body starts after a leading copy of the title."""

    _WORD = re.compile(r"\w+")

    def __init__(self, doc: Document):
        self.doc = doc
        self._starts: dict[str, list[int]] = {}
        self.bounds: dict[tuple[str, int, int], tuple[int, int, bool]] = {}
        self._body_start: int | None = None

    @property
    def body_start(self) -> int:
        """The offset in the text past a leading copy of the title (0 without one)."""
        if self._body_start is None:
            self._body_start = title_copy_end(self.doc.title or "", self.doc.text or "")
        return self._body_start

    def _field(self, name: str) -> list[int]:
        if name not in self._starts:
            text = getattr(self.doc, name, "") or ""
            self._starts[name] = [m.start() for m in self._WORD.finditer(text)]
        return self._starts[name]

    def of(self, hit: TermHit) -> int:
        pos = bisect.bisect_right(self._field(hit.field), hit.start)
        return pos + (len(self._field("title")) if hit.field == "text" else 0)


def evaluate(
    rule: Rule, found: Findings, doc: Document, ruleset: CompiledRuleset, words: _WordPositions | None = None
) -> Match | None:
    def anywhere(key: tuple[str, ...]) -> bool:
        return bool(found.hits.get(key))

    positive_keys = {t.key for t in rule.positive_terms}
    positive = [h for k in positive_keys for h in found.hits.get(k, ())]
    if rule.within is None:
        if not _holds(rule.expr, anywhere, anywhere):
            return None
        used = positive
    else:
        words = words or _WordPositions(doc)
        window_hits = _hits_within(rule.expr, rule.within, positive, found, words, anywhere)
        if window_hits is None:
            return None
        used = window_hits
    used = sorted(set(used), key=_hit_order)
    return _build_match(rule, used, found, doc, ruleset, words)


def _hits_within(
    expr: Node,
    within: int,
    positive: list[TermHit],
    found: Findings,
    words: _WordPositions,
    anywhere: Callable[[tuple[str, ...]], bool],
) -> list[TermHit] | None:
    """The positive hits of the first window of ``within`` words in which ``expr`` holds, or None.
    Hits on source and language lie in every window."""
    located = [(h, words.of(h)) for h in positive if h.field in TEXT_FIELDS]
    for _, anchor in sorted(located, key=lambda x: x[1]):
        in_window = {id(h) for h, p in located if anchor <= p <= anchor + within}

        def present(key: tuple[str, ...], in_window: set[int] = in_window) -> bool:
            return any(id(h) in in_window or h.field not in TEXT_FIELDS for h in found.hits.get(key, ()))

        if _holds(expr, present, anywhere):
            return [h for h in positive if id(h) in in_window or h.field not in TEXT_FIELDS]
    return None


def _build_match(
    rule: Rule,
    hits: list[TermHit],
    found: Findings,
    doc: Document,
    ruleset: CompiledRuleset,
    words: _WordPositions | None = None,
) -> Match:
    places: dict[tuple[str, str | None], PlaceRef] = {}
    groups: dict[str, None] = {}
    used = set(hits)
    for h in hits:
        if h.kind == "place":
            p = ruleset.places[h.ref]
            places.setdefault((p.id, None), PlaceRef(p.id, p.name, p.lat, p.lon, True))
        elif h.kind == "group":
            groups[h.ref] = None
        elif h.kind == "area":
            for hit, ref in found.area_places.get(h.ref, ()):
                if hit in used:
                    places.setdefault((ref.id, ref.area), ref)
    # One entry per place: the one that says which area it satisfied, when there is one.
    by_id: dict[str, PlaceRef] = {}
    for ref in places.values():
        if ref.id not in by_id or (by_id[ref.id].area is None and ref.area is not None):
            by_id[ref.id] = ref
    # The snippet shows the sentence(s) with the hits, never the headline: hits in a leading copy
    # of the title stay evidence (offsets into the text), but the snippet is taken after it.
    if words is None:
        snippet, marks = make_snippet(doc, hits)
    else:
        snippet, marks = make_snippet(doc, hits, words.bounds, words.body_start)
    return Match(
        rule_id=rule.id,
        title=rule.title,
        severity=rule.severity,
        hits=tuple(hits),
        places=tuple(by_id.values()),
        groups=tuple(groups),
        snippet=snippet,
        marks=marks,
        notify=rule.notify,
    )
