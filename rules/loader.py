"""Reading rule files: YAML with positions -> validated ``Ruleset``, every problem collected
and reported as ``path:line:col: message`` (unknown keys, wrong types, unknown or duplicate
ids with a did-you-mean, bad regexes, invalid polygons, coordinates out of range, missing
GeoJSON files). Several files load together and share place, group and area ids.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from core.located import ErrorCollector, LocatedErrors, Location, load_yaml_text, node_location
from rules.index import CompiledRuleset, compile_ruleset
from rules.model import Area, Example, Group, Node, Place, Rule, Ruleset, Term

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rules.gazetteer import Gazetteer

TOP_KEYS = ("places", "groups", "areas", "rules")
RULE_KEYS = ("id", "title", "severity", "all", "any", "none", "within", "notify", "examples", "description")
SEVERITIES = ("low", "medium", "high")
TERM_KINDS = ("keyword", "regex", "place", "group", "area", "source", "lang")
COMBINATORS = ("all", "any", "none", "at_least")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def rule_files(paths: Iterable[str | os.PathLike[str]], errors: ErrorCollector | None = None) -> list[Path]:
    """The rule files named by ``paths``: files as given, folders as their ``*.yaml``/``*.yml``."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(f for f in path.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file()))
        elif path.is_file():
            out.append(path)
        elif errors is not None:
            errors.add(Location(str(path), 1, 1), "rule file or folder not found")
    seen: set[Path] = set()
    unique = []
    for f in out:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def load_ruleset(
    paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str], *, gazetteer: Gazetteer | None = None
) -> CompiledRuleset:
    """Load and validate rule files (or folders of them) together; raises ``LocatedErrors`` with all
    problems. Without a gazetteer, ``area`` terms see only the places the rule files define."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    errors = ErrorCollector()
    files = rule_files(paths, errors)
    texts: dict[Path, str] = {}
    for f in files:
        try:
            texts[f] = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.add(Location(str(f), 1, 1), f"cannot read: {exc}")
    return load_ruleset_texts({str(f): t for f, t in texts.items()}, gazetteer=gazetteer, errors=errors)


def load_ruleset_texts(
    texts: dict[str, str], *, gazetteer: Gazetteer | None = None, errors: ErrorCollector | None = None
) -> CompiledRuleset:
    """Like ``load_ruleset`` over in-memory ``{path: yaml text}``."""
    errors = errors if errors is not None else ErrorCollector()
    builder = _Builder(errors)
    digest = hashlib.sha256()
    for path in sorted(texts):
        text = texts[path]
        # File names and contents only: a snapshot of the same files elsewhere has the same version.
        digest.update(Path(path).name.encode() + b"\0" + text.encode() + b"\0")
        try:
            data = load_yaml_text(text, path)
        except LocatedErrors as exc:
            errors.extend(exc.errors)
            continue
        builder.read_file(path, data)
    builder.resolve()
    errors.raise_if_any()
    ruleset = Ruleset(
        places=builder.places,
        groups=builder.groups,
        areas=builder.areas,
        rules=builder.rules,
        files=[Path(p) for p in sorted(texts)],
        version=digest.hexdigest()[:16],
        gazetteer=gazetteer,
    )
    return compile_ruleset(ruleset, gazetteer)


@dataclass
class _PendingArea:
    id: str
    path: str
    location: Location
    around_ref: tuple[str, Location] | None = None
    area: Area | None = None


@dataclass
class _Refs:
    items: list[tuple[str, str, Location]] = field(default_factory=list)  # kind, id, where


class _Builder:
    def __init__(self, errors: ErrorCollector):
        self.errors = errors
        self.places: dict[str, Place] = {}
        self.groups: dict[str, Group] = {}
        self.areas: dict[str, Area] = {}
        self.pending_areas: list[_PendingArea] = []
        self.rules: dict[str, Rule] = {}
        self.refs = _Refs()
        self.defined_at: dict[tuple[str, str], Location] = {}

    # -- helpers ---------------------------------------------------------------------------
    def err(self, where: Location, message: str) -> None:
        self.errors.add(where, message)

    @staticmethod
    def vloc(path: str, parent: Any, key: Any) -> Location:
        """Where the value of ``parent[key]`` starts (falls back to the key)."""
        lc = getattr(parent, "lc", None)
        if lc is not None:
            try:
                if isinstance(parent, CommentedMap):
                    line, col = lc.value(key)
                    return Location(path, line + 1, col + 1)
                if isinstance(parent, CommentedSeq):
                    line, col = lc.item(key)
                    return Location(path, line + 1, col + 1)
            except (KeyError, IndexError, TypeError):
                pass
        return node_location(path, parent, key)

    def check_keys(self, path: str, node: CommentedMap, allowed: Iterable[str], what: str) -> None:
        allowed = tuple(allowed)
        for key in node:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = (
                    f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(allowed)})"
                )
                self.err(node_location(path, node, key), f"unknown key '{key}' in {what}{hint}")

    def string(self, path: str, parent: Any, key: Any, what: str, *, required: bool = True) -> str | None:
        if not isinstance(parent, dict) or key not in parent:
            if required:
                self.err(node_location(path, parent), f"{what}: missing")
            return None
        value = parent[key]
        if not isinstance(value, str) or not value.strip():
            self.err(self.vloc(path, parent, key), f"{what}: expected a non-empty text, got {_type(value)}")
            return None
        return str(value)

    def strings(self, path: str, parent: Any, key: Any, what: str) -> list[str]:
        value = parent.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [str(value)] if value.strip() else []
        if not isinstance(value, list):
            self.err(self.vloc(path, parent, key), f"{what}: expected a list of texts, got {_type(value)}")
            return []
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str) and item.strip():
                out.append(str(item))
            else:
                self.err(
                    self.vloc(path, value, i), f"{what}[{i}]: expected a non-empty text, got {_type(item)}"
                )
        return out

    def latlon(self, path: str, parent: Any, key: Any, what: str) -> tuple[float, float] | None:
        value = parent[key]
        where = self.vloc(path, parent, key)
        if not isinstance(value, list) or len(value) != 2 or not all(_is_number(v) for v in value):
            self.err(where, f"{what}: expected [latitude, longitude], got {_short(value)}")
            return None
        lat, lon = float(value[0]), float(value[1])
        ok = True
        if not -90 <= lat <= 90:
            self.err(where, f"{what}: latitude {lat} out of range (-90..90)")
            ok = False
        if not -180 <= lon <= 180:
            self.err(where, f"{what}: longitude {lon} out of range (-180..180)")
            ok = False
        return (lat, lon) if ok else None

    def new_id(self, kind: str, ident: Any, path: str, parent: Any, key: Any, *, value: bool = False) -> bool:
        where = self.vloc(path, parent, key) if value else node_location(path, parent, key)
        if not isinstance(ident, str) or not _ID.match(ident):
            self.err(where, f"{kind} id {ident!r}: use letters, digits, '-', '_' or '.'")
            return False
        first = self.defined_at.get((kind, ident))
        if first is not None:
            self.err(where, f"duplicate {kind} id '{ident}' (first defined at {first})")
            return False
        self.defined_at[(kind, ident)] = where
        return True

    def mapping(self, path: str, parent: Any, key: Any, what: str) -> CommentedMap | None:
        value = parent[key]
        if value is None:
            return None
        if not isinstance(value, dict):
            self.err(self.vloc(path, parent, key), f"{what}: expected a mapping, got {_type(value)}")
            return None
        return value

    # -- the file ----------------------------------------------------------------------------
    def read_file(self, path: str, data: Any) -> None:
        if data is None:
            return
        if not isinstance(data, dict):
            self.err(node_location(path, data), f"a rule file is a mapping of {', '.join(TOP_KEYS)}")
            return
        self.check_keys(path, data, TOP_KEYS, "the rule file")
        if "places" in data and (places := self.mapping(path, data, "places", "places")):
            for pid in places:
                self.read_place(path, places, pid)
        if "groups" in data and (groups := self.mapping(path, data, "groups", "groups")):
            for gid in groups:
                self.read_group(path, groups, gid)
        if "areas" in data and (areas := self.mapping(path, data, "areas", "areas")):
            for aid in areas:
                self.read_area(path, areas, aid)
        if "rules" in data and data["rules"] is not None:
            rules = data["rules"]
            if not isinstance(rules, list):
                self.err(
                    self.vloc(path, data, "rules"), f"rules: expected a list of rules, got {_type(rules)}"
                )
            else:
                for i in range(len(rules)):
                    self.read_rule(path, rules, i)

    def read_place(self, path: str, places: CommentedMap, pid: Any) -> None:
        if not self.new_id("place", pid, path, places, pid):
            return
        node = places[pid]
        what = f"place '{pid}'"
        if not isinstance(node, dict):
            self.err(self.vloc(path, places, pid), f"{what}: expected a mapping with name, aliases, at")
            return
        self.check_keys(path, node, ("name", "aliases", "at"), what)
        name = self.string(path, node, "name", f"{what}: name")
        aliases = self.strings(path, node, "aliases", f"{what}: aliases")
        at = None
        if "at" not in node:
            self.err(node_location(path, places, pid), f"{what}: missing 'at: [latitude, longitude]'")
        else:
            at = self.latlon(path, node, "at", f"{what}: at")
        if name and at:
            self.places[pid] = Place(
                pid, name, tuple(aliases), at[0], at[1], node_location(path, places, pid)
            )

    def read_group(self, path: str, groups: CommentedMap, gid: Any) -> None:
        if not self.new_id("group", gid, path, groups, gid):
            return
        node = groups[gid]
        what = f"group '{gid}'"
        if not isinstance(node, dict):
            self.err(self.vloc(path, groups, gid), f"{what}: expected a mapping with name, aliases")
            return
        self.check_keys(path, node, ("name", "aliases"), what)
        name = self.string(path, node, "name", f"{what}: name")
        aliases = self.strings(path, node, "aliases", f"{what}: aliases")
        if name:
            self.groups[gid] = Group(gid, name, tuple(aliases), node_location(path, groups, gid))

    def read_area(self, path: str, areas: CommentedMap, aid: Any) -> None:
        if not self.new_id("area", aid, path, areas, aid):
            return
        node = areas[aid]
        what = f"area '{aid}'"
        where = node_location(path, areas, aid)
        if not isinstance(node, dict):
            self.err(
                self.vloc(path, areas, aid),
                f"{what}: expected a mapping with around+radius_km, polygon or geojson",
            )
            return
        self.check_keys(path, node, ("around", "radius_km", "polygon", "geojson"), what)
        shapes = [k for k in ("around", "polygon", "geojson") if k in node]
        if len(shapes) != 1:
            self.err(where, f"{what}: give exactly one of around (+ radius_km), polygon, geojson")
            return
        pending = _PendingArea(str(aid), path, where)
        if shapes[0] == "around":
            radius = node.get("radius_km")
            if not _is_number(radius) or float(radius) <= 0:
                at = self.vloc(path, node, "radius_km") if "radius_km" in node else where
                self.err(
                    at, f"{what}: radius_km: expected a positive number of kilometres, got {_short(radius)}"
                )
                # Still check the centre: every error at once, not one per run.
                if isinstance(node["around"], str):
                    self.refs.items.append(("place", str(node["around"]), self.vloc(path, node, "around")))
                else:
                    self.latlon(path, node, "around", f"{what}: around")
                return
            around = node["around"]
            if isinstance(around, str):
                pending.around_ref = (str(around), self.vloc(path, node, "around"))
                pending.area = Area(
                    str(aid), 0.0, 0.0, radius_km=float(radius), around=str(around), location=where
                )
            else:
                at = self.latlon(path, node, "around", f"{what}: around")
                if at is None:
                    return
                pending.area = Area(str(aid), at[0], at[1], radius_km=float(radius), location=where)
        else:
            if "radius_km" in node:
                self.err(node_location(path, node, "radius_km"), f"{what}: radius_km goes with around only")
            geometry = (
                self.polygon(path, node, what) if shapes[0] == "polygon" else self.geojson(path, node, what)
            )
            if geometry is None:
                return
            centre = geometry.centroid
            min_lon, min_lat, max_lon, max_lat = geometry.bounds
            pending.area = Area(
                str(aid),
                centre.y,
                centre.x,
                polygon=geometry,
                bounds=(min_lat, min_lon, max_lat, max_lon),
                location=where,
            )
        self.pending_areas.append(pending)

    def polygon(self, path: str, node: CommentedMap, what: str) -> Any:
        from shapely import Polygon
        from shapely.validation import explain_validity

        points = node["polygon"]
        where = self.vloc(path, node, "polygon")
        if not isinstance(points, list) or len(points) < 3:
            self.err(where, f"{what}: polygon: expected at least 3 [latitude, longitude] points")
            return None
        coords = []
        for i in range(len(points)):
            at = self.latlon(path, points, i, f"{what}: polygon[{i}]")
            if at is None:
                return None
            coords.append((at[1], at[0]))
        poly = Polygon(coords)
        if not poly.is_valid or poly.area == 0:
            self.err(where, f"{what}: invalid polygon: {explain_validity(poly)}")
            return None
        return poly

    def geojson(self, path: str, node: CommentedMap, what: str) -> Any:
        from shapely.geometry import shape
        from shapely.validation import explain_validity

        ref = self.string(path, node, "geojson", f"{what}: geojson")
        if ref is None:
            return None
        where = self.vloc(path, node, "geojson")
        file = Path(path).parent / ref
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.err(where, f"{what}: geojson file not found: {file}")
            return None
        except (OSError, ValueError) as exc:
            self.err(where, f"{what}: cannot read GeoJSON {file}: {exc}")
            return None
        try:
            if data.get("type") == "FeatureCollection":
                from shapely import union_all

                geometry = union_all([shape(f["geometry"]) for f in data["features"]])
            elif data.get("type") == "Feature":
                geometry = shape(data["geometry"])
            else:
                geometry = shape(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.err(where, f"{what}: not a GeoJSON geometry: {exc}")
            return None
        if geometry.geom_type not in ("Polygon", "MultiPolygon") or not geometry.is_valid:
            self.err(
                where, f"{what}: {file.name} must hold a valid (Multi)Polygon: {explain_validity(geometry)}"
            )
            return None
        return geometry

    def read_rule(self, path: str, rules: CommentedSeq, i: int) -> None:
        node = rules[i]
        where = node_location(path, rules, i)
        if not isinstance(node, dict):
            self.err(
                self.vloc(path, rules, i), f"rules[{i}]: expected a mapping with id, title, all/any/none"
            )
            return
        rid = node.get("id")
        what = f"rule '{rid}'" if isinstance(rid, str) else f"rules[{i}]"
        self.check_keys(path, node, RULE_KEYS, what)
        ok = True
        if "id" not in node:
            self.err(where, f"{what}: missing id")
            ok = False
        elif not self.new_id("rule", rid, path, node, "id", value=True):
            ok = False
        title = self.string(path, node, "title", f"{what}: title")
        severity = node.get("severity", "medium")
        if severity not in SEVERITIES:
            self.err(
                self.vloc(path, node, "severity"), f"{what}: severity must be one of {', '.join(SEVERITIES)}"
            )
            ok = False
        within = node.get("within")
        if within is not None and (not isinstance(within, int) or isinstance(within, bool) or within < 1):
            self.err(self.vloc(path, node, "within"), f"{what}: within: expected a positive number of words")
            ok = False
        notify = self.strings(path, node, "notify", f"{what}: notify")
        parts = []
        for op in ("all", "any", "none"):
            if op in node:
                child = self.combinator(path, node, op, what)
                if child is None:
                    ok = False
                else:
                    parts.append(child)
        if not any(k in node for k in ("all", "any")):
            self.err(where, f"{what}: needs 'all' or 'any' (a rule must look for something)")
            ok = False
        examples = self.examples(path, node, what)
        if ok and title and isinstance(rid, str):
            expr = Node("all", tuple(parts))
            if not expr.terms(positive_only=True):
                self.err(where, f"{what}: has no positive term (only 'none')")
                return
            self.rules[rid] = Rule(
                rid, title, str(severity), expr, within, tuple(notify), tuple(examples), path, where
            )

    def examples(self, path: str, node: CommentedMap, what: str) -> list[Example]:
        if "examples" not in node:
            return []
        ex = self.mapping(path, node, "examples", f"{what}: examples")
        if ex is None:
            return []
        self.check_keys(path, ex, ("match", "no_match"), f"{what}: examples")
        out = []
        for key, expect in (("match", True), ("no_match", False)):
            if key not in ex:
                continue
            texts = ex[key]
            if not isinstance(texts, list):
                texts_loc = self.vloc(path, ex, key)
                self.err(texts_loc, f"{what}: examples.{key}: expected a list of texts")
                continue
            for j, text in enumerate(texts):
                if isinstance(text, str):
                    out.append(Example(str(text), expect, self.vloc(path, texts, j)))
                else:
                    self.err(self.vloc(path, texts, j), f"{what}: examples.{key}[{j}]: expected a text")
        return out

    def combinator(self, path: str, parent: Any, key: Any, what: str) -> Node | None:
        op = key if isinstance(key, str) else "?"
        items = parent[key]
        where = self.vloc(path, parent, key)
        if not isinstance(items, list) or not items:
            self.err(where, f"{what}: {op}: expected a non-empty list of terms")
            return None
        children = []
        ok = True
        for j in range(len(items)):
            child = self.term(path, items, j, what)
            if child is None:
                ok = False
            else:
                children.append(child)
        return Node(op, tuple(children)) if ok else None  # type: ignore[arg-type]

    def term(self, path: str, items: CommentedSeq, j: int, what: str) -> Node | Term | None:
        node = items[j]
        where = self.vloc(path, items, j)
        if not isinstance(node, dict) or not node:
            hint = f" (write '- keyword: {node}')" if isinstance(node, str) else ""
            self.err(where, f"{what}: a term is a mapping such as '- place: azaz', got {_short(node)}{hint}")
            return None
        kinds = [k for k in node if k in TERM_KINDS or k in COMBINATORS]
        self.check_keys(path, node, (*TERM_KINDS, *COMBINATORS, "case"), f"{what}: term")
        if len(kinds) != 1:
            self.err(where, f"{what}: a term needs exactly one of {', '.join(TERM_KINDS + COMBINATORS)}")
            return None
        kind = kinds[0]
        if "case" in node and kind != "keyword":
            self.err(node_location(path, node, "case"), f"{what}: 'case' applies to keyword terms only")
        if kind in ("all", "any", "none"):
            return self.combinator(path, node, kind, what)
        if kind == "at_least":
            spec = self.mapping(path, node, "at_least", f"{what}: at_least")
            if spec is None:
                return None
            self.check_keys(path, spec, ("n", "of"), f"{what}: at_least")
            n = spec.get("n")
            if "of" not in spec:
                self.err(self.vloc(path, node, "at_least"), f"{what}: at_least: missing 'of'")
                return None
            inner = self.combinator(path, spec, "of", f"{what}: at_least")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                self.err(
                    self.vloc(path, spec, "n") if "n" in spec else where,
                    f"{what}: at_least.n: expected a positive number",
                )
                return None
            if inner is None:
                return None
            if n > len(inner.children):
                self.err(
                    self.vloc(path, spec, "n"),
                    f"{what}: at_least.n is {n} but 'of' has {len(inner.children)} terms",
                )
                return None
            return Node("at_least", inner.children, n)
        value = self.string(path, node, kind, f"{what}: {kind}")
        if value is None:
            return None
        vwhere = self.vloc(path, node, kind)
        case_sensitive = False
        if kind == "keyword" and "case" in node:
            case = node["case"]
            if case not in ("sensitive", "insensitive"):
                self.err(
                    self.vloc(path, node, "case"), f"{what}: case: expected 'sensitive' or 'insensitive'"
                )
                return None
            case_sensitive = case == "sensitive"
        if kind == "regex":
            problem = regex_problem(value)
            if problem:
                self.err(vwhere, f"{what}: bad regex {value!r}: {problem}")
                return None
        if kind in ("place", "group", "area"):
            self.refs.items.append((kind, value, vwhere))
        return Term(kind, value, case_sensitive, vwhere)

    # -- cross-file references -------------------------------------------------------------
    def resolve(self) -> None:
        for pending in self.pending_areas:
            area = pending.area
            assert area is not None
            if pending.around_ref is not None:
                ref, where = pending.around_ref
                place = self.places.get(ref)
                if place is None:
                    self.unknown("place", ref, where, self._defined("place"), "around")
                    continue
                area = Area(
                    area.id,
                    place.lat,
                    place.lon,
                    radius_km=area.radius_km,
                    around=ref,
                    location=area.location,
                )
            self.areas[area.id] = area
        # Ids whose definition had errors still count as defined: one error per mistake.
        defined = {k: self._defined(k) for k in ("place", "group", "area")}
        for kind, ident, where in self.refs.items:
            if ident not in defined[kind]:
                self.unknown(kind, ident, where, defined[kind], kind)

    def _defined(self, kind: str) -> list[str]:
        return [i for (k, i) in self.defined_at if k == kind]

    def unknown(self, kind: str, ident: str, where: Location, pool: list[str], key: str) -> None:
        close = difflib.get_close_matches(ident, list(pool), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        self.err(where, f"{key}: unknown {kind} id '{ident}'{hint}")


_RE2_OPTIONS = None


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid RE2 expression, or None."""
    global _RE2_OPTIONS
    import re2

    if _RE2_OPTIONS is None:
        _RE2_OPTIONS = re2.Options()
        _RE2_OPTIONS.log_errors = False  # we report it ourselves, located
    try:
        re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        msg = exc.args[0] if exc.args else str(exc)
        return msg.decode() if isinstance(msg, bytes) else str(msg)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text {value!r}" if value.strip() else "empty text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
