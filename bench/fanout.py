"""Fan-out bench: 1,000 subscribers of one rule, one matching article, delivered through
python-telegram-bot to the fake Bot API (tests/fakebotapi.py) enforcing Telegram's limits
(30 messages/s overall, 1/s per private chat, 20/min per group).

Prints messages/s sustained, 429 answers, duplicates and losses, and the most sends in flight at
once (the fake's count; what a crash could cost is bounded by ``telegram.max_in_flight``).
Targets: ≥ 28 msg/s, 0 × 429, 0 duplicates, 0 lost, in flight ≤ max_in_flight.

``--latency`` delays every Bot API answer (Telegram answers in about 50-150 ms from a server):
with 8 in flight the target holds up to about 8 / 30 s = 260 ms.

    .venv/bin/python bench/fanout.py [--subscribers 1000] [--latency 0.15] [--max-in-flight 8] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fakebotapi import DEFAULT_TOKEN, FakeBotAPI
from sqlalchemy import select

from alerts.dispatcher import Dispatcher
from alerts.outbox import Recipient, enqueue
from alerts.telegram import PTBSender
from core.store import (
    Store,
    articles,
    matches,
    outbox,
    subscriptions,
    url_hash,
    utcnow,
)
from lookout.config import TelegramConfig
from rules.types import Match, PlaceRef

RULE = "is-near-azaz"


def seed(store: Store, n: int) -> None:
    now = utcnow()
    match = Match(
        rule_id=RULE, title="Islamic State near the Azaz corridor", severity="high", hits=(),
        places=(PlaceRef("kafrah", "Kafrah", 36.60, 37.15, True),),
        snippet="…reported Wednesday that ISIS had stormed into Kafrah, a village east of Aazaz…",
        marks=((26, 30), (45, 51)),
    )
    with store.begin() as conn:
        conn.execute(subscriptions.insert(), [
            {"chat_id": str(100000 + i), "kind": "rule", "target": RULE, "created_at": now} for i in range(n)
        ])
        url = "https://now.example/isis-advances"
        article_id = conn.execute(articles.insert().values(
            url=url, url_hash=url_hash(url), source="now", outlet="NOW Lebanon",
            title="ISIS advances in flashpoint north Aleppo", fetched=now, first_seen=now, text="…",
            content_hash="h", story_id="story-1",
        )).inserted_primary_key[0]
        match_id = conn.execute(matches.insert().values(
            article_id=article_id, rule_id=RULE, evidence=match.to_dict(), created_at=now,
        )).inserted_primary_key[0]
        chats = conn.execute(select(subscriptions.c.chat_id).where(subscriptions.c.target == RULE)).scalars()
        recipients = [Recipient(chat, RULE, match) for chat in chats]
        result = enqueue(conn, article_id=article_id, story_id="story-1", outlet="NOW Lebanon",
                         recipients=recipients, match_ids={RULE: match_id}, first_seen=now, now=now)
    assert result.new_rows == n, result


async def deliver(store: Store, fake: FakeBotAPI, max_in_flight: int):
    config = TelegramConfig(token=DEFAULT_TOKEN, api_url=fake.url, max_in_flight=max_in_flight)
    async with PTBSender(DEFAULT_TOKEN, fake.url) as sender:
        return await Dispatcher(store, sender, config).drain()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each Bot API answer")
    parser.add_argument("--max-in-flight", type=int, default=TelegramConfig().max_in_flight)
    parser.add_argument("--database", help="store URL (default: a fresh SQLite file); on PostgreSQL a "
                        "private schema is created and dropped")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        schema = f"bench_{uuid.uuid4().hex[:10]}" if url.startswith("postgresql") else None
        store = Store(url, schema=schema)
        seed(store, args.subscribers)
        with FakeBotAPI() as fake:
            fake.delay = args.latency
            started = time.monotonic()
            summary = asyncio.run(deliver(store, fake, args.max_in_flight))
            elapsed = time.monotonic() - started
            sent = fake.messages()
            count_429 = fake.count_429
            peak = fake.peak_concurrent_sends
        with store.connect() as conn:
            states = Counter(conn.execute(select(outbox.c.state)).scalars())
        if schema:
            store.drop()
        store.dispose()
    per_chat = Counter(m.chat_id for m in sent)
    expected = {str(100000 + i) for i in range(args.subscribers)}
    duplicates = sum(c - 1 for c in per_chat.values() if c > 1)
    lost = len(expected - set(per_chat))
    times = sorted(m.at for m in sent)
    sustained = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    window = max(sum(1 for t in times[i:i + 40] if t < s + 1.0) for i, s in enumerate(times)) if times else 0
    print(f"subscribers        {args.subscribers}")
    print(f"bot api latency    {args.latency * 1000:.0f} ms per answer; max_in_flight {args.max_in_flight}")
    print(f"messages accepted  {len(sent)} in {elapsed:.1f} s (dispatcher start to finish)")
    print(f"sustained rate     {sustained:.1f} msg/s (first to last accepted message)")
    print(f"peak 1-s window    {window} messages")
    print(f"in flight at once  {peak} (max_in_flight {args.max_in_flight})")
    print(f"429 answers        {count_429}")
    print(f"duplicates         {duplicates}")
    print(f"lost               {lost}")
    print(f"outbox states      {dict(states)}")
    print(f"summary            sent={summary.sent} failed={summary.failed} waiting={summary.waiting}")
    ok = sustained >= 28 and count_429 == 0 and duplicates == 0 and lost == 0 and peak <= args.max_in_flight
    print("targets            " + ("met" if ok else "NOT met")
          + " (≥ 28 msg/s, 0 × 429, 0 duplicates, 0 lost, in flight ≤ max_in_flight)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
