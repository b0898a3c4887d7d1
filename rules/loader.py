"""Reading rule files: YAML with positions -> validated, compiled ruleset, every problem
collected and reported as ``path:line:col: message`` (unknown keys, wrong types, unknown or
duplicate ids with a did-you-mean, bad regexes, invalid polygons, coordinates out of range,
missing GeoJSON files). Several files load together and share place, group and area ids.

This module owns finding the files, the file layout (places, groups, areas, rules), places,
groups, rules and their examples; areas are read by ``rules.areas``, rule expressions by
``rules.terms``, both through the checked reads of ``rules.yaml_reader``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from core.located import (
    ErrorCollector,
    LocatedErrors,
    Location,
    load_yaml_text,
    node_location,
    value_location,
    yaml_alias_errors,
)
from rules.areas import PendingArea, finish_areas, read_area
from rules.index import CompiledRuleset, compile_ruleset
from rules.model import Area, Example, Group, Node, Place, Rule, Ruleset
from rules.terms import read_combinator
from rules.types import Severity
from rules.yaml_reader import YamlReader, describe

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rules.gazetteer import Gazetteer
    from rules.yaml_reader import YamlList, YamlMapping

TOP_KEYS = ("places", "groups", "areas", "rules")
RULE_KEYS = ("id", "title", "severity", "all", "any", "none", "within", "notify", "examples", "description")
SEVERITIES = tuple(s.value for s in Severity)
DEFAULT_SEVERITY = Severity.MEDIUM
MAX_RULE_FILE_BYTES = 1024 * 1024  # a rule file this big is a mistake (or an attack), not a rule set


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
    reader = RuleFileReader(errors)
    digest = hashlib.sha256()
    for path in sorted(texts):
        text = texts[path]
        # File names and contents only: a snapshot of the same files elsewhere has the same version.
        digest.update(Path(path).name.encode() + b"\0" + text.encode() + b"\0")
        if len(text.encode("utf-8")) > MAX_RULE_FILE_BYTES:
            errors.add(Location(path, 1, 1), f"rule file over {MAX_RULE_FILE_BYTES // 1024} KB: split it into "
                                             "several files")
            continue
        # Refused before the file is built: nested aliases can make a small file a huge tree.
        if refused := yaml_alias_errors(text, path):
            errors.extend(refused)
            continue
        try:
            data = load_yaml_text(text, path)
        except LocatedErrors as exc:
            errors.extend(exc.errors)
            continue
        reader.read_file(path, data)
    reader.finish()
    errors.raise_if_any()
    ruleset = Ruleset(
        places=reader.places,
        groups=reader.groups,
        areas=reader.areas,
        rules=reader.rules,
        files=[Path(p) for p in sorted(texts)],
        version=digest.hexdigest()[:16],
        gazetteer=gazetteer,
    )
    return compile_ruleset(ruleset, gazetteer)


class RuleFileReader(YamlReader):
    """Reads rule files one after the other into places, groups, areas and rules; ``finish``
    then settles what refers across files (circles around a place, ids used by terms)."""

    def __init__(self, errors: ErrorCollector):
        super().__init__(errors)
        self.places: dict[str, Place] = {}
        self.groups: dict[str, Group] = {}
        self.pending_areas: list[PendingArea] = []
        self.areas: dict[str, Area] = {}  # filled by finish()
        self.rules: dict[str, Rule] = {}

    def read_file(self, path: str, data: object) -> None:
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
                pending = read_area(self, path, areas, aid)
                if pending is not None:
                    self.pending_areas.append(pending)
        if "rules" in data and data["rules"] is not None:
            rules = data["rules"]
            if not isinstance(rules, list):
                self.err(value_location(path, data, "rules"), f"rules: expected a list of rules, got {describe(rules)}")
            else:
                for i in range(len(rules)):
                    self.read_rule(path, rules, i)

    def read_place(self, path: str, places: YamlMapping, key: object) -> None:
        pid = self.new_id("place", key, path, places, key)
        if pid is None:
            return
        node = places[pid]
        what = f"place '{pid}'"
        if not isinstance(node, dict):
            self.err(value_location(path, places, pid), f"{what}: expected a mapping with name, aliases, at")
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
            self.places[pid] = Place(pid, name, tuple(aliases), at[0], at[1], node_location(path, places, pid))

    def read_group(self, path: str, groups: YamlMapping, key: object) -> None:
        gid = self.new_id("group", key, path, groups, key)
        if gid is None:
            return
        node = groups[gid]
        what = f"group '{gid}'"
        if not isinstance(node, dict):
            self.err(value_location(path, groups, gid), f"{what}: expected a mapping with name, aliases")
            return
        self.check_keys(path, node, ("name", "aliases"), what)
        name = self.string(path, node, "name", f"{what}: name")
        aliases = self.strings(path, node, "aliases", f"{what}: aliases")
        if name:
            self.groups[gid] = Group(gid, name, tuple(aliases), node_location(path, groups, gid))

    def read_rule(self, path: str, rules: YamlList, i: int) -> None:
        node = rules[i]
        where = node_location(path, rules, i)
        if not isinstance(node, dict):
            self.err(value_location(path, rules, i), f"rules[{i}]: expected a mapping with id, title, all/any/none")
            return
        rid = node.get("id")
        what = f"rule '{rid}'" if isinstance(rid, str) else f"rules[{i}]"
        self.check_keys(path, node, RULE_KEYS, what)
        rule_id = None
        if "id" not in node:
            self.err(where, f"{what}: missing id")
        else:
            rule_id = self.new_id("rule", rid, path, node, "id", value=True)
        ok = rule_id is not None
        title = self.string(path, node, "title", f"{what}: title")
        severity = node.get("severity", DEFAULT_SEVERITY)
        if severity not in SEVERITIES:
            self.err(
                value_location(path, node, "severity"), f"{what}: severity must be one of {', '.join(SEVERITIES)}"
            )
            ok = False
        within = node.get("within")
        if within is not None and (not isinstance(within, int) or isinstance(within, bool) or within < 1):
            self.err(value_location(path, node, "within"), f"{what}: within: expected a positive number of words")
            ok = False
        notify = self.strings(path, node, "notify", f"{what}: notify")
        parts = []
        for op in ("all", "any", "none"):
            if op in node:
                child = read_combinator(self, path, node, op, what)
                if child is None:
                    ok = False
                else:
                    parts.append(child)
        if not any(k in node for k in ("all", "any")):
            self.err(where, f"{what}: needs 'all' or 'any' (a rule must look for something)")
            ok = False
        examples = self.read_examples(path, node, what)
        if ok and title and rule_id is not None:
            expr = Node("all", tuple(parts))
            if not expr.terms(positive_only=True):
                self.err(where, f"{what}: has no positive term (only 'none')")
                return
            self.rules[rule_id] = Rule(
                rule_id, title, Severity(severity), expr, within, tuple(notify), tuple(examples), path, where
            )

    def read_examples(self, path: str, node: YamlMapping, what: str) -> list[Example]:
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
                self.err(value_location(path, ex, key), f"{what}: examples.{key}: expected a list of texts")
                continue
            for j, text in enumerate(texts):
                if isinstance(text, str):
                    out.append(Example(str(text), expect, value_location(path, texts, j)))
                else:
                    self.err(value_location(path, texts, j), f"{what}: examples.{key}[{j}]: expected a text")
        return out

    def finish(self) -> None:
        """Once every file is read: centre the circles drawn around places, check every id used."""
        self.areas = finish_areas(self, self.pending_areas, self.places)
        self.check_references()
