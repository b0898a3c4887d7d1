"""Text folding for matching: one canonical form for names however they are typed.

NFKD, combining marks stripped (I‘zāz -> i'zaz, إعزاز -> اعزاز), apostrophe-like characters
unified, tatweel dropped, case folded. ``fold_with_map`` also returns, for every folded
character, the index of the original character it came from, so hits found in folded text are
reported at offsets into the original field.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

APOSTROPHES = "'‘’ʼʻʿʾ`´′ʹ"  # all treated as "'"
_DROP = {"\u0640", "\u200c", "\u200d", "\u200e", "\u200f", "\u00ad"}  # tatweel, joiners, marks, soft hyphen
_ARABIC_MAP = {"ى": "ي", "ٱ": "ا"}


@lru_cache(maxsize=65536)
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


def fold(text: str, *, casefold: bool = True) -> str:
    if text.isascii():
        return (text.casefold() if casefold else text).replace("`", "'")
    return "".join(_fold_char(ch, casefold) for ch in text)


def fold_with_map(text: str, *, casefold: bool = True) -> tuple[str, list[int]]:
    """The folded text and, per folded character, its original index (plus one end sentinel)."""
    if text.isascii():
        folded = (text.casefold() if casefold else text).replace("`", "'")  # both 1:1 in ASCII
        return folded, list(range(len(text) + 1))
    parts: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        f = _fold_char(ch, casefold)
        if f:
            parts.append(f)
            index.extend([i] * len(f))
    index.append(len(text))
    return "".join(parts), index


def is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def is_short_caps(alias: str) -> bool:
    """IS, SDF, YPG, ISIS: short all-capital aliases match only in capitals."""
    if len(alias) > 6 or not alias.isupper():  # cheap rejection first: called for every alias
        return False
    letters = [c for c in alias if c.isalpha()]
    return 0 < len(letters) <= 4 and all(c.isupper() for c in letters) and len(alias.strip()) <= 5
