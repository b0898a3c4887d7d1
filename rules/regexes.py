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


# What RE2 leaves out on purpose (it guarantees linear time), in the words its parser refuses
# them with: (the opening RE2 quotes, what it is, how to do without).
_UNSUPPORTED: tuple[tuple[str, str, str], ...] = (
    ("(?<=", "look-behind", "match the preceding text too, or use a keyword term beside it"),
    ("(?<!", "negative look-behind", "use a 'none:' term for what must not come before"),
    ("(?=", "look-ahead", "match the following text too"),
    ("(?!", "negative look-ahead", "use a 'none:' term for what must not follow"),
    ("(?>", "atomic groups", "use a plain group"),
    ("(?P=", "back-references", "spell the repeated text out"),
)
_BACKREFERENCE = re2.compile(r"^invalid escape sequence: \\[1-9]")
_POSSESSIVE = re2.compile(r"^bad repetition operator: [*+?}]\+")


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid RE2 expression, or None; the constructs RE2 leaves out
    (look-around, back-references, atomic groups, possessive repeats) named as such."""
    try:
        re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        msg = exc.args[0] if exc.args else str(exc)
        return _plain(msg.decode() if isinstance(msg, bytes) else str(msg))
    return None


def _plain(message: str) -> str:
    """RE2's parser message, in a rule author's words where it refuses a construct on purpose."""
    if message.startswith("invalid perl operator: "):
        quoted = message.removeprefix("invalid perl operator: ")
        for opening, name, instead in _UNSUPPORTED:
            # RE2 quotes only "(?P" of a named back-reference "(?P=name)".
            if quoted.startswith(opening) or (opening == "(?P=" and quoted == "(?P"):
                return f"RE2, the engine of rule regexes, has no {name} ({opening}...): {instead}"
    if _BACKREFERENCE.search(message):
        return "RE2, the engine of rule regexes, has no back-references (\\1 ...): spell the repeated text out"
    if _POSSESSIVE.search(message):
        return "RE2, the engine of rule regexes, has no possessive repeats (++, *+): use + or *"
    return message


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
