"""Text folding for matching: one canonical form for names however they are typed.

NFKD, combining marks stripped (I‘zāz -> i'zaz, إعزاز -> اعزاز), apostrophe-like characters
unified, tatweel dropped, case folded. ``fold_with_map`` also returns, for every folded
character, the index of the original character it came from, so hits found in folded text are
reported at offsets into the original field.

Folding is per character, so whole strings go through ``str.translate`` with tables filled on
first sight of each character (C speed; real articles are rarely pure ASCII: curly quotes,
dashes, Arabic). The offset map is built only around the few characters whose fold is not
exactly one character (combining marks, ligatures, "…").
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

APOSTROPHES = "'‘’ʼʻʿʾ`´′ʹ"  # all treated as "'"
_DROP = {"\u0640", "\u200c", "\u200d", "\u200e", "\u200f", "\u00ad"}  # tatweel, joiners, marks, soft hyphen
_ARABIC_MAP = {"ى": "ي", "ٱ": "ا"}
_TABLE_LIMIT = 300_000  # code points remembered per table; beyond, folded again each time
_SEPARATOR = "\x00"  # joins names to fold them in one call; folds to itself
# Non-ASCII characters, with whatever non-letters lie between them (a run of Arabic words is one
# run). ASCII outside these runs only needs casefold(), which is per character and idempotent.
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f](?:[^A-Za-z]*[^\x00-\x7f])?")


def _fold_char(ch: str, casefold: bool) -> str:
    if ch in APOSTROPHES:
        return "'"
    if ch in _DROP:
        return ""
    if ch.isascii():
        return ch.casefold() if casefold else ch
    out = []
    for c in unicodedata.normalize("NFKD", ch):
        if unicodedata.combining(c) or c in _DROP:
            continue
        if c in APOSTROPHES:
            c = "'"
        c = _ARABIC_MAP.get(c, c)
        out.append(c.casefold() if casefold else c)
    return "".join(out)


class _FoldTable(dict):
    """Code point -> folded string, a ``str.translate`` table filled on first sight.

    Also remembers the characters whose fold is not exactly one character (combining marks,
    ligatures, "…"): only at those do offsets into the folded text shift."""

    def __init__(self, casefold: bool):
        super().__init__()
        self.casefold = casefold
        self.irregular: set[int] = set()
        self._irregular_re: re.Pattern[str] | None = None

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code), self.casefold)
        if len(folded) != 1 and code not in self.irregular:
            self.irregular.add(code)
            self._irregular_re = None
        if len(self) < _TABLE_LIMIT:
            self[code] = folded
        return folded

    def fold_run(self, m: re.Match[str]) -> str:
        return m.group().translate(self)

    def irregular_re(self) -> re.Pattern[str]:
        if self._irregular_re is None:
            ranges = "".join(f"\\U{c:08x}" for c in sorted(self.irregular))
            self._irregular_re = re.compile(f"[{ranges}]" if ranges else "(?!)")
        return self._irregular_re


_FOLDED = _FoldTable(casefold=True)
_FOLDED_CASED = _FoldTable(casefold=False)


def _fold(text: str, table: _FoldTable) -> str:
    # Whole-string operations equal per-character folding: casefold() maps each character on its
    # own and is idempotent on folded output; only the non-ASCII runs go through the table.
    folded = _NON_ASCII_RUN.sub(table.fold_run, text)
    return (folded.casefold() if table.casefold else folded).replace("`", "'")


def fold(text: str, *, casefold: bool = True) -> str:
    if text.isascii():
        return (text.casefold() if casefold else text).replace("`", "'")
    return _fold(text, _FOLDED if casefold else _FOLDED_CASED)


def fold_many(texts: Iterable[str]) -> list[str]:
    """``[fold(t) for t in texts]`` in one pass over one joined string (index builds: 100,000 names)."""
    texts = list(texts)
    joined = _SEPARATOR.join(texts)
    if joined.count(_SEPARATOR) != max(0, len(texts) - 1):
        return [fold(t) for t in texts]  # a name holds the separator itself
    return fold(joined).split(_SEPARATOR) if texts else []


def fold_with_map(text: str, *, casefold: bool = True) -> tuple[str, Sequence[int]]:
    """The folded text and, per folded character, its original index (plus one end sentinel)."""
    if text.isascii():
        folded = (text.casefold() if casefold else text).replace("`", "'")  # both 1:1 in ASCII
        return folded, range(len(text) + 1)
    table = _FOLDED if casefold else _FOLDED_CASED
    folded = _fold(text, table)  # every non-ASCII character of text is in table from here on
    if len(table.irregular) == 0 or not (shifts := list(table.irregular_re().finditer(text))):
        return folded, range(len(text) + 1)  # curly quotes, dashes, Arabic letters: 1:1
    index: list[int] = []
    done = 0
    for m in shifts:
        i = m.start()
        index.extend(range(done, i))
        index.extend([i] * len(table[ord(m.group())]))
        done = i + 1
    index.extend(range(done, len(text) + 1))
    return folded, index


def is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def is_short_caps(alias: str) -> bool:
    """IS, SDF, YPG, ISIS: short all-capital aliases match only in capitals."""
    if len(alias) > 6 or not alias.isupper():  # cheap rejection first: called for every alias
        return False
    letters = [c for c in alias if c.isalpha()]
    return 0 < len(letters) <= 4 and all(c.isupper() for c in letters) and len(alias.strip()) <= 5
