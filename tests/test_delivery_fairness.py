"""Delivery that no slow chat holds up (issue 11), in virtual time against the fake Bot API.

A chat in a flood wait or with a long backlog is rescheduled and let go, never slept on: the
tests below run the service's dispatcher loop (``run_forever``) or ``drain`` with the rate
limiter, the dispatcher and the fake sharing one fake clock (tests/support/clock.py), so minutes
of Telegram's pacing take no real time and every send is judged, and stamped, at its moment."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

from fakebotapi import DEFAULT_TOKEN, FakeBotAPI
from sqlalchemy import select
from support.delivery import alert, config, drain, make_match, states, vdispatcher, vdrain

from alerts.ledger import ClaimOwner
from alerts.telegram import PTBSender
from core.store import chats, outbox, utcnow
from rules.types import PlaceRef

FLOODED = "500"  # a private chat Telegram holds in a 120 s flood wait
CHANNEL = "-1001"  # a channel with a backlog at 20 messages a minute
OTHERS = [str(600 + i) for i in range(10)]


def _titles(fake, chat: str, prefix: str) -> list[str]:
    """The article titles starting with ``prefix`` in the alerts the chat received, in order."""
    return [line for m in fake.messages(chat) for line in m.visible.splitlines() if line.startswith(prefix)]


def _pending_due(store, chat: str) -> list:
    with store.connect() as conn:
        return list(conn.execute(select(outbox.c.state, outbox.c.next_attempt_at)
                                 .where(outbox.c.chat_id == chat).order_by(outbox.c.id)))


def test_flood_wait_and_channel_backlog_hold_up_no_other_chat(store, vfake, clock):
    fake = vfake
    fake.force_429(chat_id=FLOODED, retry_after=120)
    alert(store, [FLOODED], title="Flooded first")
    alert(store, [FLOODED], title="Flooded second")
    for i in range(40):
        alert(store, [CHANNEL], title=f"Channel {i:02d}")

    async def scenario() -> dict[str, float]:
        async with PTBSender(DEFAULT_TOKEN, fake.url) as sender:
            dispatcher = vdispatcher(store, sender, clock)
            stop = asyncio.Event()
            loop = asyncio.create_task(dispatcher.run_forever(stop, poll=2.0))
            await clock.sleep(10)  # the flood wait has begun, the channel is sending
            assert dispatcher.flood_waits().keys() == {FLOODED}
            # The flooded chat's alerts are rescheduled to its wait's end, not claimed meanwhile.
            rows = _pending_due(store, FLOODED)
            assert [r.state for r in rows] == ["pending", "pending"]
            assert all(r.next_attempt_at >= clock.utcnow() + timedelta(seconds=105) for r in rows)
            queued = clock.now
            alert(store, OTHERS, title="New story")
            dispatcher.wake()
            while not all(fake.messages(c) for c in OTHERS):
                await clock.sleep(0.1)
            latency = max(fake.messages(c)[0].at for c in OTHERS) - queued
            while len(fake.messages(CHANNEL)) < 40 or len(fake.messages(FLOODED)) < 2:
                assert clock.elapsed() < 300, "the flooded chat and the channel never finished"
                await clock.sleep(1)
            stop.set()
            await loop
            return {"latency": latency}

    result = asyncio.run(scenario())
    assert result["latency"] < 2.0  # the new story reached all 10 chats at once
    # Each chat's order is kept: the flooded chat's first alert before its second, the channel's 40 in order.
    assert _titles(fake, FLOODED, "Flooded") == ["Flooded first", "Flooded second"]
    channel = _titles(fake, CHANNEL, "Channel")
    assert channel == sorted(channel) and len(channel) == 40
    flooded_at = [m.at for m in fake.messages(FLOODED)]
    assert flooded_at[0] - clock.start >= 120  # after the wait, not before
    assert fake.count_429 == 1  # the forced one: nothing else drew a 429
    assert set(states(store)) == {"sent"}


def test_a_backlog_longer_than_max_backlog_goes_out_as_a_digest(sqlite_store, vfake, clock):
    # Pacing does not depend on the store: the flood-wait test above runs the queries on PostgreSQL.
    store = sqlite_store
    fake = vfake
    cfg = config(max_backlog="30s")  # a group sends one message every 3 s
    for i in range(15):
        alert(store, ["-700"], title=f"Long queue {i:02d}")  # 45 s at the group's rate: folded
    for i in range(8):
        alert(store, ["-800"], title=f"Short queue {i}")  # 24 s: one message each
    summary = asyncio.run(vdrain(store, fake, clock, cfg))
    assert summary.folded == 15 and summary.sent == 23
    folded = fake.messages(-700)
    assert len(folded) == 1 and "Digest · 15 alerts" in folded[0].visible
    assert all(f"Long queue {i:02d}" in folded[0].visible for i in range(15))
    assert len(fake.messages(-800)) == 8
    assert fake.count_429 == 0
    assert set(states(store)) == {"sent"}


def test_bursts_to_one_private_chat_and_one_group_draw_no_429(sqlite_store, vfake, clock):
    # Pacing does not depend on the store: the flood-wait test above runs the queries on PostgreSQL.
    store = sqlite_store
    fake = vfake
    with store.begin() as conn:  # pins: each alert to this chat is followed by a map pin
        conn.execute(chats.insert().values(chat_id="900", kind="private", pins=True, created_at=utcnow()))
    place = PlaceRef("kafrah", "Kafrah", 36.60, 37.15, True)
    for i in range(8):
        alert(store, ["900"], story=f"burst-{i}", match=make_match(places=(place,)), outlet="NOW Lebanon")
    for i in range(25):
        alert(store, ["-901"], story=f"group-{i}", outlet="NOW Lebanon")
    asyncio.run(vdrain(store, fake, clock, max_wait=600))
    for i in range(8):  # syndicated copies: each sent alert is edited to add "Also: Reuters"
        alert(store, ["900"], story=f"burst-{i}", match=make_match(places=(place,)), outlet="Reuters")
    summary = asyncio.run(vdrain(store, fake, clock, max_wait=600))
    assert summary.edited == 8
    assert fake.count_429 == 0  # messages, pins and edits together kept each chat's limit
    private = sorted([m.at for m in fake.sent if m.chat_id == "900"])
    assert len(private) == 16  # 8 alerts, 8 pins
    assert all(b - a >= 0.99 for a, b in itertools.pairwise(private))
    group = [m.at for m in fake.messages(-901)]
    assert len(group) == 25 and all(b - a >= 2.99 for a, b in itertools.pairwise(group))


def test_drain_returns_by_its_deadline_and_says_what_waits(sqlite_store, vfake, clock):
    # Pacing does not depend on the store: the flood-wait test above runs the queries on PostgreSQL.
    store = sqlite_store
    fake = vfake
    fake.force_429(chat_id="1200", retry_after=3600)
    alert(store, ["1200"], title="Held an hour")
    for i in range(30):
        alert(store, ["-1300"], title=f"Paced {i:02d}")  # 90 s at a group's rate
    alert(store, ["1400", "1401"], title="Others")
    started = clock.now
    summary = asyncio.run(vdrain(store, fake, clock, max_wait=20))
    assert clock.now - started <= 20 + 0.5  # by the deadline (and the request in flight then)
    assert len(fake.messages(1400)) == len(fake.messages(1401)) == 1
    paced = len(fake.messages(-1300))
    assert 6 <= paced <= 8  # one every 3 s for 20 s
    assert summary.waiting == 1 + 30 - paced
    assert summary.first_due is not None and summary.last_due is not None
    assert summary.last_due - summary.first_due >= timedelta(seconds=3500)  # the flood wait's end
    with store.connect() as conn:
        assert "sending" not in set(conn.execute(select(outbox.c.state)).scalars())
    # A deadline long enough: the paced group finishes, the flooded chat still waits its hour.
    rest = asyncio.run(vdrain(store, fake, clock, max_wait=120))
    assert len(fake.messages(-1300)) == 30 and rest.waiting == 1


def test_at_most_max_in_flight_sends_at_once(sqlite_store):
    store = sqlite_store
    chats_ = [str(2000 + i) for i in range(24)]
    alert(store, chats_)
    with FakeBotAPI() as fake:
        fake.delay = 0.15  # every send takes 150 ms: 3 in flight keep 20 a second going
        summary = asyncio.run(drain(store, fake, config(max_in_flight=3)))
        assert summary.sent == 24
        assert fake.peak_concurrent_sends == 3  # reached, never passed


def test_claims_record_their_owner_and_lease(store, fake, monkeypatch):
    seen: list = []
    import alerts.ledger as ledger_module

    real_claim = ledger_module.claim

    def watching_claim(conn, ids, owner, now, lease_until):
        n = real_claim(conn, ids, owner, now, lease_until)
        seen.extend(conn.execute(select(outbox.c.claimed_by, outbox.c.claimed_at, outbox.c.lease_until)
                                 .where(outbox.c.id.in_(list(ids)))).all())
        return n

    monkeypatch.setattr(ledger_module, "claim", watching_claim)
    alert(store, ["3000"])
    asyncio.run(drain(store, fake))
    [(owner, claimed_at, lease_until)] = seen
    host, pid, instance = owner.split(":")
    assert int(pid) > 0 and host and len(instance) == 8
    assert lease_until - claimed_at == timedelta(minutes=2)
    with store.connect() as conn:  # settled: the claim is cleared with the "sent" record
        assert conn.execute(select(outbox.c.claimed_by)).scalar_one() is None


def test_only_claims_whose_owner_is_gone_are_recovered(store):
    from alerts import ledger

    alert(store, ["3100", "3101", "3102", "3103"])
    me, gone = ClaimOwner.current(), ClaimOwner("elsewhere", 1, "deadbeef")
    now = utcnow()
    with store.begin() as conn:
        ids = list(conn.execute(select(outbox.c.id).order_by(outbox.c.id)).scalars())
        ledger.claim(conn, ids[:1], gone, now, now + timedelta(minutes=2))  # a process that died
        ledger.claim(conn, ids[1:2], me, now, now + timedelta(minutes=2))  # mine, in its lease
        ledger.claim(conn, ids[2:3], me, now - timedelta(minutes=5), now - timedelta(minutes=3))  # mine, expired
        ledger.claim(conn, ids[3:4], me, now - timedelta(minutes=5), now - timedelta(minutes=3))  # expired, in flight
        assert ledger.recover_in_flight(conn, me, now, in_flight={ids[3]}) == 2
        state = dict(conn.execute(select(outbox.c.id, outbox.c.state)).all())
    assert [state[i] for i in ids] == ["pending", "sending", "pending", "sending"]
