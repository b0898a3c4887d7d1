"""Checked reads from rule-file YAML, shared by the loader (``rules.loader``), its area reader
(``rules.areas``) and its term reader (``rules.terms``): typed values out of ruamel nodes with
every problem recorded at its position (``path:line:col``, did-you-mean for unknown keys), the
ids defined so far, and the references to places, groups and areas, checked once every file
is read.

YAML nodes arrive unchecked (``YamlMapping``, ``YamlList``; keys are any YAML scalar): what
they hold is known only after the checks here.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard

from core.located import node_location, value_location

if TYPE_CHECKING:
    from collections.abc import Iterable

    from core.located import ErrorCollector, Location

YamlMapping = dict[Any, Any]
"""A YAML mapping as ruamel reads it (a ``CommentedMap``, positions in ``.lc``), not yet checked."""
YamlList = list[Any]
"""A YAML sequence as ruamel reads it (a ``CommentedSeq``), not yet checked."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class Reference(NamedTuple):
    """A place, group or area id used somewhere, to check once every file is read."""

    kind: str  # place | group | area
    id: str
    location: Location


class YamlReader:
    """Reads values out of YAML nodes, collecting every problem instead of stopping at the first."""

    def __init__(self, errors: ErrorCollector):
        self.errors = errors
        self.defined_at: dict[tuple[str, str], Location] = {}  # (kind, id) -> where first defined
        self.references: list[Reference] = []

    def err(self, where: Location, message: str) -> None:
        self.errors.add(where, message)

    def check_keys(self, path: str, node: YamlMapping, allowed: Iterable[str], what: str) -> None:
        allowed = tuple(allowed)
        for key in node:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = (
                    f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(allowed)})"
                )
                self.err(node_location(path, node, key), f"unknown key '{key}' in {what}{hint}")

    def string(self, path: str, parent: object, key: object, what: str, *, required: bool = True) -> str | None:
        if not isinstance(parent, dict) or key not in parent:
            if required:
                self.err(node_location(path, parent), f"{what}: missing")
            return None
        value = parent[key]
        if not isinstance(value, str) or not value.strip():
            self.err(value_location(path, parent, key), f"{what}: expected a non-empty text, got {describe(value)}")
            return None
        return str(value)

    def strings(self, path: str, parent: YamlMapping, key: object, what: str) -> list[str]:
        value = parent.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [str(value)] if value.strip() else []
        if not isinstance(value, list):
            self.err(value_location(path, parent, key), f"{what}: expected a list of texts, got {describe(value)}")
            return []
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str) and item.strip():
                out.append(str(item))
            else:
                self.err(
                    value_location(path, value, i), f"{what}[{i}]: expected a non-empty text, got {describe(item)}"
                )
        return out

    def latlon(self, path: str, parent: YamlMapping | YamlList, key: Any, what: str) -> tuple[float, float] | None:
        """``parent[key]`` as [latitude, longitude] in range (``key``: a mapping's key or a list's index)."""
        value = parent[key]
        where = value_location(path, parent, key)
        if not isinstance(value, list) or len(value) != 2 or not all(is_number(v) for v in value):
            self.err(where, f"{what}: expected [latitude, longitude], got {short(value)}")
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

    def mapping(self, path: str, parent: YamlMapping, key: object, what: str) -> YamlMapping | None:
        value = parent[key]
        if value is None:
            return None
        if not isinstance(value, dict):
            self.err(value_location(path, parent, key), f"{what}: expected a mapping, got {describe(value)}")
            return None
        return value

    # -- ids and references ------------------------------------------------------------------
    def new_id(
        self, kind: str, ident: object, path: str, parent: YamlMapping, key: object, *, value: bool = False
    ) -> str | None:
        """``ident`` when it is a well-formed id not yet defined for ``kind``; else None, the
        problem recorded at the key (or, with ``value``, at the value of ``parent[key]``)."""
        where = value_location(path, parent, key) if value else node_location(path, parent, key)
        if not isinstance(ident, str) or not _ID.match(ident):
            self.err(where, f"{kind} id {ident!r}: use letters, digits, '-', '_' or '.'")
            return None
        first = self.defined_at.get((kind, ident))
        if first is not None:
            self.err(where, f"duplicate {kind} id '{ident}' (first defined at {first})")
            return None
        self.defined_at[(kind, ident)] = where
        return ident

    def refer(self, kind: str, ident: str, where: Location) -> None:
        self.references.append(Reference(kind, ident, where))

    def defined(self, kind: str) -> list[str]:
        """Every id of ``kind`` defined so far, those whose definition had errors included."""
        return [i for (k, i) in self.defined_at if k == kind]

    def check_references(self) -> None:
        # Ids whose definition had errors still count as defined: one error per mistake.
        defined = {k: self.defined(k) for k in ("place", "group", "area")}
        for kind, ident, where in self.references:
            if ident not in defined[kind]:
                self.unknown(kind, ident, where, defined[kind], kind)

    def unknown(self, kind: str, ident: str, where: Location, pool: list[str], key: str) -> None:
        close = difflib.get_close_matches(ident, list(pool), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        self.err(where, f"{key}: unknown {kind} id '{ident}'{hint}")


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def describe(value: object) -> str:
    """What a YAML value is, for an error message: "a list", "text 'x'", "a number (3)"."""
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


def short(value: object) -> str:
    """``value`` as written, cut at 60 characters, for an error message."""
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
