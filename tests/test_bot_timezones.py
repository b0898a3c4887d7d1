"""Chats in their own time zone, end to end: ``/tz`` sets and shows it, quiet hours, digests and
every time the bot shows are local and name the zone, and out-of-range arguments get a usage
answer. The release times themselves (daylight saving included) are tests/test_chatprefs.py's."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.bot import USER, Harness, drive, generous_fake

from alerts import chatprefs
from alerts import subscriptions as subs
from alerts.prefcommands import PREF_COMMANDS, PrefCommands
from core.store import utcnow

ISTANBUL, BERLIN = "Europe/Istanbul", "Europe/Berlin"


@pytest.fixture
def fake():
    with generous_fake() as server:
        yield server


def local(at: datetime, zone: str) -> str:
    return f"{at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}"


def test_tz_sets_shows_suggests_and_resets(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        shown = (await bot.say("/tz")).visible
        assert shown.startswith("Time zone: UTC, local time now ") and "Usage: /tz" in shown

        wrong = (await bot.say("/tz europe/istanbull")).visible
        assert "Unknown time zone 'europe/istanbull'" in wrong and "Did you mean: Europe/Istanbul" in wrong
        assert bot.chat() is None or bot.chat().tz is None

        await bot.say("/quiet 23:00-07:00")
        before = utcnow()
        reply = (await bot.say("/tz EUROPE/istanbul")).visible
        assert reply.startswith("Time zone set to Europe/Istanbul (UTC+03:00), local time now ")
        assert "Now in this zone: Quiet hours 23:00-07:00 Europe/Istanbul." in reply
        assert bot.chat().tz == ISTANBUL

        shown = (await bot.say("/tz")).visible
        clock = re.search(r"local time now (\d{4}-\d\d-\d\d \d\d:\d\d)", shown)
        assert shown.startswith("Time zone: Europe/Istanbul (UTC+03:00)") and clock
        shown_at = datetime.strptime(clock.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo(ISTANBUL))
        assert before - timedelta(minutes=1) <= shown_at <= utcnow()

        assert "rather than an offset" in (await bot.say("/tz UTC+3")).visible
        assert bot.chat().tz == ISTANBUL  # a refused zone changes nothing

        assert (await bot.say("/tz utc")).visible.startswith("Time zone set to UTC, local time now")
        assert bot.chat().tz is None
        assert "Quiet hours 23:00-07:00 UTC" in (await bot.say("/list")).visible

    drive(fake, sqlite_store, scenario)


def test_quiet_digest_and_mute_answer_in_local_time(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        await bot.say("/tz Europe/Istanbul")
        reply = (await bot.say("/quiet 11pm-7am")).visible
        assert reply.startswith("Quiet hours 23:00-07:00 Europe/Istanbul: alerts in that time arrive as one "
                                "digest at 07:00.")
        assert (bot.chat().quiet_start, bot.chat().quiet_end, bot.chat().tz) == ("23:00", "07:00", ISTANBUL)

        reply = (await bot.say("/digest daily 8am")).visible
        assert reply == "Daily digest: alerts are collected into one message at 08:00 Europe/Istanbul."
        assert (bot.chat().digest, bot.chat().digest_at) == ("daily", "08:00")

        reply = (await bot.say("/mute 2h")).visible
        until = bot.chat().muted_until
        assert reply.startswith(f"Muted until {local(until, ISTANBUL)}. ")

        with bot.store.begin() as conn:
            subs.mute_rule(conn, str(USER), "is-near-azaz", until + timedelta(hours=1))
        listing = (await bot.say("/list")).visible
        assert f"Muted until {local(until, ISTANBUL)} (" in listing
        assert "Quiet hours 23:00-07:00 Europe/Istanbul" in listing
        assert "Digest: daily at 08:00 Europe/Istanbul" in listing
        assert f"Muted is-near-azaz until {local(until + timedelta(hours=1), ISTANBUL)}" in listing
        assert "Time zone: Europe/Istanbul (UTC+03:00)" in listing

    drive(fake, sqlite_store, scenario)


def test_a_zone_given_with_quiet_or_digest_sets_the_chats_zone(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        reply = (await bot.say("/quiet 23:00-07:00 Europe/Istanbul")).visible
        assert reply.startswith("Quiet hours 23:00-07:00 Europe/Istanbul: ")
        assert "This chat's time zone is now Europe/Istanbul." in reply
        assert bot.chat().tz == ISTANBUL

        assert (await bot.say("/quiet 23-7")).visible.startswith("Quiet hours 23:00-07:00 Europe/Istanbul")

        reply = (await bot.say("/digest daily 08:00 europe/berlin")).visible
        assert reply.startswith("Daily digest: alerts are collected into one message at 08:00 Europe/Berlin.")
        assert bot.chat().tz == BERLIN and bot.chat().digest_at == "08:00"

        wrong = (await bot.say("/quiet 22:00-06:00 Europe/Berlinn")).visible
        assert "Did you mean: Europe/Berlin" in wrong
        assert (bot.chat().quiet_start, bot.chat().tz) == ("23:00", BERLIN)  # nothing changed

        assert "Usage: /quiet" in (await bot.say("/quiet 25:00-07:00 Europe/Berlin")).visible
        assert (await bot.say("/quiet off UTC")).visible == "Quiet hours off. This chat's time zone is now UTC."
        assert (bot.chat().quiet_start, bot.chat().tz) == (None, None)

    drive(fake, sqlite_store, scenario)


def test_out_of_range_arguments_get_the_usage_answer(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        for huge in ("99999999999d", "9" * 40, "9" * 5000 + "w", "400d"):
            reply = (await bot.say(f"/mute {huge}")).visible
            assert "Usage: /mute" in reply, reply
        assert bot.chat() is None or bot.chat().muted_until is None
        for bad in ("/quiet 99:99-07:00", "/quiet 13pm-7am", "/quiet " + "1" * 3000 + "-7"):
            assert "Usage: /quiet" in (await bot.say(bad)).visible
        for bad in ("/digest daily 24:00", "/digest daily 99999999999", "/digest weekly"):
            assert "Usage: /digest" in (await bot.say(bad)).visible
        assert "Unknown time zone" in (await bot.say("/tz " + "x" * 3000)).visible
        assert "Unknown time zone" in (await bot.say("/tz ../../etc/passwd")).visible
        assert bot.chat() is None or bot.chat().tz is None
        # The bot still answers: nothing above raised.
        assert "Muted until" in (await bot.say("/mute 365d")).visible

    drive(fake, sqlite_store, scenario)


def test_chats_carry_their_zone_to_the_dispatcher(store):
    """``get_chat`` and ``chats_by_id`` (what the dispatcher loads) give prefs with the zone, so
    ``release_time(chat.prefs, now)`` is local; a group moved to a supergroup keeps it."""
    now = datetime(2026, 3, 28, 12, tzinfo=UTC)
    with store.begin() as conn:
        subs.set_chat_prefs(conn, "-5", digest="daily", digest_at="08:00", tz=BERLIN)
        subs.set_chat_prefs(conn, "7", quiet_start="23:00", quiet_end="07:00")
        with pytest.raises(ValueError, match="unknown time zone"):
            subs.set_chat_prefs(conn, "7", tz="Mars/Base")
    with store.begin() as conn:
        loaded = subs.chats_by_id(conn, ["-5", "7"])
        assert loaded["-5"].prefs.tz == BERLIN and loaded["7"].prefs.tz is None
        assert chatprefs.release_time(loaded["-5"].prefs, now) == datetime(2026, 3, 29, 6, tzinfo=UTC)  # CEST
        assert chatprefs.release_time(loaded["7"].prefs, datetime(2026, 3, 28, 23, tzinfo=UTC)) == (
            datetime(2026, 3, 29, 7, tzinfo=UTC))
        subs.move_chat(conn, "-5", "-1005", now)
        moved = subs.get_chat(conn, "-1005")
        assert moved is not None and moved.prefs.tz == BERLIN
        subs.set_chat_prefs(conn, "-1005", digest="off")  # KEEP leaves the zone alone
        assert subs.get_chat(conn, "-1005").tz == BERLIN  # type: ignore[union-attr]
        subs.set_chat_prefs(conn, "-1005", tz=None)
        assert subs.get_chat(conn, "-1005").tz is None  # type: ignore[union-attr]


def test_pref_commands_menu_lists_every_handler_within_telegram_limits():
    names = [name for name, _ in PREF_COMMANDS]
    assert "tz" in names
    handlers = PrefCommands.handlers(PrefCommands.__new__(PrefCommands))
    assert sorted(names) == sorted(handlers)
    for name, text in PREF_COMMANDS:
        assert re.fullmatch(r"[a-z0-9_]{1,32}", name) and 1 <= len(text) <= 256
    assert "local time" in dict(PREF_COMMANDS)["quiet"] and "local time" in dict(PREF_COMMANDS)["digest"]
    assert "local time" in chatprefs.QUIET_USAGE and "local time" in chatprefs.DIGEST_USAGE
