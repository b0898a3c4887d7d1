"""Alert rendering: the issue's example layout, escaping, Telegram's length count, digests."""

from __future__ import annotations

from datetime import UTC, datetime

from fakebotapi import parse_telegram_html, utf16_len

from alerts.format import (
    AlertView,
    bearing_deg,
    compass,
    describe_place,
    haversine_km,
    render_alert,
    render_digest,
    to_terminal,
)
from rules.types import Match, PlaceRef

SNIPPET = ("…reported Wednesday that ISIS had stormed into Kafrah, a village 10 kilometers east of the "
           "rebels’ key supply route through Aazaz…")
AZAZ = PlaceRef("azaz", "Azaz", 36.5864, 37.0447, True)
KAFRAH = PlaceRef("kafrah", "Kafrah", 36.5950, 37.1500, True)


def marks(snippet: str, *words: str) -> tuple[tuple[int, int], ...]:
    return tuple((snippet.index(w), snippet.index(w) + len(w)) for w in words)


def view(**kw) -> AlertView:
    match = Match("is-near-azaz", "Islamic State near the Azaz corridor", "high", (),
                  places=(KAFRAH, AZAZ), snippet=kw.pop("snippet", SNIPPET),
                  marks=kw.pop("marks", marks(SNIPPET, "ISIS", "Kafrah", "Aazaz")))
    base = {"title": "ISIS advances in flashpoint north Aleppo", "url": "https://now.example/a?x=1&y=2",
            "outlet": "NOW Lebanon", "published": datetime(2016, 6, 1, tzinfo=UTC), "match": match}
    return AlertView(**{**base, **kw})


def test_layout_like_the_issue_example():
    html = render_alert(view())
    lines = html.split("\n")
    assert lines[0] == "🔴 HIGH · Islamic State near the Azaz corridor"
    assert lines[1] == "<b>ISIS advances in flashpoint north Aleppo</b>"
    assert "that <b>ISIS</b> had stormed into <b>Kafrah</b>," in lines[2]
    assert lines[2].endswith("through <b>Aazaz</b>…")
    assert lines[3] == 'NOW Lebanon · 1 Jun 2016 · <a href="https://now.example/a?x=1&amp;y=2">Read</a>'
    assert lines[4] == "📍 Kafrah — 9 km E of Azaz"
    parse_telegram_html(html)  # valid for Telegram


def test_severity_icons_and_subscription_heading():
    assert render_alert(view(severity="medium")).startswith("🟠 MEDIUM · ")
    low = Match("r", "Low rule", "low", (), snippet="x")
    assert render_alert(view(match=low)).startswith("🟡 LOW · Low rule")
    mention = render_alert(AlertView(title="Shelling in Azaz", url="https://x.example/1", label="Azaz",
                                     text="Heavy shelling hit Azaz on Monday, residents said."))
    assert mention.startswith("📍 New mention · Azaz")
    assert "shelling hit <b>Azaz</b> on Monday" in mention


def test_scraped_text_escaped():
    html = render_alert(view(title="<script>x</script> & \"q\"", outlet="A&B <i>", url='https://e/?a="1"&b',
                             snippet="<b>not bold</b> & ISIS", marks=((18, 22),)))
    visible = parse_telegram_html(html)
    assert "<script>x</script> & \"q\"" in visible and "A&B <i>" in visible
    assert "<b>not bold</b> & ISIS" in visible
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; <b>ISIS</b>" in html
    assert 'href="https://e/?a=&quot;1&quot;&amp;b"' in html


def test_never_over_4096_as_telegram_counts():
    for unit in ("word ", "🔴 ", "é", "&<> "):
        snippet = (unit * 20000)[:20000]
        html = render_alert(view(snippet=snippet, marks=((0, 4), (19990, 20000)), title="T" * 9000,
                                 also=tuple(f"Outlet {i}" for i in range(40))))
        visible = parse_telegram_html(html)
        assert utf16_len(visible) <= 4096
        assert utf16_len(visible) > 3900  # trimmed to fit, not cut short
        assert "Also: Outlet 0" in visible and "and 28 more" in visible


def test_also_line_for_syndicated_copies():
    html = render_alert(view(also=("Reuters", "AFP", "Reuters")))
    assert html.endswith("Also: Reuters, AFP")


def test_to_terminal_is_what_the_user_sees():
    html = render_alert(view())
    plain = to_terminal(html)
    assert plain == parse_telegram_html(html)
    assert "\x1b[1mISIS\x1b[0m" in to_terminal(html, ansi=True)
    assert "Read (https://now.example/a?x=1&y=2)" in to_terminal(html, show_links=True)


def test_digest_splits_and_drops_nothing():
    views = [view(title=f"Report number {i} " + "x" * 250) for i in range(60)]
    messages = render_digest(views)
    assert len(messages) > 1
    seen = []
    for m in messages:
        visible = parse_telegram_html(m)
        assert utf16_len(visible) <= 4096
        seen += [i for i in range(60) if f"Report number {i} " in visible]
    assert seen == list(range(60))


def test_geometry_helpers():
    assert round(haversine_km(AZAZ.lat, AZAZ.lon, KAFRAH.lat, KAFRAH.lon)) == 9
    assert compass(bearing_deg(AZAZ.lat, AZAZ.lon, KAFRAH.lat, KAFRAH.lon)) == "E"
    assert compass(bearing_deg(0, 0, -1, 0)) == "S"
    assert describe_place(KAFRAH, [AZAZ, KAFRAH]) == "Kafrah — 9 km E of Azaz"
    assert describe_place(AZAZ, [AZAZ]) == "Azaz"
