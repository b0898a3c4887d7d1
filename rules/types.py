"""Typed objects at the rule engine's seams: what it reads (any ``Document``) and what it
returns (``Match`` with its evidence, ``Mentions`` for place/group subscriptions), and the
vocabularies of the rule language, each defined once: ``Severity``, ``TermKind``,
``Combinator``, ``FactKind``, ``TextField``/``HitField`` and the index's ``EntryKind``.

Everything here is plain data: JSON-round-trippable so a match can be stored as evidence
and rendered later by the alert formatter without the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, get_args


class Severity(StrEnum):
    """How urgent a rule's matches are; stored and shown as its value ("high")."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """Higher is more urgent: the order alerts are chosen and sorted by."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3}

FactKind = Literal["source", "lang"]
"""Terms on a fact about the document (where it comes from, its language), matched whole."""
FACT_KINDS: tuple[FactKind, ...] = get_args(FactKind)

TermKind = Literal["keyword", "regex", "place", "group", "area", FactKind]
"""A leaf of a rule: what a ``Term`` looks for and what a ``TermHit`` found."""
TERM_KINDS: tuple[TermKind, ...] = get_args(TermKind)

Combinator = Literal["all", "any", "none", "at_least"]
"""How a ``Node`` combines its children."""
COMBINATORS: tuple[Combinator, ...] = get_args(Combinator)

TextField = Literal["title", "text"]
"""The document fields names, keywords and regexes are found in, in reading order."""
TEXT_FIELDS: tuple[TextField, ...] = get_args(TextField)

HitField = TextField | FactKind
"""Where a ``TermHit`` was found: a text field, or the fact a ``source``/``lang`` term matched whole."""

EntryKind = Literal["place", "group", "keyword", "gaz"]
"""What a key of the index's automaton stands for: a watched place or group, a keyword, or
gazetteer names."""


class Document(Protocol):
    """What the engine matches: title and body text only, plus two facts about the source."""

    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def language(self) -> str | None: ...
    @property
    def source(self) -> str | None: ...


@dataclass(frozen=True)
class Text:
    """A bare document, for rule examples, `lookout rules test` and tests."""

    title: str = ""
    text: str = ""
    language: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class TermHit:
    """One term of a rule found in the document."""

    kind: TermKind
    ref: str  # the term as written: the keyword, the pattern, the place/group/area id, ...
    found: str  # the text as it stands in the document
    field: HitField
    start: int  # character offsets into that field (0, 0 for source and lang)
    end: int


@dataclass(frozen=True)
class PlaceRef:
    """A place the document mentions, resolved to coordinates."""

    id: str  # rule-file place id, or "geonames:<id>" for a gazetteer place
    name: str
    lat: float
    lon: float
    watched: bool  # defined in a rule file (as opposed to the gazetteer)
    area: str | None = None  # the area id this place satisfied, for `area` terms
    distance_km: float | None = None  # distance to that area's centre / reference place


@dataclass(frozen=True)
class Match:
    """A rule that fired on a document, with the evidence an alert shows."""

    rule_id: str
    title: str
    severity: Severity
    hits: tuple[TermHit, ...]
    places: tuple[PlaceRef, ...] = ()
    groups: tuple[str, ...] = ()  # group ids found
    snippet: str = ""  # plain text: the sentence, or ±120 characters, around the hits
    marks: tuple[tuple[int, int], ...] = ()  # spans of ``snippet`` to highlight
    notify: tuple[str, ...] = ()  # chats/channels that receive every hit of this rule

    def to_dict(self) -> dict[str, Any]:
        """The match as JSON-ready data (written out: ``dataclasses.asdict`` recursed ~140 calls
        per match, a visible share of a crawl's per-article CPU)."""
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": str(self.severity),  # the plain value: "high"
            "hits": [
                {"kind": h.kind, "ref": h.ref, "found": h.found, "field": h.field, "start": h.start, "end": h.end}
                for h in self.hits
            ],
            "places": [
                {"id": p.id, "name": p.name, "lat": p.lat, "lon": p.lon, "watched": p.watched,
                 "area": p.area, "distance_km": p.distance_km}
                for p in self.places
            ],
            "groups": list(self.groups),
            "snippet": self.snippet,
            "marks": [list(m) for m in self.marks],
            "notify": list(self.notify),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | dict[str, Any]) -> Match:
        data = json.loads(raw) if isinstance(raw, str) else dict(raw)
        data["severity"] = Severity(data["severity"])
        data["hits"] = tuple(TermHit(**h) for h in data.get("hits", ()))
        data["places"] = tuple(PlaceRef(**p) for p in data.get("places", ()))
        data["groups"] = tuple(data.get("groups", ()))
        data["marks"] = tuple(tuple(m) for m in data.get("marks", ()))
        data["notify"] = tuple(data.get("notify", ()))
        return cls(**data)


@dataclass(frozen=True)
class Mentions:
    """Every watched place and group a document mentions (title or body), whatever the rules.

    Place and group subscriptions are served from this, rule subscriptions from ``Match``.
    """

    places: tuple[PlaceRef, ...] = ()
    groups: tuple[str, ...] = ()
    hits: tuple[TermHit, ...] = field(default=())


@dataclass(frozen=True)
class Analysis:
    """What the engine found in one document: the rules that fired and every watched place and
    group it mentions. Pure data, computed wherever the text is (the crawl's extraction
    workers), then carried to the transaction that stores the article."""

    matches: tuple[Match, ...]
    mentions: Mentions
