"""Located YAML: load YAML files keeping the line and column of every node, and report
problems the way pySigma does, as ``file:line:col: message``, all of them at once.

Config, sources and rule files all go through here so an author always learns *where*.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent, NodeEvent

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Sequence

    from pydantic import ValidationError


@dataclass(frozen=True, order=True)
class Location:
    path: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True)
class LocatedError:
    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class LocatedErrors(Exception):
    """Every problem found in one or more files; ``str()`` gives one line per problem."""

    def __init__(self, errors: Sequence[LocatedError]):
        self.errors = sorted(errors, key=lambda e: e.location)
        super().__init__("\n".join(str(e) for e in self.errors))


class ErrorCollector:
    """Collects errors instead of stopping at the first, so authors fix everything in one pass."""

    def __init__(self) -> None:
        self.errors: list[LocatedError] = []

    def add(self, location: Location, message: str) -> None:
        self.errors.append(LocatedError(location, message))

    def extend(self, errors: Iterable[LocatedError]) -> None:
        self.errors.extend(errors)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        if self.errors:
            raise LocatedErrors(self.errors)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")  # round-trip nodes carry .lc positions
    yaml.allow_duplicate_keys = False
    return yaml


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file into ruamel round-trip nodes (dict/list subclasses with positions).

    ``Any``: what a YAML file holds is only known once its reader has checked it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LocatedErrors([LocatedError(Location(str(path), 1, 1), "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise LocatedErrors([LocatedError(Location(str(path), 1, 1), f"not UTF-8 text: {exc}")]) from None
    return load_yaml_text(text, str(path))


MAX_FLOW_DEPTH = 64  # nested [ ] / { }: ruamel's parser slows with the square of the nesting


def yaml_alias_errors(text: str, path: str) -> list[LocatedError]:
    """Every anchor (``&name``) and alias (``*name``) in ``text``, as located errors: for files
    that must not use them (an alias repeats a node without its text, so a kilobyte of nested
    aliases can stand for billions of nodes). Reads parser events only: nothing is built; flow
    collections nested deeper than ``MAX_FLOW_DEPTH`` are refused before the parser sees them."""
    if (too_deep := _flow_too_deep(text, path)) is not None:
        return [too_deep]
    found: list[LocatedError] = []
    try:
        for event in _yaml().parse(text):
            mark = event.start_mark
            where = Location(path, mark.line + 1, mark.column + 1)
            if isinstance(event, AliasEvent):
                found.append(LocatedError(where, f"YAML alias '*{event.anchor}' is not allowed here: "
                                                 "write the value out"))
            elif isinstance(event, NodeEvent) and event.anchor is not None:
                found.append(LocatedError(where, f"YAML anchor '&{event.anchor}' is not allowed here: "
                                                 "write each value out"))
    except (MarkedYAMLError, RecursionError):
        return found  # the syntax error itself is reported by load_yaml_text
    return found


def _flow_too_deep(text: str, path: str) -> LocatedError | None:
    """Where ``[``/``{`` nesting first passes ``MAX_FLOW_DEPTH`` (outside quoted scalars and
    comments). A quote opens a scalar only where one can start (``A'zaz`` is a plain word)."""
    depth, line, col, quote, comment = 0, 1, 0, "", False
    previous, last_sign = "\n", "\n"  # the last character, the last one that is not a space
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, comment = line + 1, 0, False
        elif comment:
            pass
        elif quote:
            if ch == quote and not (quote == '"' and previous == "\\"):
                quote = ""
        elif ch in "'\"" and last_sign in "\n[{,:-?":
            quote = ch
        elif ch == "#" and previous in " \t\n":
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                return LocatedError(Location(path, line, col), f"YAML nested more than {MAX_FLOW_DEPTH} levels deep")
        elif ch in "]}":
            depth = max(depth - 1, 0)
        previous = ch
        if ch == "\n" or not ch.isspace():
            last_sign = ch
    return None


def load_yaml_text(text: str, path: str) -> Any:
    try:
        return _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        raise LocatedErrors([LocatedError(Location(path, line, col), f"YAML syntax: {problem}")]) from None
    except RecursionError:  # the parser recurses per nesting level
        raise LocatedErrors([LocatedError(Location(path, 1, 1), "YAML nested too deeply")]) from None


def node_location(path: str, node: object, key: object = None) -> Location:
    """Where ``node`` (or its ``key``/index) starts; falls back to the node itself, then 1:1."""
    lc = getattr(node, "lc", None)
    if lc is not None:
        try:
            if key is not None and isinstance(node, CommentedMap) and key in node:
                line, col = lc.key(key)
                return Location(path, line + 1, col + 1)
            if key is not None and isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
                line, col = lc.item(key)
                return Location(path, line + 1, col + 1)
            return Location(path, lc.line + 1, lc.col + 1)
        except (KeyError, IndexError, TypeError):
            pass
    return Location(path, 1, 1)


def value_location(path: str, parent: object, key: object) -> Location:
    """Where the value of ``parent[key]`` starts (``name: Azaz``: at ``Azaz``); falls back to the key."""
    lc = getattr(parent, "lc", None)
    if lc is not None and isinstance(parent, CommentedMap):
        try:
            line, col = lc.value(key)
            return Location(path, line + 1, col + 1)
        except (KeyError, IndexError, TypeError):
            pass
    return node_location(path, parent, key)


def _child(node: object, part: int | str) -> tuple[bool, object]:
    """(True, ``node[part]``) when the YAML node holds ``part``, else (False, None)."""
    if isinstance(node, CommentedMap) and part in node:
        return True, node[part]
    if isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
        return True, node[part]
    return False, None


def locate(path: str, root: object, loc: Sequence[int | str]) -> Location:
    """Follow a pydantic-style ``loc`` tuple into the YAML tree; the deepest node found wins."""
    node, best = root, node_location(path, root)
    for part in loc:
        found, child = _child(node, part)
        if found:
            best = node_location(path, node, part)
            node = child
        elif isinstance(node, CommentedMap | CommentedSeq):
            # pydantic adds tag names (e.g. a union member) that are not in the data: skip them
            continue
        else:
            break
    return best


def pydantic_errors(
    path: str, root: object, exc: ValidationError, model: type[BaseModel] | None = None,
) -> list[LocatedError]:
    """Turn a pydantic ``ValidationError`` into located errors. Given the ``model`` validated,
    an unknown key close to a known one says which: ``unknown key 'keep_article' (did you mean
    'keep_articles'?)``."""
    out = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        where = locate(path, root, loc)
        field = ".".join(str(p) for p in loc)
        if err.get("type") == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'" if loc else "unknown key"
            close = _close_key(model, loc) if model is not None and loc else None
            if close:
                message += f" (did you mean '{close}'?)"
        else:
            text = str(err.get("msg")).removeprefix("Value error, ")
            message = f"{field}: {text}" if field else text
        out.append(LocatedError(where, message))
    return out


def _close_key(model: type[BaseModel], loc: Sequence[int | str]) -> str | None:
    """The key of the model at ``loc[:-1]`` nearest to the unknown ``loc[-1]``, if one is close."""
    here: type[BaseModel] | None = model
    for part in loc[:-1]:
        if here is None:
            return None
        if isinstance(part, int):  # an item of a list: the same model
            continue
        found = here.model_fields.get(part)
        if found is None:  # a union member's tag, or a mapping's key: look on in the same model
            continue
        here = _model_in(found.annotation)
    if here is None:
        return None
    keys = [name for name, f in here.model_fields.items() if not f.exclude]
    close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
    return close[0] if close else None


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``Model``, ``Model | None``, ``list[Model]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
