"""Rule expressions in rule files, read into ``Node``/``Term`` trees with located errors:
``all``/``any``/``none`` lists and ``at_least: {n, of}`` over terms (keyword with its ``case``,
regex, place, group, area, source, lang). Regexes are checked with RE2 here; place, group and
area ids are recorded for the check once every file is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeGuard

from core.located import node_location, value_location
from rules.model import Node, Term
from rules.regexes import regex_problem
from rules.types import COMBINATORS, TERM_KINDS
from rules.yaml_reader import short

if TYPE_CHECKING:
    from core.located import Location
    from rules.types import Combinator, TermKind
    from rules.yaml_reader import YamlList, YamlMapping, YamlReader

ListCombinator = Literal["all", "any", "none"]
"""The combinators written as a list of terms (``at_least`` is a mapping: ``{n, of}``)."""
TERM_KEYS = (*TERM_KINDS, *COMBINATORS, "case")
REFERENCE_KINDS = ("place", "group", "area")  # terms naming an id some rule file defines
MAX_DEPTH = 12  # nested combinators: deeper is no rule a person writes, and costs a recursion each


def read_combinator(reader: YamlReader, path: str, parent: YamlMapping, op: ListCombinator, what: str,
                    depth: int = 1) -> Node | None:
    """``parent[op]``, a list of terms, as a node; None when any term has a problem."""
    if depth > MAX_DEPTH:
        reader.err(node_location(path, parent, op), f"{what}: terms nested more than {MAX_DEPTH} levels deep")
        return None
    children = _read_terms(reader, path, parent, op, what, depth)
    return Node(op, children) if children is not None else None


def _read_terms(
    reader: YamlReader, path: str, parent: YamlMapping, key: str, what: str, depth: int
) -> tuple[Node | Term, ...] | None:
    items = parent[key]
    if not isinstance(items, list) or not items:
        reader.err(value_location(path, parent, key), f"{what}: {key}: expected a non-empty list of terms")
        return None
    children = []
    ok = True
    for j in range(len(items)):
        child = read_term(reader, path, items, j, what, depth)
        if child is None:
            ok = False
        else:
            children.append(child)
    return tuple(children) if ok else None


def read_term(reader: YamlReader, path: str, items: YamlList, j: int, what: str,
              depth: int = 1) -> Node | Term | None:
    """``items[j]``: a term such as ``- place: azaz``, or a nested combinator."""
    node = items[j]
    where = value_location(path, items, j)
    if not isinstance(node, dict) or not node:
        hint = f" (write '- keyword: {node}')" if isinstance(node, str) else ""
        reader.err(where, f"{what}: a term is a mapping such as '- place: azaz', got {short(node)}{hint}")
        return None
    kinds: list[TermKind | Combinator] = [k for k in node if _is_term_key(k)]
    reader.check_keys(path, node, TERM_KEYS, f"{what}: term")
    if len(kinds) != 1:
        reader.err(where, f"{what}: a term needs exactly one of {', '.join(TERM_KINDS + COMBINATORS)}")
        return None
    kind = kinds[0]
    if "case" in node and kind != "keyword":
        reader.err(node_location(path, node, "case"), f"{what}: 'case' applies to keyword terms only")
    match kind:
        case "all" | "any" | "none":
            return read_combinator(reader, path, node, kind, what, depth + 1)
        case "at_least":
            return _read_at_least(reader, path, node, what, where, depth + 1)
        case _:
            return _read_leaf(reader, path, node, kind, what)


def _is_term_key(key: object) -> TypeGuard[TermKind | Combinator]:
    return key in TERM_KINDS or key in COMBINATORS


def _read_at_least(reader: YamlReader, path: str, node: YamlMapping, what: str, where: Location,
                   depth: int) -> Node | None:
    if depth > MAX_DEPTH:
        reader.err(where, f"{what}: terms nested more than {MAX_DEPTH} levels deep")
        return None
    spec = reader.mapping(path, node, "at_least", f"{what}: at_least")
    if spec is None:
        return None
    reader.check_keys(path, spec, ("n", "of"), f"{what}: at_least")
    n = spec.get("n")
    if "of" not in spec:
        reader.err(value_location(path, node, "at_least"), f"{what}: at_least: missing 'of'")
        return None
    children = _read_terms(reader, path, spec, "of", f"{what}: at_least", depth)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        reader.err(
            value_location(path, spec, "n") if "n" in spec else where,
            f"{what}: at_least.n: expected a positive number",
        )
        return None
    if children is None:
        return None
    if n > len(children):
        reader.err(value_location(path, spec, "n"), f"{what}: at_least.n is {n} but 'of' has {len(children)} terms")
        return None
    return Node("at_least", children, n)


def _read_leaf(reader: YamlReader, path: str, node: YamlMapping, kind: TermKind, what: str) -> Term | None:
    value = reader.string(path, node, kind, f"{what}: {kind}")
    if value is None:
        return None
    where = value_location(path, node, kind)
    case_sensitive = False
    if kind == "keyword" and "case" in node:
        case = node["case"]
        if case not in ("sensitive", "insensitive"):
            reader.err(value_location(path, node, "case"), f"{what}: case: expected 'sensitive' or 'insensitive'")
            return None
        case_sensitive = case == "sensitive"
    if kind == "regex":
        problem = regex_problem(value)
        if problem:
            reader.err(where, f"{what}: bad regex {value!r}: {problem}")
            return None
    if kind in REFERENCE_KINDS:
        reader.refer(kind, value, where)
    return Term(kind, value, case_sensitive, where)

