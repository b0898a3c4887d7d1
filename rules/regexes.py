"""RE2 for ``regex`` terms: the options every pattern is compiled with (problems are reported
located by the loader, never logged by RE2), the validity check the loader runs, and the
compiled patterns and set the index holds. google-re2 ships no type information, so what the
engine uses of its objects is written down here as Protocols.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import re2

if TYPE_CHECKING:
    from collections.abc import Iterator

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the loader reports a bad pattern itself, at its line


class RegexMatch(Protocol):
    """One match of a compiled pattern (``re2._Match``)."""

    def start(self) -> int: ...
    def end(self) -> int: ...
    def group(self, index: int = 0, /) -> str: ...


class CompiledRegex(Protocol):
    """A compiled pattern (``re2._Regexp``)."""

    def finditer(self, text: str) -> Iterator[RegexMatch]: ...


class RegexSet(Protocol):
    """Every pattern of a ruleset in one automaton (``re2.Set``): which of them occur in a text."""

    def Match(self, text: str) -> list[int] | None: ...  # the indexes of the patterns found


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid RE2 expression, or None."""
    try:
        re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        msg = exc.args[0] if exc.args else str(exc)
        return msg.decode() if isinstance(msg, bytes) else str(msg)
    return None


def compile_regexes(patterns: list[str]) -> tuple[list[tuple[str, CompiledRegex]], RegexSet | None]:
    """Each pattern compiled, and all of them as one set (None without patterns)."""
    if not patterns:
        return [], None
    compiled: list[tuple[str, CompiledRegex]] = [(p, re2.compile(p, options=_OPTIONS)) for p in patterns]
    regex_set = re2.Set.SearchSet(_OPTIONS)
    for p in patterns:
        regex_set.Add(p)
    regex_set.Compile()
    return compiled, regex_set
