"""The alert card (issue 14): digest entries carry their severity and a line of snippet, and the
mute button under an alert names what it mutes."""

from __future__ import annotations

import asyncio

from fakebotapi import parse_telegram_html
from sqlalchemy import select
from support.delivery import alert, drain, make_match
from test_alerts_format import view

from alerts.format import render_digest
from alerts.outbox import Recipient, enqueue
from alerts.telegram import MAX_BUTTON_NAME, alert_buttons
from core.store import outbox, utcnow
from rules.types import Match


def test_digest_entries_show_severity_and_one_line_of_snippet():
    match = Match(rule_id="r", title="Islamic State near the Azaz corridor", severity="medium", hits=(),
                  snippet="Fighters stormed\nKafrah at dawn, residents said.", marks=((17, 23),))
    [message] = render_digest([view(match=match, rule_title=match.title, severity="medium")])
    visible = parse_telegram_html(message)
    entry = visible.split("\n\n")[1]
    assert entry.splitlines()[0].startswith("🟠 MEDIUM · ")
    snippet_line = entry.splitlines()[2]
    assert "Kafrah at dawn" in snippet_line and "\n" not in snippet_line
    assert "<i>" in message and "<b>Kafrah</b>" in message  # the mark survives the one-lining


def test_digest_snippet_is_one_short_line_even_for_a_long_text():
    match = Match(rule_id="r", title="T", severity="high", hits=(), snippet="word " * 200, marks=())
    [message] = render_digest([view(match=match, rule_title="T", severity="high")])
    line = parse_telegram_html(message).split("\n\n")[1].splitlines()[2]
    assert len(line) <= 141 and line.endswith("…")


def test_mute_button_names_the_place_group_or_rule():
    place, rule, unnamed = alert_buttons("place:kafrah", "Kafrah"), alert_buttons("r1", "Shelling of Marea"), \
        alert_buttons("r1")
    assert place[0].text == "🔕 Mute Kafrah 24 h" and place[0].data == "mute:place:kafrah"
    assert rule[0].text == "🔕 Mute Shelling of Marea 24 h"
    assert unnamed[0].text == "🔕 Mute this rule 24 h"
    long = alert_buttons("r2", "x" * 100)[0].text
    assert len(long) <= len("🔕 Mute  24 h") + MAX_BUTTON_NAME and "…" in long


def test_sent_alerts_carry_the_named_mute_button(sqlite_store, fake):
    store = sqlite_store
    alert(store, ["71"], match=make_match())  # a rule subscription: the rule's title
    with store.begin() as conn:  # a place subscription's alert: the place's name
        article_id = conn.execute(select(outbox.c.article_id)).scalar_one()
        enqueue(conn, article_id=article_id, story_id="place-story", outlet="NOW Lebanon",
                recipients=[Recipient("72", "place:kafrah", None, label="Kafrah")], match_ids={},
                first_seen=utcnow(), now=utcnow())
    asyncio.run(drain(store, fake))
    rule_button = fake.messages(71)[0].reply_markup["inline_keyboard"][0][0]["text"]
    place_button = fake.messages(72)[0].reply_markup["inline_keyboard"][0][0]["text"]
    title = "Islamic State near the Azaz corridor"  # over the 32 characters a button shows of it
    assert rule_button == f"🔕 Mute {title[:MAX_BUTTON_NAME - 1].rstrip()}… 24 h"
    assert place_button == "🔕 Mute Kafrah 24 h"
