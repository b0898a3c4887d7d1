"""Snippets: the sentence of an article that shows why a rule fired, with the hits marked.

A snippet never repeats the headline: the alert shows the title already, and extracted text often
starts with a copy of it (the page's ``<h1>``). Hits in that copy stay hits (their offsets are
the text's), but the snippet is taken from the body after it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rules.types import Document, TermHit, TextField

SNIPPET_RADIUS = 120
MAX_SENTENCE = 360

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|\n\s*")
_END_MARKS = ".:;!?…"  # a copy of the title may have or lack these at its end
_COPY_TAIL = frozenset(_END_MARKS + "|·•–—-")  # what may follow a copy of the title before the body


def title_copy_end(title: str, text: str) -> int:
    """Where the body starts when ``text`` opens with a copy of ``title`` (the same words, in
    any case and spacing, ending at a word bound), past the spaces and separators after it;
    else 0. The copy is a line of its own, or (as trafilatura's fallback flattens a short page)
    a headline of three words or more run into a body that goes on with no lowercase word."""
    words = title.split()
    if words:
        words[-1] = words[-1].rstrip(_END_MARKS)
    if not words or not words[-1]:
        return 0
    pos, size = 0, len(text)
    for word in words:
        gap = pos
        while pos < size and text[pos].isspace():
            pos += 1
        if (pos == gap and pos > 0) or text[pos : pos + len(word)].casefold() != word.casefold():
            return 0
        pos += len(word)
    if pos < size and text[pos].isalnum() and text[pos - 1].isalnum():
        return 0  # "Azaz" is not a copy of the title "Aza"
    copy_end = pos
    while pos < size and (text[pos].isspace() or text[pos] in _COPY_TAIL):
        pos += 1
    if pos < size and "\n" not in text[copy_end:pos] and (len(words) < 3 or text[pos].islower()):
        return 0  # run into a sentence that merely starts with the title's words ("Azaz council ...")
    return pos


def make_snippet(
    doc: Document,
    hits: list[TermHit],
    bounds: dict[tuple[str, int, int], tuple[int, int, bool]] | None = None,
    body_start: int | None = None,
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The sentence with the most distinct terms (body first), or ±120 characters, with marks.

    Never the headline: hits in a leading copy of the title (``body_start``: where the body
    starts after it, found here when not given) are left out, and when no hit is left in the
    body the snippet is the body's first sentence, unmarked; only a document with no body at all
    gets its title, marked. ``bounds`` caches sentence bounds per hit across the rules matched on
    one document."""
    body = doc.text or ""
    lead = title_copy_end(doc.title or "", body) if body_start is None else body_start
    in_field = [h for h in hits if h.field == "text" and h.start >= lead]
    field_name: TextField = "text"
    if not in_field:
        if body[lead:].strip():
            return _lede(body, lead), ()
        field_name = "title"
        in_field = [h for h in hits if h.field == "title"]
        if not in_field:
            return "", ()
        lead = 0
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
    start = max(start, lead)  # a ±120 window stops where the headline copy ends
    while start < end and text[start].isspace():  # trim, keeping offsets right
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    prefix = "…" if clipped and start > lead else ""
    suffix = "…" if clipped and end < len(text) else ""
    offset = len(prefix) - start
    marks = sorted(
        {(h.start + offset, h.end + offset) for h in in_field if h.start >= start and h.end <= end}
    )
    return prefix + text[start:end] + suffix, tuple(marks)


def _lede(text: str, start: int) -> str:
    """The first sentence from ``start`` on, or its first ±240 characters cut at a space."""
    while start < len(text) and text[start].isspace():
        start += 1
    after = _SENTENCE_END.search(text, start, start + MAX_SENTENCE)
    end = after.start() + len(after.group(0).rstrip()) if after else len(text)
    if end - start <= MAX_SENTENCE:
        return text[start:end].rstrip()
    end = start + 2 * SNIPPET_RADIUS
    if (sp := text.rfind(" ", start, end)) > start:
        end = sp
    return text[start:end].rstrip() + "…"


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
