"""A newcomer finding their way in the bot: what can be watched (/places, /groups, /rules, paged
with "Watch" buttons), a greeting with examples from the loaded rules, the stories /watch shows
from the store (alerts.discovery), did-you-mean on /unwatch, /list, the plain-text hint, and usage
answers for out-of-range arguments.

The bot runs end to end against the fake Bot API (tests/support/bot.py); the recent-story
queries are also checked on their own against each store backend."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.bot import USER, Harness, drive, generous_fake

from alerts import discovery
from alerts import subscriptions as subs
from alerts.keys import SubscriptionKind
from alerts.subscribercommands import PAGE_SIZE, SUBSCRIBER_COMMANDS, watch_data
from core.store import articles, insert_ignore, matches, url_hash
from rules import load_ruleset
from rules.types import Match, PlaceRef, Severity, TermHit

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
LONG_ID = "a-place-whose-id-is-far-too-long-for-telegram-callback-data-" + "x" * 20
SORRY = "something went wrong"


@pytest.fixture
def fake():
    with generous_fake() as server:
        yield server


def ruleset_from(yaml_text: str):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.yaml"
        path.write_text(yaml_text, encoding="utf-8")
        return load_ruleset([path])


def many_places_ruleset(n: int = 23):
    """``n`` places p01.. (named "Place 01"..), one with an id over callback_data's 64 bytes."""
    places = "".join(f"  p{i:02d}: {{name: Place {i:02d}, at: [36.{i:02d}, 37.0]}}\n" for i in range(1, n + 1))
    places += f"  {LONG_ID}: {{name: Zz Long, at: [36.5, 37.5]}}\n"
    return ruleset_from(f"""
places:
{places}groups:
  hts: {{name: Hayat Tahrir al-Sham, aliases: [HTS]}}
rules:
  - id: hts-in-p01
    title: HTS in Place 01
    severity: low
    all: [{{group: hts}}, {{place: p01}}]
""")


async def pressed(bot: Harness, data: str, message_id: int | None = None) -> dict[str, Any]:
    """Press a button (under message ``message_id`` when given); the answer to the press."""
    fake = bot.fake
    before = len(fake.callback_answers)
    fake.inject_callback(USER, data, message_id=message_id)
    await bot.wait(lambda: len(fake.callback_answers) > before)
    return fake.callback_answers[before]


def buttons(reply_markup: dict[str, Any] | None) -> list[tuple[str, str]]:
    rows = (reply_markup or {}).get("inline_keyboard", [])
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


def edits_of(fake, message_id: int) -> list[dict[str, Any]]:
    return [p for m, p in fake.calls if m == "editMessageText" and int(p.get("message_id", 0)) == message_id]


# --- listings ---------------------------------------------------------------------------------


def test_places_paged_with_watch_buttons(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        bot.ruleset = many_places_ruleset()  # 24 places: three pages
        reply = await bot.say("/places")
        assert reply.visible.startswith("Places 1–10 of 24, page 1/3")
        assert "Place 01 p01" in reply.visible and "Place 11" not in reply.visible
        first = buttons(reply.reply_markup)
        assert first[:2] == [("Watch Place 01", "watch:place:p01"), ("Watch Place 02", "watch:place:p02")]
        assert len([b for b in first if b[1].startswith("watch:")]) == PAGE_SIZE
        assert ("Next ›", "page:places:2") in first and not any("Previous" in t for t, _ in first)

        # A page press edits the listing in place, with that page's buttons.
        answer = await pressed(bot, "page:places:3", message_id=reply.message_id)
        assert "text" not in answer  # answered silently
        assert fake.messages(USER)[-1].message_id == reply.message_id  # no new message
        edit = edits_of(fake, reply.message_id)[-1]
        assert "<b>Places</b> 21–24 of 24, page 3/3" in edit["text"] and "Place 23" in edit["text"]
        markup = edit["reply_markup"]
        third = buttons(json.loads(markup) if isinstance(markup, str) else markup)
        assert ("‹ Previous", "page:places:2") in third and not any(t.startswith("Next") for t, _ in third)
        # The last place's id does not fit callback_data: it travels as a hash.
        long_data = dict(third)["Watch Zz Long"]
        assert long_data.startswith("watch:place:#") and len(long_data.encode()) <= 64
        assert all(len(data.encode()) <= 64 for _, data in third)

        # The same page again changes nothing (Telegram refuses such an edit): still an answer,
        # and no error reply.
        edits = len(edits_of(fake, reply.message_id))
        await pressed(bot, "page:places:3", message_id=reply.message_id)
        assert len(edits_of(fake, reply.message_id)) == edits + 1  # tried, refused by "Telegram"
        assert all(SORRY not in m.visible for m in fake.messages(USER))

        # A page past the end (the rules shrank since) shows the last page.
        await pressed(bot, "page:places:99", message_id=reply.message_id)
        assert "page 3/3" in edits_of(fake, reply.message_id)[-1]["text"]
        await pressed(bot, "page:places:1", message_id=reply.message_id)
        assert fake.messages(USER)[-1].edits[-1].startswith("<b>Places</b> 1–10 of 24, page 1/3")

        # A page whose message is gone: a pointer to a fresh listing, not an error reply.
        assert "send /places again" in (await pressed(bot, "page:places:2", message_id=987654))["text"]
        assert "no longer works" in (await pressed(bot, "page:nothing:1"))["text"]
        assert "no longer works" in (await pressed(bot, "page:places:x"))["text"]

        # Watch buttons subscribe the chat; the answer says what happened.
        assert "Watching place Place 01" in (await pressed(bot, "watch:place:p01"))["text"]
        assert "already watches place Place 01" in (await pressed(bot, "watch:place:p01"))["text"]
        assert "Watching place Zz Long" in (await pressed(bot, long_data))["text"]
        assert "no longer works" in (await pressed(bot, "watch:place:atlantis"))["text"]
        assert "no longer works" in (await pressed(bot, "watch:place:#0000"))["text"]
        assert "no longer works" in (await pressed(bot, "watch:near:p01"))["text"]
        assert bot.subs() == [("place", LONG_ID, None), ("place", "p01", None)]
        assert all(SORRY not in m.visible for m in fake.messages(USER))

    drive(fake, sqlite_store, scenario)


def test_groups_and_rules_listings(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        reply = await bot.say("/groups")
        assert reply.visible.startswith("Groups 1–1 of 1")
        assert "Islamic State isis · also ISIS, Daesh" in reply.visible
        assert buttons(reply.reply_markup) == [("Watch Islamic State", "watch:group:isis")]  # one page: no paging

        reply = await bot.say("/rules")
        assert "🔴 Islamic State near the Azaz corridor is-near-azaz" in reply.visible
        assert "🟠 Clashes in Manbij manbij-clashes" in reply.visible
        assert [d for _, d in buttons(reply.reply_markup)] == ["watch:rule:is-near-azaz", "watch:rule:manbij-clashes"]
        assert "Watching rule Clashes in Manbij" in (await pressed(bot, "watch:rule:manbij-clashes"))["text"]
        assert "Watching group Islamic State" in (await pressed(bot, "watch:group:isis"))["text"]
        assert bot.subs() == [("group", "isis", None), ("rule", "manbij-clashes", None)]

        bot.ruleset = ruleset_from("places:\n  azaz: {name: Azaz, at: [36.5, 37.0]}\n")
        assert "No groups are defined in the loaded rules" in (await bot.say("/groups")).visible

    drive(fake, sqlite_store, scenario)


def test_watch_data_fits_callback_limits():
    assert watch_data(SubscriptionKind.PLACE, "azaz") == "watch:place:azaz"
    long = watch_data(SubscriptionKind.RULE, "r" * 60)
    assert long.startswith("watch:rule:#") and len(long.encode()) <= 64
    assert long != watch_data(SubscriptionKind.RULE, "r" * 61)


# --- greeting and help ------------------------------------------------------------------------


def test_start_greets_with_examples_from_the_rules_and_help_lists_commands(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        start = (await bot.say("/start")).visible
        for example in ("/watch Azaz", "/watch Islamic State", "/watch is-near-azaz", "/near Azaz 15"):
            assert example in start
        assert "/places, /groups, /rules" in start

        help_text = (await bot.say("/help")).visible
        assert help_text != start and "/watch Islamic State" not in help_text
        for name, description in SUBSCRIBER_COMMANDS:
            assert f"/{name} — {description}\n" in help_text  # one line each
        assert "This chat watches nothing yet." in help_text

        # The examples come from whatever rules are loaded.
        bot.ruleset = many_places_ruleset(2)
        start = (await bot.say("/start")).visible
        assert "/watch Place 01" in start and "/watch Hayat Tahrir al-Sham" in start
        assert "/watch hts-in-p01" in start and "Azaz" not in start

    drive(fake, sqlite_store, scenario)


# --- /watch shows what to expect --------------------------------------------------------------


def store_article(conn, n: int, *, title: str, text: str = "", story: str | None = None,
                  outlet: str = "Enab Baladi", published: datetime | None = None) -> int:
    """Article ``n``, first seen ``n`` hours after T0 (so higher ``n`` is newer)."""
    url = f"https://news.example/{n}"
    conn.execute(articles.insert().values(
        url=url, url_hash=url_hash(url), source="test", outlet=outlet, title=title, text=text,
        fetched=T0, first_seen=T0 + timedelta(hours=n), published=published, content_hash="h",
        story_id=story or f"story-{n}",
    ))
    return conn.execute(select(articles.c.id).where(articles.c.url == url)).scalar_one()


def store_match(conn, article_id: int, rule_id: str, *, places: tuple[str, ...] = (),
                groups: tuple[str, ...] = (), hits: tuple[TermHit, ...] = ()) -> None:
    evidence = Match(rule_id=rule_id, title=rule_id, severity=Severity.HIGH, hits=hits,
                     places=tuple(PlaceRef(p, p.title(), 36.5, 37.0, watched=True) for p in places),
                     groups=groups)
    insert_ignore(conn, matches, {"article_id": article_id, "rule_id": rule_id,
                                  "evidence": evidence.to_dict(), "created_at": T0})


def fill_store(store) -> None:
    """Articles 1-7, oldest first, for the rule is-near-azaz, the place azaz and the group isis."""
    with store.begin() as conn:
        a1 = store_article(conn, 1, title="Old raid", text="ISIS near Azaz.")
        store_match(conn, a1, "is-near-azaz", places=("azaz",), groups=("isis",))
        a2 = store_article(conn, 2, title="Shelling of Kafrah", text="Daesh shelled Kafrah, west of Azaz.")
        store_match(conn, a2, "is-near-azaz", places=("kafrah",),  # azaz only as a hit
                    hits=(TermHit("place", "azaz", "Azaz", "text", 30, 34),))
        store_article(conn, 3, title="Market reopens", text="The market of Aazaz reopened.")  # alias, no match
        a4 = store_article(conn, 4, title="Clashes in Manbij", text="clashes")
        store_match(conn, a4, "manbij-clashes", places=("manbij",))
        store_article(conn, 5, title="Azazel returns", text="A film review.")  # not the word Azaz
        a6 = store_article(conn, 6, title="Raid <b>near</b> Azaz & Kafrah", text="ISIS again.",
                           published=datetime(2024, 4, 30, tzinfo=UTC))
        store_match(conn, a6, "is-near-azaz", places=("azaz",), groups=("isis",))
        a7 = store_article(conn, 7, title="Same raid, another outlet", story="story-6", outlet="SANA")
        store_match(conn, a7, "is-near-azaz", places=("azaz",))  # story 6 again: shown once


def titles(stories: list[discovery.RecentStory]) -> list[str]:
    return [s.title for s in stories]


def test_recent_stories_that_would_have_matched(store):
    fill_store(store)
    with store.connect() as conn:
        rule = discovery.recent_stories(conn, SubscriptionKind.RULE, "is-near-azaz")
        assert titles(rule) == ["Same raid, another outlet", "Shelling of Kafrah", "Old raid"]
        assert discovery.recent_stories(conn, SubscriptionKind.RULE, "is-near-azaz", limit=5)[-1].title == "Old raid"

        # A place: matches naming it (as a place or a hit), then articles whose text holds one of
        # its names as a word ("Aazaz" yes, "Azazel" no).
        place = discovery.recent_stories(conn, SubscriptionKind.PLACE, "azaz", ("Azaz", "Aazaz"), limit=5)
        assert titles(place) == ["Same raid, another outlet", "Market reopens", "Shelling of Kafrah", "Old raid"]
        assert [s.story_id for s in place][:1] == ["story-6"]

        group = discovery.recent_stories(conn, SubscriptionKind.GROUP, "isis", ("Islamic State", "ISIS", "Daesh"))
        assert titles(group) == ["Raid <b>near</b> Azaz & Kafrah", "Shelling of Kafrah", "Old raid"]
        assert discovery.recent_stories(conn, SubscriptionKind.PLACE, "p01", ("Place 01",)) == []
        assert discovery.recent_stories(conn, SubscriptionKind.RULE, "nothing") == []
        # An id's "_" is no LIKE wildcard.
        assert discovery.recent_stories(conn, SubscriptionKind.PLACE, "a_az", ()) == []


def test_watch_answers_with_recent_stories(fake, sqlite_store):
    fill_store(sqlite_store)

    async def scenario(bot: Harness) -> None:
        reply = await bot.say("/watch is-near-azaz")
        lines = reply.visible.splitlines()
        assert lines[0].startswith("Watching rule Islamic State near the Azaz corridor")
        assert lines[1] == "The last 3 stories it would have brought:"
        assert lines[2:] == [
            "• Same raid, another outlet — SANA, 1 May 2024",  # no published date: when stored
            "• Shelling of Kafrah — Enab Baladi, 1 May 2024",
            "• Old raid — Enab Baladi, 1 May 2024",
        ]
        assert '<a href="https://news.example/7">Same raid, another outlet</a>' in reply.text

        reply = await bot.say("/watch ISIS")
        assert "• Raid <b>near</b> Azaz & Kafrah — Enab Baladi, 30 Apr 2024" in reply.visible  # escaped
        assert "Raid &lt;b&gt;near&lt;/b&gt; Azaz &amp; Kafrah" in reply.text

        reply = await bot.say("/watch ISIS")  # again: still shows what to expect
        assert "already watches" in reply.visible and "The last 3 stories" in reply.visible

        reply = await bot.say("/watch Manbij")
        assert "The last story it would have brought:\n• Clashes in Manbij" in reply.visible
        # Kafrah: a match naming it, and an article whose title holds the name.
        reply = await bot.say("/watch Kafrah")
        assert reply.visible.splitlines()[1:] == [
            "The last 2 stories it would have brought:",
            "• Raid <b>near</b> Azaz & Kafrah — Enab Baladi, 30 Apr 2024",
            "• Shelling of Kafrah — Enab Baladi, 1 May 2024",
        ]

    drive(fake, sqlite_store, scenario)


def test_watch_says_when_nothing_stored_would_have_matched(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        reply = await bot.say("/watch Kafrah")
        assert "Watching place Kafrah" in reply.visible
        assert "No stored story would have matched yet: the next one will arrive here." in reply.visible

    drive(fake, sqlite_store, scenario)


# --- /unwatch, /list, plain text --------------------------------------------------------------


def test_unwatch_did_you_mean_among_the_chats_subscriptions(fake, sqlite_store):
    with sqlite_store.begin() as conn:
        subs.add(conn, str(USER), "place", "azaz")
        subs.add(conn, str(USER), "rule", "is-near-azaz")
        subs.add(conn, str(USER), "near", "kafrah", 10)

    async def scenario(bot: Harness) -> None:
        reply = await bot.say("/unwatch Azazz")
        assert reply.visible.startswith("This chat does not watch “Azazz”. Did you mean /unwatch place:azaz")
        reply = await bot.say("/unwatch is-near-azz")
        assert "Did you mean /unwatch is-near-azaz?" in reply.visible
        reply = await bot.say("/unwatch near Kafra")
        assert "Did you mean /unwatch near:kafrah?" in reply.visible
        reply = await bot.say("/unwatch Manbij")  # a real place, not watched, nothing close
        assert "does not watch “Manbij”. It watches near:kafrah, place:azaz, is-near-azaz." in reply.visible
        assert len(bot.subs()) == 3
        assert "Stopped watching place Azaz" in (await bot.say("/unwatch Azaz")).visible

    drive(fake, sqlite_store, scenario)


def test_list_shows_everything_the_chat_has_set(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        listing = (await bot.say("/list")).visible
        assert "This chat watches nothing." in listing and "Map pins under alerts: off" in listing
        await bot.say("/watch Azaz")
        await bot.say("/quiet 23:00-07:00")
        await bot.say("/digest hourly")
        await bot.say("/pins on")
        await pressed(bot, "mute:is-near-azaz")
        listing = (await bot.say("/list")).visible
        for line in ("place Azaz place:azaz", "Quiet hours 23:00-07:00", "Digest: hourly",
                     "Map pins under alerts: on"):
            assert line in listing
        assert any("Muted" in line and "is-near-azaz" in line for line in listing.splitlines())

    drive(fake, sqlite_store, scenario)


def test_plain_text_gets_a_one_line_hint(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        reply = await bot.say("daesh")
        assert reply.visible == "“daesh” is a group (Islamic State): send /watch daesh to watch it."
        assert (await bot.say("Azzaz")).visible.startswith("Did you mean /watch azaz?")
        assert (await bot.say("hello there")).visible == "Commands start with /: try /watch Azaz, /places or /help."
        assert "\n" not in (await bot.say("x" * 3000)).visible

    drive(fake, sqlite_store, scenario)


# --- usage answers, never an error ------------------------------------------------------------


@pytest.mark.parametrize(("command", "expected"), [
    ("/near Azaz 0", "The distance must be between 0 and 500 km. Usage: /near"),
    ("/near Azaz 501", "The distance must be between 0 and 500 km."),
    ("/near Azaz -3", "The distance must be between 0 and 500 km."),
    ("/near Azaz nan", "The distance must be between 0 and 500 km."),
    ("/near Azaz 1e999", "The distance must be between 0 and 500 km."),
    ("/near Azaz", "Usage: /near"),
    ("/near Azaz km", "Usage: /near"),
    ("/near " + "Azaz " * 400 + "15", "Unknown place “Azaz Azaz"),
    ("/watch " + "Azaz " * 400, "Unknown place, group or rule “Azaz Azaz"),
    ("/unwatch " + "Azaz " * 400, "This chat does not watch “Azaz Azaz"),
    ("/places 0", "There are 3 pages of places. Usage: /places [page]"),
    ("/places 4", "There are 3 pages of places."),
    ("/places 99999999999999999999", "Usage: /places [page]"),
    ("/places ²", "Usage: /places [page]"),
    ("/places 1 2", "Usage: /places [page]"),
    ("/groups two", "Usage: /groups [page]"),
    ("/groups 2", "There is 1 page of groups."),
    ("/rules -1", "Usage: /rules [page]"),
])
def test_out_of_range_arguments_get_a_usage_answer(fake, sqlite_store, command, expected):
    with sqlite_store.begin() as conn:
        subs.add(conn, str(USER), "place", "kafrah")

    async def scenario(bot: Harness) -> None:
        bot.ruleset = many_places_ruleset() if command.startswith("/places") else bot.ruleset
        reply = await bot.say(command)
        assert reply.visible.startswith(expected) or expected in reply.visible, reply.visible
        assert SORRY not in reply.visible and len(reply.visible) < 500

    drive(fake, sqlite_store, scenario)


def test_near_accepts_km_as_a_word(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        assert "within 15 km of Azaz" in (await bot.say("/near Azaz 15 km")).visible
        assert bot.subs() == [("near", "azaz", 15.0)]

    drive(fake, sqlite_store, scenario)
