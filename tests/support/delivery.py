"""Delivery test helpers: alerts queued in a store, dispatchers draining them to the fake Bot API
(tests/fakebotapi.py), in real time or in virtual time (tests/support/clock.py).

The fixtures (``fake``, ``clock``, ``vfake``) are registered for every test by tests/conftest.py;
the functions are imported by the delivery tests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fakebotapi import DEFAULT_TOKEN, FakeBotAPI
from sqlalchemy import select

import alerts.dispatcher as dispatcher_module
from alerts.dispatcher import Dispatcher
from alerts.outbox import Recipient, enqueue
from alerts.ratelimit import RateLimiter
from alerts.telegram import PTBSender
from core.store import articles, insert_ignore, matches, outbox, url_hash, utcnow
from lookout.config import TelegramConfig
from rules.types import Match
from support.clock import FakeClock, VirtualAsyncio, holding


@pytest.fixture
def fake():
    with FakeBotAPI() as server:
        yield server


def config(**kw) -> TelegramConfig:
    return TelegramConfig(token=DEFAULT_TOKEN, **kw)


def make_match(rule_id="is-near-azaz", snippet="ISIS stormed Kafrah near Aazaz.", places=()) -> Match:
    marks = tuple((snippet.find(w), snippet.find(w) + len(w)) for w in ("ISIS", "Kafrah") if w in snippet)
    return Match(rule_id=rule_id, title="Islamic State near the Azaz corridor", severity="high", hits=(),
                 places=places, snippet=snippet, marks=marks)


_counter = iter(range(1, 10**6))


def add_article(conn, *, title="ISIS advances in north Aleppo", story="s1", outlet="NOW Lebanon",
                url=None, text="ISIS stormed Kafrah.") -> int:
    url = url or f"https://news.example/{next(_counter)}"
    now = utcnow()
    conn.execute(articles.insert().values(
        url=url, url_hash=url_hash(url), source="test", outlet=outlet, title=title, fetched=now,
        first_seen=now, published=datetime(2016, 6, 1, tzinfo=UTC), text=text, content_hash="h",
        story_id=story,
    ))
    return conn.execute(select(articles.c.id).where(articles.c.url == url)).scalar_one()


def alert(store, chat_ids, *, story=None, match=None, outlet="NOW Lebanon", title="ISIS advances", **kw):
    """Store an article + match and enqueue it for ``chat_ids``; returns the EnqueueResult."""
    match = match or make_match()
    story = story or f"story-{next(_counter)}"
    now = utcnow()
    with store.begin() as conn:
        article_id = add_article(conn, story=story, outlet=outlet, title=title, **kw)
        insert_ignore(conn, matches, {"article_id": article_id, "rule_id": match.rule_id,
                                      "evidence": _json(match), "created_at": now})
        match_id = conn.execute(select(matches.c.id).where(matches.c.article_id == article_id)).scalar_one()
        return enqueue(conn, article_id=article_id, story_id=story, outlet=outlet,
                       recipients=[Recipient(str(c), match.rule_id, match) for c in chat_ids],
                       match_ids={match.rule_id: match_id}, first_seen=now, now=now)


def _json(m: Match):

    return m.to_dict()


def states(store) -> dict[str, list]:
    with store.connect() as conn:
        rows = list(conn.execute(select(outbox.c.chat_id, outbox.c.state, outbox.c.last_error)
                                 .order_by(outbox.c.id)))
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r.state, []).append(r)
    return out


def conforms(times: list[float], *, rate: float, burst: int, tolerance: float = 0.02) -> bool:
    """The send times fit a token bucket of ``burst`` refilled at ``rate`` per second."""
    tokens, last = float(burst), times[0]
    for t in times:
        tokens = min(float(burst), tokens + (t - last) * rate)
        last = t
        if tokens < 1.0 - tolerance * rate:
            return False
        tokens -= 1.0
    return True


async def drain(store, fake, cfg=None, **kw):
    async with PTBSender(DEFAULT_TOKEN, fake.url) as sender:
        return await Dispatcher(store, sender, cfg or config(), **kw).drain()


@pytest.fixture
def clock(monkeypatch):
    """Virtual time for the dispatcher: its rate limiter and datetimes (``vdrain``), the
    ``asyncio.sleep`` its drain loop waits for the next due row with, and its store calls in
    worker threads (``asyncio.to_thread``), which take no virtual time (it takes no ``sleep=``)."""
    fake_clock = FakeClock()
    monkeypatch.setattr(dispatcher_module, "asyncio", VirtualAsyncio(fake_clock))
    return fake_clock


@pytest.fixture
def vfake(clock):
    """The fake Bot API judging Telegram's limits on the virtual clock."""
    with FakeBotAPI(clock=clock) as server:
        yield server


def vdispatcher(store, sender, clock: FakeClock, cfg=None, **kw) -> Dispatcher:
    """A dispatcher in virtual time (a fresh rate limiter: a restart) whose sends hold the clock,
    so the fake stamps each with the moment the limiter let it go."""
    cfg = cfg or config()
    limiter = RateLimiter.from_config(cfg, clock=clock, sleep=clock.sleep)
    return Dispatcher(store, holding(sender, clock), cfg, clock=clock.utcnow, limiter=limiter, **kw)


async def vdrain(store, fake, clock: FakeClock, cfg=None, *, max_wait: float = 60.0, **kw):
    """``drain`` in virtual time, by a new ``vdispatcher``."""
    async with PTBSender(DEFAULT_TOKEN, fake.url) as sender:
        return await vdispatcher(store, sender, clock, cfg, **kw).drain(max_wait=max_wait)

