"""Snippets: the sentence of an article that shows why a rule fired, with the hits marked."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rules.types import Document, TermHit, TextField

SNIPPET_RADIUS = 120
MAX_SENTENCE = 360

_BODY_FIRST: tuple[TextField, ...] = ("text", "title")  # where a snippet is taken from, by preference
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|\n\s*")


def make_snippet(
    doc: Document,
    hits: list[TermHit],
    bounds: dict[tuple[str, int, int], tuple[int, int, bool]] | None = None,
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The sentence with the most distinct terms (body first), or ±120 characters, with marks.

    ``bounds`` caches sentence bounds per hit across the rules matched on one document."""
    for field_name in _BODY_FIRST:
        in_field = [h for h in hits if h.field == field_name]
        if in_field:
            break
    else:
        return "", ()
    text = getattr(doc, field_name) or ""
    best: tuple[int, int, int, int, bool] | None = None  # (-distinct, length, start, end, clipped)
    ordered = sorted(in_field, key=lambda x: x.start)
    if bounds is None:
        bounds = {}
    around = []  # the sentence bounds of each hit, in order
    for h in ordered:
        key = (field_name, h.start, h.end)
        if key not in bounds:
            bounds[key] = _sentence_bounds(text, h.start, h.end)
        around.append(bounds[key])
    for i, h in enumerate(ordered):
        # A snippet may run over two or three short sentences when the terms sit in neighbouring
        # ones ("...town of Marea. ... Islamic State ..."): the alert must show what matched.
        start, _, clipped_left = around[i]
        for j in range(i, len(ordered)):
            last = ordered[j]
            if last.end - h.start > MAX_SENTENCE:
                break
            _, end, clipped_right = around[j]
            if end - start > 2 * MAX_SENTENCE:
                continue
            distinct = len({(x.kind, x.ref) for x in in_field if x.start >= start and x.end <= end})
            candidate = (-distinct, end - start, start, end, clipped_left or clipped_right)
            if best is None or candidate < best:
                best = candidate
    if best is None:  # every window too long: the first hit's sentence or ±120 characters
        start, end, clipped = around[0]
        best = (0, end - start, start, end, clipped)
    _, _, start, end, clipped = best
    while start < end and text[start].isspace():  # trim, keeping offsets right
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    prefix = "…" if clipped and start > 0 else ""
    suffix = "…" if clipped and end < len(text) else ""
    offset = len(prefix) - start
    marks = sorted(
        {(h.start + offset, h.end + offset) for h in in_field if h.start >= start and h.end <= end}
    )
    return prefix + text[start:end] + suffix, tuple(marks)


def _sentence_bounds(text: str, start: int, end: int) -> tuple[int, int, bool]:
    left = 0
    for m in _SENTENCE_END.finditer(text, max(0, start - MAX_SENTENCE), start):
        left = m.end()
    after = _SENTENCE_END.search(text, end, end + MAX_SENTENCE)  # bounded: never scan the whole text
    right = after.start() + len(after.group(0).rstrip()) if after else len(text)
    if right - left <= MAX_SENTENCE:
        return left, right, False
    # No usable sentence: ±120 characters, cut at spaces.
    lo, hi = max(0, start - SNIPPET_RADIUS), min(len(text), end + SNIPPET_RADIUS)
    if lo > 0 and (sp := text.find(" ", lo, start)) != -1:
        lo = sp + 1
    if hi < len(text) and (sp := text.rfind(" ", end, hi)) != -1:
        hi = sp
    return lo, hi, True
