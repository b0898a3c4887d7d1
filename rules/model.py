"""The loaded rule set: places, groups, areas and rules as typed objects, plus name lookup
(``resolve``/``suggest``) for bot commands such as ``/watch Azaz``.

Built by ``rules.loader.load_ruleset`` (which compiles it into a ``rules.index.CompiledRuleset``);
matched by ``rules.engine``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from shapely import Point

from rules.fold import fold
from rules.types import FACT_KINDS, Combinator, Severity, TermKind

if TYPE_CHECKING:
    from pathlib import Path

    from shapely import MultiPolygon, Polygon

    from core.located import Location
    from rules.gazetteer import Gazetteer

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Place:
    id: str
    name: str
    aliases: tuple[str, ...]
    lat: float
    lon: float
    location: Location | None = field(default=None, compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    aliases: tuple[str, ...]
    location: Location | None = field(default=None, compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Area:
    """A circle around a point (``around`` + ``radius_km``) or a polygon ([lat, lon] points / GeoJSON)."""

    id: str
    lat: float  # centre: the circle's centre or the polygon's centroid
    lon: float
    radius_km: float | None = None
    around: str | None = None  # the place id the circle is drawn around, if any
    polygon: Polygon | MultiPolygon | None = field(default=None, compare=False)  # in (lon, lat) order
    bounds: tuple[float, float, float, float] | None = None  # min_lat, min_lon, max_lat, max_lon
    location: Location | None = field(default=None, compare=False)

    def contains(self, lat: float, lon: float) -> bool:
        if self.radius_km is not None:
            return haversine_km(self.lat, self.lon, lat, lon) <= self.radius_km
        if self.bounds is not None:
            min_lat, min_lon, max_lat, max_lon = self.bounds
            if not (min_lat <= lat <= max_lat and min_lon <= lon <= max_lon):
                return False
        if self.polygon is None:
            raise ValueError(f"area '{self.id}' has neither a radius nor a polygon")
        return bool(self.polygon.covers(Point(lon, lat)))

    def distance_km(self, lat: float, lon: float) -> float:
        return haversine_km(self.lat, self.lon, lat, lon)


@dataclass(frozen=True)
class Term:
    """A leaf of a rule: a keyword, a regex, a place/group/area id, or a source or language."""

    kind: TermKind
    value: str
    case_sensitive: bool = False
    location: Location | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, ...]:
        """What the engine indexes this term under (terms written differently but equal share a key)."""
        if self.kind == "keyword":
            return ("keyword", fold(self.value, casefold=not self.case_sensitive), str(self.case_sensitive))
        if self.kind in FACT_KINDS:
            return (self.kind, self.value.casefold())
        return (self.kind, self.value)


@dataclass(frozen=True)
class Node:
    """``all`` / ``any`` / ``none`` / ``at_least`` over terms and nodes."""

    op: Combinator
    children: tuple[Node | Term, ...]
    n: int = 1  # for at_least

    def terms(self, *, positive_only: bool = False) -> list[Term]:
        out: list[Term] = []
        for child in self.children:
            if isinstance(child, Term):
                if not (positive_only and self.op == "none"):
                    out.append(child)
            elif not (positive_only and self.op == "none"):
                out.extend(child.terms(positive_only=positive_only))
        return out


@dataclass(frozen=True)
class Example:
    text: str
    expect_match: bool
    location: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: Severity
    expr: Node  # the top level: all of its all/any/none parts
    within: int | None = None  # words
    notify: tuple[str, ...] = ()
    examples: tuple[Example, ...] = ()
    path: str = ""
    location: Location | None = field(default=None, compare=False)

    @property
    def positive_terms(self) -> list[Term]:
        return self.expr.terms(positive_only=True)


@dataclass(frozen=True)
class Resolved:
    kind: Literal["place", "group", "rule"]
    id: str
    name: str


@dataclass
class Ruleset:
    places: dict[str, Place]
    groups: dict[str, Group]
    areas: dict[str, Area]
    rules: dict[str, Rule]
    files: list[Path]
    version: str  # sha256 over the files' contents: equal versions, equal rules
    gazetteer: Gazetteer | None = None
    _names: dict[str, Resolved] | None = field(default=None, repr=False)

    def _lookup(self) -> dict[str, Resolved]:
        if self._names is None:
            names: dict[str, Resolved] = {}
            # Later kinds do not overwrite earlier ones: places, then groups, then rules.
            for place in self.places.values():
                for n in (place.id, *place.names):
                    names.setdefault(fold(n), Resolved("place", place.id, place.name))
            for group in self.groups.values():
                for n in (group.id, *group.names):
                    names.setdefault(fold(n), Resolved("group", group.id, group.name))
            for rule in self.rules.values():
                names.setdefault(fold(rule.id), Resolved("rule", rule.id, rule.title))
            self._names = names
        return self._names

    def resolve(self, query: str) -> Resolved | None:
        """A place, group or rule by id, name or alias, folded as matching folds text."""
        return self._lookup().get(fold(query.strip().lstrip("#")))

    def suggest(self, query: str, n: int = 3) -> list[str]:
        """Did-you-mean: the closest ids, names and aliases to an unknown ``query``."""
        lookup = self._lookup()
        found = difflib.get_close_matches(fold(query.strip()), list(lookup), n=n * 3, cutoff=0.6)
        out: list[str] = []
        for key in found:
            label = lookup[key].id
            if label not in out:
                out.append(label)
        return out[:n]

    def summary(self) -> str:
        return (
            f"{len(self.files)} file(s), {len(self.places)} places, {len(self.groups)} groups, "
            f"{len(self.areas)} areas, {len(self.rules)} rules"
        )
