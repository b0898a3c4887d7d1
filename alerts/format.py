"""Telegram HTML for alerts and bot replies: one alert (or a digest of several), the plain text a
Telegram user sees (``to_terminal``, used by the demo and as the fallback when HTML is refused),
and the limits and helpers every message shares.

``esc`` is the one HTML escape of the alerts package: everything scraped, typed by a user or read
from the rule files goes through it. ``TELEGRAM_TEXT_LIMIT`` is Telegram's 4096 characters,
counted as Telegram counts them (UTF-16 code units of the text after entity parsing): every alert
fits it. Bot replies are clipped to ``REPLY_BUDGET`` (``clip_reply``). Pure functions: no store,
no network.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rules.geo import bearing_deg, compass, haversine_km
from rules.snippets import title_copy_end
from rules.types import Severity

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from rules.types import Match, PlaceRef

TELEGRAM_TEXT_LIMIT = 4096  # characters in one message, as Telegram counts them
REPLY_BUDGET = TELEGRAM_TEXT_LIMIT - 96  # a bot reply's HTML: under the limit, with room for a closing line
MAX_TITLE = 300
MAX_NAME = 120
MAX_ALSO = 12
SEVERITY_ICONS = {Severity.HIGH: "🔴 HIGH", Severity.MEDIUM: "🟠 MEDIUM", Severity.LOW: "🟡 LOW"}
SEVERITY_DOTS = {Severity.HIGH: "🔴", Severity.MEDIUM: "🟠", Severity.LOW: "🟡"}  # in lists of rules
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
    severity: str | None = None  # "high", ...: a ``Severity`` value
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


# -- escaping and clipping -----------------------------------------------------------------------

def esc(text: str) -> str:
    """``text`` safe in Telegram HTML, as text or inside a quoted attribute."""
    return html.escape(text, quote=True)


def shown(text: str | None, limit: int = MAX_NAME) -> str:
    """Scraped or rule-file text on one line, shortened to ``limit`` characters, escaped."""
    clean = " ".join((text or "").split())
    if len(clean) > limit:
        clean = clean[: limit - 1].rstrip() + "…"
    return esc(clean)


def clip_reply(message_html: str, limit: int = REPLY_BUDGET) -> str:
    """``message_html`` within ``limit`` characters, cut at a line end (each line's tags are
    balanced) so no tag or entity is split; one over-long line goes out as its visible text, cut
    and escaped again."""
    if len(message_html) <= limit:
        return message_html
    head = message_html[: limit - 2]
    if "\n" in head:
        return head.rsplit("\n", 1)[0] + "\n…"
    out, size = [], 0
    for ch in html.unescape(_TAGS.sub("", message_html)):
        piece = esc(ch)
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out) + "…"


# -- pieces ---------------------------------------------------------------------------------------


def _date(value: datetime | None) -> str | None:
    return f"{value.day} {value:%b %Y}" if value else None


def _severity(view: AlertView) -> Severity | None:
    raw = (view.severity or (view.match.severity if view.match else "") or "").lower()
    return Severity(raw) if raw in SEVERITY_ICONS else None


def _heading(view: AlertView) -> str:
    if view.rule_title or (view.match and not view.label):
        severity = _severity(view)
        icon = SEVERITY_ICONS[severity] if severity else "🔵 ALERT"
        title = view.rule_title or (view.match.title if view.match else "")
        return f"{icon} · {shown(title)}"
    return f"📍 New mention · {shown(view.label or '?')}"


def _footer(view: AlertView) -> str:
    parts = [shown(view.outlet)] if view.outlet else []
    if (d := _date(view.published)) is not None:
        parts.append(d)
    parts.append(f'<a href="{esc(view.url)}">Read</a>')
    return " · ".join(parts)


def also_line(outlets: Sequence[str]) -> str | None:
    names: list[str] = []
    for o in outlets:
        if o and o not in names:
            names.append(o)
    if not names:
        return None
    listed = ", ".join(shown(o, 60) for o in names[:MAX_ALSO])
    more = f" and {len(names) - MAX_ALSO} more" if len(names) > MAX_ALSO else ""
    return f"Also: {listed}{more}"


def _snippet_source(view: AlertView) -> tuple[str, tuple[tuple[int, int], ...]]:
    if view.match and view.match.snippet:
        return view.match.snippet, view.match.marks
    # A leading copy of the headline is not the snippet: the card shows the headline already.
    body = view.text[title_copy_end(view.title, view.text):] if view.title else view.text
    text = " ".join(body.split())
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
        out.append(esc(snippet[pos:a]))
        out.append(f"<b>{esc(snippet[a:b])}</b>")
        pos = b
    out.append(esc(snippet[pos:]))
    return "".join(out)


# -- messages -------------------------------------------------------------------------------------

def render_alert(view: AlertView) -> str:
    """One alert, Telegram HTML, within ``TELEGRAM_TEXT_LIMIT`` as Telegram counts it."""
    title = f"<b>{shown(view.title, MAX_TITLE)}</b>" if view.title.strip() else ""
    place = _place_line(view)
    lines_before = [_heading(view), title]
    lines_after = [_footer(view)]
    if place:
        lines_after.append(f"📍 {shown(place, 200)}")
    if (also := also_line(view.also)) is not None:
        lines_after.append(also)
    snippet, marks = _snippet_source(view)
    frame = "\n".join([*(x for x in lines_before if x), "", *lines_after])
    budget = TELEGRAM_TEXT_LIMIT - visible_length(frame) - 1
    body = render_snippet(snippet, marks, budget) if snippet else ""
    message = "\n".join(x for x in [*lines_before, body, *lines_after] if x)
    assert visible_length(message) <= TELEGRAM_TEXT_LIMIT
    return message


DIGEST_SNIPPET = 140  # visible characters of the snippet line under a digest entry


def _digest_entry(view: AlertView) -> str:
    """One alert in a digest: severity and headline, why and where from, one line of snippet."""
    severity = _severity(view)
    label = SEVERITY_ICONS[severity] if severity else "📍"
    what = view.rule_title or (view.match.title if view.match else None) or view.label or ""
    source = " · ".join(x for x in [shown(view.outlet) if view.outlet else "", _date(view.published) or ""] if x)
    link = f'<a href="{esc(view.url)}">Read</a>'
    lines = [f"{label} · <b>{shown(view.title, MAX_TITLE)}</b>",
             f"{shown(what)} · {source + ' · ' if source else ''}{link}"]
    snippet, marks = _snippet_source(view)
    if snippet:
        one_line = re.sub(r"\s", " ", snippet)  # same length: the marks' offsets still hold
        lines.append(f"<i>{render_snippet(one_line, marks, DIGEST_SNIPPET)}</i>")
    if (also := also_line(view.also)) is not None:
        lines.append(also)
    return "\n".join(lines)


def render_digest(views: Sequence[AlertView], *, heading: str | None = None) -> list[str]:
    """Several alerts as few messages as possible, each within ``TELEGRAM_TEXT_LIMIT``; every
    alert appears once."""
    if not views:
        return []
    head = heading or f"🗞 Digest · {len(views)} alert{'s' if len(views) != 1 else ''}"
    head_html = f"<b>{shown(head)}</b>"
    messages: list[str] = []
    current = head_html
    for view in views:
        entry = _digest_entry(view)
        candidate = f"{current}\n\n{entry}"
        if visible_length(candidate) <= TELEGRAM_TEXT_LIMIT:
            current = candidate
            continue
        messages.append(current)
        current = f"{head_html} (cont.)\n\n{entry}"
    messages.append(current)
    return messages
