"""Alert rendering: one alert (or a digest of several) as Telegram HTML, and the plain text a
Telegram user sees (``to_terminal``), used by the demo and as the fallback when HTML is refused.

Everything scraped is ``html.escape``d here and nowhere else; every message fits Telegram's 4096
characters, counted as Telegram counts them (UTF-16 code units of the text after entity parsing).
Pure functions: no store, no network.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rules.geo import bearing_deg, compass, haversine_km

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from rules.types import Match, PlaceRef

MAX_MESSAGE = 4096
MAX_TITLE = 300
MAX_NAME = 120
MAX_ALSO = 12
SEVERITY_ICONS = {"high": "🔴 HIGH", "medium": "🟠 MEDIUM", "low": "🟡 LOW"}
SEVERITY_DOTS = {"high": "🔴", "medium": "🟠", "low": "🟡"}
SNIPPET_AROUND = 160  # characters either side of a mention when there is no rule snippet


@dataclass(frozen=True)
class AlertView:
    """Everything an alert shows, already resolved from the store."""

    title: str
    url: str
    outlet: str | None = None
    published: datetime | None = None
    language: str | None = None
    rule_title: str | None = None  # a rule alert ...
    severity: str | None = None
    label: str | None = None  # ... or a place/group/near subscription: "Azaz"
    match: Match | None = None
    text: str = ""  # article body, for a snippet when there is no match
    also: tuple[str, ...] = ()  # outlets that ran the same story later
    place_line: str | None = None  # precomputed "Kafrah — 9 km E of Azaz" (rules.geo), else computed
    reference_places: tuple[PlaceRef, ...] = field(default=())  # for the computed place line


# -- geometry -------------------------------------------------------------------------------------

def describe_place(place: PlaceRef, references: Iterable[PlaceRef], *, max_km: float = 150.0) -> str:
    """"Kafrah — 9 km E of Azaz": the nearest other reference place, or just the name."""
    best: tuple[float, PlaceRef] | None = None
    for ref in references:
        if ref.id == place.id or ref.name == place.name:
            continue
        d = haversine_km(ref.lat, ref.lon, place.lat, place.lon)
        if d <= max_km and (best is None or d < best[0]):
            best = (d, ref)
    if best is None or best[0] < 1.0:
        return place.name
    d, ref = best
    direction = compass(bearing_deg(ref.lat, ref.lon, place.lat, place.lon))
    return f"{place.name} — {round(d):d} km {direction} of {ref.name}"


def _place_line(view: AlertView) -> str | None:
    if view.place_line:
        return view.place_line
    places = view.match.places if view.match else ()
    if not places:
        return None
    primary = next((p for p in places if p.watched), places[0])
    # Prefer describing it relative to a place the reader watches (the subscription's place).
    refs = list(view.reference_places) + [p for p in places if p.watched]
    return describe_place(primary, refs)


def primary_place(match: Match | None) -> PlaceRef | None:
    """The place an alert's map pin shows."""
    if match is None or not match.places:
        return None
    return next((p for p in match.places if p.watched), match.places[0])


# -- length as Telegram counts it ----------------------------------------------------------------

def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _cut_utf16(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` UTF-16 units, never splitting a pair."""
    if utf16_len(text) <= limit:
        return text
    out, used = [], 0
    for ch in text:
        w = 2 if ord(ch) > 0xFFFF else 1
        if used + w > limit:
            break
        out.append(ch)
        used += w
    return "".join(out)


_TAGS = re.compile(r"<[^>]*>")


def visible_length(message_html: str) -> int:
    return utf16_len(to_terminal(message_html))


def to_terminal(message_html: str, *, ansi: bool = False, show_links: bool = False) -> str:
    """What a Telegram user sees: tags gone, entities unescaped; bold as ANSI only if asked;
    ``show_links`` writes a link's address after its text (for the plain-text fallback)."""
    text = message_html
    if show_links:
        text = re.sub(r'<a\s+href="([^"]*)"\s*>(.*?)</a>', lambda m: f"{m.group(2)} ({m.group(1)})", text,
                      flags=re.S)
    if ansi:
        text = re.sub(r"<(b|strong)>", "\x1b[1m", text)
        text = re.sub(r"</(b|strong)>", "\x1b[0m", text)
    return html.unescape(_TAGS.sub("", text))


# -- pieces ---------------------------------------------------------------------------------------

def _esc(text: str | None, limit: int = MAX_NAME) -> str:
    clean = " ".join((text or "").split())
    if len(clean) > limit:
        clean = clean[: limit - 1].rstrip() + "…"
    return html.escape(clean, quote=True)


def _date(value: datetime | None) -> str | None:
    return f"{value.day} {value:%b %Y}" if value else None


def _heading(view: AlertView) -> str:
    if view.rule_title or (view.match and not view.label):
        sev = (view.severity or (view.match.severity if view.match else "") or "").lower()
        icon = SEVERITY_ICONS.get(sev, "🔵 ALERT")
        title = view.rule_title or (view.match.title if view.match else "")
        return f"{icon} · {_esc(title)}"
    return f"📍 New mention · {_esc(view.label or '?')}"


def _footer(view: AlertView) -> str:
    parts = [_esc(view.outlet)] if view.outlet else []
    if (d := _date(view.published)) is not None:
        parts.append(d)
    parts.append(f'<a href="{html.escape(view.url, quote=True)}">Read</a>')
    return " · ".join(parts)


def also_line(outlets: Sequence[str]) -> str | None:
    names: list[str] = []
    for o in outlets:
        if o and o not in names:
            names.append(o)
    if not names:
        return None
    shown = ", ".join(_esc(o, 60) for o in names[:MAX_ALSO])
    more = f" and {len(names) - MAX_ALSO} more" if len(names) > MAX_ALSO else ""
    return f"Also: {shown}{more}"


def _snippet_source(view: AlertView) -> tuple[str, tuple[tuple[int, int], ...]]:
    if view.match and view.match.snippet:
        return view.match.snippet, view.match.marks
    text = " ".join(view.text.split())
    if not text:
        return "", ()
    needle = (view.label or "").strip()
    at = text.lower().find(needle.lower()) if needle else -1
    if at < 0:
        return (text[: 2 * SNIPPET_AROUND] + ("…" if len(text) > 2 * SNIPPET_AROUND else "")), ()
    start, end = max(0, at - SNIPPET_AROUND), min(len(text), at + len(needle) + SNIPPET_AROUND)
    prefix, suffix = ("…" if start else ""), ("…" if end < len(text) else "")
    snippet = prefix + text[start:end] + suffix
    offset = len(prefix) - start
    return snippet, ((at + offset, at + offset + len(needle)),)


def render_snippet(snippet: str, marks: Sequence[tuple[int, int]], budget: int) -> str:
    """The snippet as HTML with marked spans in <b>, trimmed to ``budget`` visible UTF-16 units."""
    if budget <= 1:
        return ""
    if utf16_len(snippet) > budget:
        cut = _cut_utf16(snippet, budget - 1)
        space = cut.rfind(" ")
        if space > len(cut) * 0.8:
            cut = cut[:space]
        snippet = cut.rstrip() + "…"
    limit = len(snippet)
    spans = sorted((max(0, a), min(b, limit)) for a, b in marks if a < limit and b > a)
    out, pos = [], 0
    for a, b in spans:
        if a < pos:
            a = pos
        if a >= b:
            continue
        out.append(html.escape(snippet[pos:a], quote=True))
        out.append(f"<b>{html.escape(snippet[a:b], quote=True)}</b>")
        pos = b
    out.append(html.escape(snippet[pos:], quote=True))
    return "".join(out)


# -- messages -------------------------------------------------------------------------------------

def render_alert(view: AlertView) -> str:
    """One alert, Telegram HTML, at most 4096 characters as Telegram counts them."""
    title = f"<b>{_esc(view.title, MAX_TITLE)}</b>" if view.title.strip() else ""
    place = _place_line(view)
    lines_before = [_heading(view), title]
    lines_after = [_footer(view)]
    if place:
        lines_after.append(f"📍 {_esc(place, 200)}")
    if (also := also_line(view.also)) is not None:
        lines_after.append(also)
    snippet, marks = _snippet_source(view)
    frame = "\n".join([*(x for x in lines_before if x), "", *lines_after])
    budget = MAX_MESSAGE - visible_length(frame) - 1
    body = render_snippet(snippet, marks, budget) if snippet else ""
    message = "\n".join(x for x in [*lines_before, body, *lines_after] if x)
    assert visible_length(message) <= MAX_MESSAGE
    return message


def _digest_entry(view: AlertView) -> str:
    sev = (view.severity or (view.match.severity if view.match else "") or "").lower()
    dot = SEVERITY_DOTS.get(sev, "📍")
    what = view.rule_title or (view.match.title if view.match else None) or view.label or ""
    source = " · ".join(x for x in [_esc(view.outlet) if view.outlet else "", _date(view.published) or ""] if x)
    link = f'<a href="{html.escape(view.url, quote=True)}">Read</a>'
    lines = [f"{dot} <b>{_esc(view.title, MAX_TITLE)}</b>", f"{_esc(what)} · {source + ' · ' if source else ''}{link}"]
    if (also := also_line(view.also)) is not None:
        lines.append(also)
    return "\n".join(lines)


def render_digest(views: Sequence[AlertView], *, heading: str | None = None) -> list[str]:
    """Several alerts as few messages as possible, each ≤ 4096; every alert appears once."""
    if not views:
        return []
    head = heading or f"🗞 Digest · {len(views)} alert{'s' if len(views) != 1 else ''}"
    head_html = f"<b>{_esc(head)}</b>"
    messages: list[str] = []
    current = head_html
    for view in views:
        entry = _digest_entry(view)
        candidate = f"{current}\n\n{entry}"
        if visible_length(candidate) <= MAX_MESSAGE:
            current = candidate
            continue
        messages.append(current)
        current = f"{head_html} (cont.)\n\n{entry}"
    messages.append(current)
    return messages
