"""The bot, driven end to end: python-telegram-bot long-polls the fake Bot API server, users
"type" commands and press buttons there, and we assert what the bot answered and stored."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import pytest
import telegram.ext._aioratelimiter as ptb_ratelimiter
from fakebotapi import DEFAULT_TOKEN, FakeBotAPI
from sqlalchemy import insert, select
from support.bot import ADMIN, GROUP, USER, Harness, drive, generous_fake
from support.clock import FakeClock, VirtualAsyncio

from alerts import subscriptions as subs
from alerts.bot import SUBSCRIBER_COMMANDS, _webhook_args
from core.store import articles, chats, crawl_failures, outbox, rule_mutes, sources, utcnow


@pytest.fixture
def fake():
    with generous_fake() as server:
        yield server


def test_subscriber_commands(fake, store):
    async def scenario(bot: Harness) -> None:
        # The command menu is registered on start.
        assert [c["command"] for c in fake.commands] == [name for name, _ in SUBSCRIBER_COMMANDS]

        reply = await bot.say("/start")
        assert "Lookout" in reply.visible and "/watch <place | group | rule>" in reply.visible
        assert "watches nothing yet" in reply.visible

        reply = await bot.say("/watch Azaz")
        assert "Watching place Azaz (azaz)" in reply.visible
        assert bot.subs() == [("place", "azaz", None)]
        assert "already watches" in (await bot.say("/watch A'zaz")).visible  # alias, same place

        reply = await bot.say("/watch Azzaz")
        assert "Unknown place, group or rule “Azzaz”" in reply.visible
        assert "Did you mean: azaz" in reply.visible
        assert bot.subs() == [("place", "azaz", None)]

        assert "Watching group Islamic State (isis)" in (await bot.say("/watch ISIS")).visible
        assert "rule Islamic State near the Azaz corridor" in (await bot.say("/watch is-near-azaz")).visible
        assert "within 15 km of Kafrah" in (await bot.say("/near Kafrah 15")).visible
        assert "is a group, not a place" in (await bot.say("/near ISIS 15")).visible
        assert (await bot.say("/near Azaz far")).visible.startswith("Usage: /near")

        listing = (await bot.say("/list")).visible
        for key in ("place:azaz", "group:isis", "is-near-azaz", "near:kafrah"):
            assert key in listing
        assert "within 15 km" in listing

        assert "Stopped watching group" in (await bot.say("/unwatch Daesh")).visible
        assert "Stopped watching near" in (await bot.say("/unwatch near:kafrah")).visible
        assert "does not watch" in (await bot.say("/unwatch Manbij")).visible
        assert (await bot.say("/unwatch")).visible.startswith("Usage: /unwatch")
        assert bot.subs() == [("place", "azaz", None), ("rule", "is-near-azaz", None)]

        before = utcnow()
        assert "Muted until" in (await bot.say("/mute 2h")).visible
        muted_until = bot.chat().muted_until
        assert timedelta(hours=2) <= muted_until - before <= timedelta(hours=2, minutes=1)
        assert (await bot.say("/mute forever")).visible.startswith("Usage: /mute")
        assert "Unmuted" in (await bot.say("/unmute")).visible
        assert bot.chat().muted_until is None

        assert "Quiet hours 23:00-07:00 UTC" in (await bot.say("/quiet 23:00-07:00")).visible
        assert (bot.chat().quiet_start, bot.chat().quiet_end) == ("23:00", "07:00")
        assert "Usage: /quiet" in (await bot.say("/quiet 25:00-07:00")).visible
        assert "Daily digest" in (await bot.say("/digest daily 08:00")).visible
        assert (bot.chat().digest, bot.chat().digest_at) == ("daily", "08:00")
        assert (await bot.say("/digest weekly")).visible.startswith("Usage: /digest")
        assert "Map pins on" in (await bot.say("/pins on")).visible
        assert bot.chat().pins is True

        listing = (await bot.say("/help")).visible
        assert "Quiet hours 23:00-07:00 UTC" in listing and "Digest: daily at 08:00 UTC" in listing

        assert "Removed 2 subscription(s)" in (await bot.say("/stop")).visible
        assert bot.subs() == []
        assert "Unknown command" in (await bot.say("/frobnicate")).visible

    drive(fake, store, scenario)


def test_group_chats_and_paused_chats_resume(fake, sqlite_store):
    with sqlite_store.begin() as conn:
        subs.add(conn, str(USER), "place", "azaz")
        subs.set_paused(conn, str(USER), True, "403: bot was blocked by the user")

    async def scenario(bot: Harness) -> None:
        # In groups commands come addressed to the bot.
        reply = await bot.say("/watch@lookout_test_bot Manbij", chat_id=GROUP, chat_title="Newsroom <desk>")
        assert "Watching place Manbij" in reply.visible
        row = bot.chat(GROUP)
        assert (row.kind, row.title) == ("group", "Newsroom <desk>")
        # A user who unblocked the bot and writes again is resumed.
        assert "place Azaz" in (await bot.say("/start")).visible
        assert bot.chat().paused is False and bot.chat().paused_reason is None

    drive(fake, sqlite_store, scenario)


def test_group_upgraded_to_supergroup_keeps_its_subscriptions(fake, sqlite_store):
    supergroup = -1009876
    with sqlite_store.begin() as conn:
        subs.add(conn, str(GROUP), "place", "manbij")

    async def scenario(bot: Harness) -> None:
        # Telegram's service message in the old group, naming the new chat id.
        fake.inject_update({"message": {
            "message_id": 900, "date": int(time.time()),
            "chat": {"id": GROUP, "type": "group", "title": "Newsroom"},
            "from": {"id": 1001, "is_bot": False, "first_name": "admin"},
            "migrate_to_chat_id": supergroup,
        }})
        await bot.wait(lambda: bot.subs(supergroup) == [("place", "manbij", None)])
        assert bot.subs(GROUP) == []

    drive(fake, sqlite_store, scenario)


def test_replies_escape_user_input(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        reply = await bot.say("/watch <b>Azaz & co</b>")
        # Sent as HTML (the fake parsed it), shown to the user as typed.
        assert "“<b>Azaz & co</b>”" in reply.visible
        assert "&lt;b&gt;" in reply.text

    drive(fake, sqlite_store, scenario)


def test_buttons_under_alerts(fake, sqlite_store):
    with sqlite_store.begin() as conn:
        subs.add(conn, str(USER), "rule", "is-near-azaz")
        subs.add(conn, str(USER), "place", "azaz")

    async def scenario(bot: Harness) -> None:
        before = utcnow()
        answer = await bot.press("mute:is-near-azaz")
        assert "Muted is-near-azaz" in answer["text"] and "24 h" in answer["text"]
        with sqlite_store.connect() as conn:
            mutes = conn.execute(select(rule_mutes)).all()
        assert [(m.chat_id, m.alert_key) for m in mutes] == [(str(USER), "is-near-azaz")]
        assert timedelta(hours=24) <= mutes[0].until - before <= timedelta(hours=24, minutes=1)

        answer = await bot.press("unwatch:place:azaz")
        assert answer["text"] == "Unwatched place:azaz."
        assert bot.subs() == [("rule", "is-near-azaz", None)]
        assert "no longer watches" in (await bot.press("unwatch:place:azaz"))["text"]
        assert "no longer works" in (await bot.press("explode:now"))["text"]

        # Keys too long for callback_data come as a hash (alerts.telegram.callback_data).
        long_rule = "is-near-azaz-" + "x" * 80
        with sqlite_store.begin() as conn:
            subs.add(conn, str(USER), "near", long_rule, 5)
        from alerts.telegram import callback_data

        data = callback_data("unwatch", f"near:{long_rule}")
        assert data.startswith("unwatch:#")
        assert "Unwatched near:" in (await bot.press(data))["text"]
        assert bot.subs() == [("rule", "is-near-azaz", None)]
        assert "no longer works" in (await bot.press("mute:#0000"))["text"]

    drive(fake, sqlite_store, scenario)


def test_admin_commands(fake, sqlite_store):
    now = utcnow()
    with sqlite_store.begin() as conn:
        conn.execute(insert(sources), [
            {"name": "nowlebanon", "kind": "feed", "url": "https://example.org/feed", "last_result": "ok",
             "last_error": None, "last_crawl_at": now},
            {"name": "enab", "kind": "sitemap", "url": "https://example.org/sitemap.xml",
             "last_result": "failed", "last_error": "HTTP 503", "last_crawl_at": now},
        ])
        conn.execute(insert(crawl_failures), [
            {"source": "enab", "url": "https://example.org/a", "reason": "http-503", "at": now},
        ])
        conn.execute(insert(chats), [{"chat_id": "1", "kind": "private", "created_at": now}])
        # Three pending alerts need an article row to point at.
        article_id = conn.execute(insert(articles).values(
            url="https://example.org/a1", url_hash="h1", source="enab", title="t", fetched=now,
            first_seen=now, text="", content_hash="c", story_id="s1",
        )).inserted_primary_key[0]
        conn.execute(insert(outbox), [
            {"chat_id": "1", "story_id": f"s{i}", "alert_key": "r", "article_id": article_id,
             "state": "pending", "created_at": now, "updated_at": now} for i in range(3)
        ])
    crawled: list[str] = []

    async def on_crawl(source: str) -> str:
        crawled.append(source)
        return f"Crawl of {source} queued."

    async def scenario(bot: Harness) -> None:
        for command in ("/status", "/sources", "/crawl enab", "/reload"):
            reply = await bot.say(command)  # USER is not an admin
            assert reply.visible == "Not allowed."
        assert crawled == []

        status = (await bot.say("/status", chat_id=ADMIN)).visible
        assert "Queue: 3 pending" in status
        assert "Sources: 2, 1 with problems" in status and "enab: failed HTTP 503" in status
        assert "http-503 https://example.org/a" in status
        assert DEFAULT_TOKEN not in status and DEFAULT_TOKEN.split(":")[1] not in status

        listing = (await bot.say("/sources", chat_id=ADMIN)).visible
        assert "nowlebanon feed" in listing and "enab sitemap" in listing

        assert (await bot.say("/crawl enab", chat_id=ADMIN)).visible == "Crawl of enab queued."
        assert crawled == ["enab"]
        assert (await bot.say("/crawl", chat_id=ADMIN)).visible.startswith("Usage: /crawl")
        assert "Reloading is not available" in (await bot.say("/reload", chat_id=ADMIN)).visible

    drive(fake, sqlite_store, scenario, on_crawl=on_crawl)


def test_reload_and_crawl_defaults(fake, sqlite_store):
    def on_reload() -> str:
        raise ValueError("rules/examples/x.yaml:3:5: unknown key 'sevirity'")

    async def scenario(bot: Harness) -> None:
        assert "not available outside the service" in (await bot.say("/crawl enab", chat_id=ADMIN)).visible
        reply = await bot.say("/reload", chat_id=ADMIN)
        assert reply.visible == "Failed: rules/examples/x.yaml:3:5: unknown key 'sevirity'"
        for command in ("/status", "/sources"):  # no reports given: not the service
            assert "not available outside the service" in (await bot.say(command, chat_id=ADMIN)).visible

    drive(fake, sqlite_store, scenario, on_reload=on_reload, reports=None)


def test_reply_waits_out_a_flood_wait(sqlite_store, monkeypatch):
    # In virtual time: PTB's AIORateLimiter waits a 429 out with asyncio.sleep(retry_after + 0.1)
    # (it takes no clock), so its module's asyncio is the fake clock's; the fake Bot API judges
    # the flood wait on the same clock, so a retry before retry_after would be refused again.
    clock = FakeClock()
    monkeypatch.setattr(ptb_ratelimiter, "asyncio", VirtualAsyncio(clock))
    with FakeBotAPI(clock=clock) as fake:
        fake.force_429(USER, retry_after=1)

        async def scenario(bot: Harness) -> None:
            started = clock()
            reply = await bot.say("/watch Azaz")
            assert "Watching place Azaz" in reply.visible
            assert clock() - started >= 0.9  # waited out retry_after, then retried
            assert reply.at - started >= 1.0  # accepted no sooner, on the fake's (virtual) clock
            assert len(clock.slept) == 1 and clock.slept[0] >= 1.0  # PTB's one wait, in virtual time
            assert fake.count_429 == 1 and len(fake.messages(USER)) == 1

        drive(fake, sqlite_store, scenario)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_webhook_mode_when_webhook_url_is_set(fake, sqlite_store):
    port = _free_port()
    hook = f"http://127.0.0.1:{port}/telegram/hook"
    telegram = {"webhook_url": hook, "webhook_listen": f"127.0.0.1:{port}"}

    def post(update: dict[str, Any], secret: str | None) -> int:
        request = urllib.request.Request(hook, data=json.dumps(update).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        if secret:
            request.add_header("X-Telegram-Bot-Api-Secret-Token", secret)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def update(update_id: int, text: str) -> dict[str, Any]:
        return {"update_id": update_id, "message": {
            "message_id": update_id, "date": int(time.time()), "text": text,
            "chat": {"id": USER, "type": "private", "first_name": "t"},
            "from": {"id": USER, "is_bot": False, "first_name": "t"},
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        }}

    async def main() -> None:
        async with Harness(fake, sqlite_store, telegram=telegram) as bot:
            assert fake.webhook["url"] == hook
            assert not any(method == "getUpdates" for method, _ in fake.calls)
            secret = _webhook_args(bot.config.telegram)["secret_token"]
            assert DEFAULT_TOKEN not in secret
            # A forged post (no secret) is refused and does nothing.
            assert await asyncio.to_thread(post, update(1, "/watch Azaz"), None) == 403
            assert await asyncio.to_thread(post, update(2, "/watch Azaz"), secret) == 200
            await bot.wait(lambda: len(fake.messages(USER)) == 1)
            assert "Watching place Azaz" in fake.messages(USER)[0].visible
            assert bot.subs() == [("place", "azaz", None)]

    asyncio.run(main())


def test_long_input_echoed_back_stays_valid_html(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        reply = await bot.say("/watch " + "&<" * 1500)
        assert reply.visible.startswith("Unknown place, group or rule “&<&<")  # not "Sorry, ..."
        assert len(reply.visible) < 400

    drive(fake, sqlite_store, scenario)


def test_clipped_replies_never_split_a_tag_or_entity():
    from fakebotapi import parse_telegram_html

    from alerts.format import REPLY_BUDGET, clip_reply

    for text in ("<b>" + "&amp;" * 1000 + "</b>", "x" * 3990 + "&lt;&gt;" * 10, "<b>a</b>\n" * 500):
        clipped = clip_reply(text)
        assert len(clipped) <= REPLY_BUDGET
        assert parse_telegram_html(clipped).rstrip("…\n")
