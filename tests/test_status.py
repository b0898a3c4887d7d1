"""`lookout status`: the report's shape and contents from a seeded store (both backends), the
CLI's --json output, and that the bot token never appears."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

from core.store import articles, chats, crawl_runs, outbox, sources, subscriptions
from crawler.sources import Source
from lookout.config import Config, TelegramConfig
from lookout.status import gather_status, percentile, render_text

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TOKEN = "123456:SECRET-token-never-printed_abcdefgh"


def _article(conn, i: int, source: str, first_seen: datetime, published: datetime | None = None) -> int:
    return conn.execute(articles.insert().values(
        url=f"http://x/{i}", url_hash=f"h{i}", source=source, title=f"t{i}", fetched=first_seen,
        first_seen=first_seen, published=published, content_hash="c", story_id=f"s{i}", text="",
    )).inserted_primary_key[0]


def _each(conn, table, rows) -> None:
    for row in rows:  # rows with different keys: one insert each
        conn.execute(table.insert().values(**row))


def _seed(store) -> None:
    with store.begin() as conn:
        _each(conn, sources, [
            {"name": "good", "kind": "feed", "url": "http://good/feed",
             "last_crawl_at": NOW - timedelta(minutes=2), "last_success_at": NOW - timedelta(minutes=2),
             "last_result": "ok",
             "next_run_at": NOW + timedelta(minutes=8)},
            {"name": "broken", "kind": "feed", "url": "http://broken/feed"},
        ])
        _each(conn, crawl_runs, [
            {"source": "good", "started_at": NOW - timedelta(minutes=3),
             "finished_at": NOW - timedelta(minutes=2), "result": "ok"},
            {"source": "broken", "started_at": NOW - timedelta(hours=5),
             "finished_at": NOW - timedelta(hours=5), "result": "ok"},
            {"source": "broken", "started_at": NOW - timedelta(minutes=20),
             "finished_at": NOW - timedelta(minutes=10), "result": "timeout",
             "error": "timed out after 600s (limit 600s); killed"},
        ])
        ids = [_article(conn, i, "good", NOW - timedelta(hours=h), NOW - timedelta(hours=h, seconds=30))
               for i, h in enumerate((1, 2, 3, 30))]
        _each(conn, chats, [
            {"chat_id": "1", "created_at": NOW}, {"chat_id": "2", "created_at": NOW, "paused": True},
        ])
        conn.execute(subscriptions.insert(), [
            {"chat_id": "1", "kind": "place", "target": "azaz", "created_at": NOW},
            {"chat_id": "1", "kind": "group", "target": "islamic-state", "created_at": NOW},
            {"chat_id": "2", "kind": "place", "target": "azaz", "created_at": NOW},
        ])
        rows = []
        # Sent with latencies 10, 20, 30 s (first seen -> sent); one pending, one failed, one old sent.
        for n, (aid, lat) in enumerate(zip(ids[:3], (10, 20, 30), strict=True)):
            seen = NOW - timedelta(hours=n + 1)
            rows.append({"chat_id": "1", "story_id": f"s{n}", "alert_key": "place:azaz", "article_id": aid,
                         "state": "sent", "created_at": seen, "updated_at": seen, "first_seen_at": seen,
                         "sent_at": seen + timedelta(seconds=lat)})
        rows.append({"chat_id": "1", "story_id": "p", "alert_key": "r", "article_id": ids[0],
                     "state": "pending", "created_at": NOW, "updated_at": NOW, "first_seen_at": NOW})
        rows.append({"chat_id": "1", "story_id": "f", "alert_key": "r", "article_id": ids[1], "state": "failed",
                     "created_at": NOW, "updated_at": NOW, "last_error": "chat not found"})
        old = NOW - timedelta(hours=30)
        rows.append({"chat_id": "1", "story_id": "o", "alert_key": "r", "article_id": ids[3], "state": "sent",
                     "created_at": old, "updated_at": old, "first_seen_at": old, "sent_at": old})
        _each(conn, outbox, rows)


def test_status_report_contents(store, tmp_path):
    _seed(store)
    config = Config(
        database=store.url, rules=[str(tmp_path / "missing-rules")],
        telegram=TelegramConfig(token=SecretStr(TOKEN)),
    )
    configured = [Source(name="good", feed="http://good/feed", every="10m"),
                  Source(name="broken", feed="http://broken/feed", every="10m")]
    report = gather_status(config, store, now=NOW, configured_sources=configured, service="pid 1 on test")
    by_name = {s.name: s for s in report.sources}
    good, broken = by_name["good"], by_name["broken"]
    assert (good.last_result, good.articles_24h, good.stale, good.every_seconds) == ("ok", 3, False, 600)
    assert good.next_run == NOW + timedelta(minutes=8)
    assert good.staleness_seconds == 120
    assert broken.last_result == "timeout" and "timed out" in broken.last_error
    assert broken.stale is True  # last success 5 h ago > 2 x 10 min + timeout (10 min)
    assert broken.staleness_seconds == 5 * 3600
    o = report.outbox
    assert (o.pending, o.failed, o.sent_24h, o.sent_total) == (1, 1, 3, 4)
    s = report.subscribers
    assert (s.chats, s.paused_chats, s.subscriptions) == (2, 1, 3)
    lat = report.latency
    assert (lat.samples, lat.p50, lat.p95, lat.max) == (3, 20.0, 30.0, 30.0)
    assert lat.published_samples == 3 and lat.published_p50 == 50.0  # published 30 s before first seen
    assert report.rules.version is None and report.rules.errors  # the rules path does not exist
    doc = report.to_dict()
    assert set(doc) == {"generated_at", "service", "telegram", "database", "sources", "sources_errors",
                        "outbox", "subscribers", "rules", "latency"}
    assert doc["telegram"] is True
    text = report.to_json() + render_text(report)
    assert TOKEN not in text and "SECRET" not in text
    assert "STALE" in render_text(report)


def test_a_failing_source_shows_its_backoff(store, tmp_path):
    with store.begin() as conn:
        _each(conn, sources, [
            {"name": "flaky", "kind": "feed", "url": "http://flaky/feed", "last_crawl_at": NOW - timedelta(minutes=3),
             "last_result": "failed", "last_error": "connection-refused: nobody listens",
             "failures_in_row": 3, "next_run_at": NOW + timedelta(minutes=5)},
            {"name": "hourly", "kind": "feed", "url": "http://hourly/feed", "last_result": "timeout",
             "failures_in_row": 2, "next_run_at": NOW + timedelta(minutes=40)},
            {"name": "good", "kind": "feed", "url": "http://good/feed", "last_result": "ok",
             "next_run_at": NOW + timedelta(minutes=2)},  # failures_in_row NULL: none
        ])
    config = Config(database=store.url, rules=[str(tmp_path / "missing-rules")])  # crawl.max_backoff: 1h
    configured = [Source(name="flaky", feed="http://flaky/feed", every="1m"),
                  Source(name="hourly", feed="http://hourly/feed", every="1h"),
                  Source(name="good", feed="http://good/feed", every="10m")]
    report = gather_status(config, store, now=NOW, configured_sources=configured, load_rules=False)
    by_name = {s.name: s for s in report.sources}
    flaky, hourly, good = by_name["flaky"], by_name["hourly"], by_name["good"]
    assert (flaky.failures_in_row, flaky.backing_off, flaky.every_seconds, flaky.poll_every_seconds) == (
        3, True, 60, 8 * 60)
    assert flaky.failing == "backing off: 3 failures in a row, next poll 12:05 UTC (every 8m instead of 1m)"
    assert (hourly.failures_in_row, hourly.backing_off, hourly.poll_every_seconds) == (2, False, 3600)
    assert hourly.failing.startswith("failing: 2 failures in a row, next poll 12:40 UTC (every 1h: not backed off")
    assert (good.failures_in_row, good.backing_off, good.poll_every_seconds, good.failing) == (0, False, 600, None)
    doc = {s["name"]: s for s in report.to_dict()["sources"]}
    assert (doc["flaky"]["failures_in_row"], doc["flaky"]["poll_every_seconds"], doc["flaky"]["backing_off"]) == (
        3, 480, True)
    lines = render_text(report).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  flaky "))
    assert "every 1m" in lines[at] and "failed" in lines[at] and "next in 5m" in lines[at]  # as before
    assert lines[at + 1].split() == ["last", "error:", "connection-refused:", "nobody", "listens"]
    assert lines[at + 2] == (f"  {'':<20} backing off: 3 failures in a row, next poll 12:05 UTC "
                             "(every 8m instead of 1m)")
    assert not any("backing off" in line or "failing:" in line for line in lines if "good" in line)
    # A tighter crawl.max_backoff caps it sooner.
    config = Config(database=store.url, rules=[str(tmp_path / "missing-rules")], crawl={"max_backoff": "5m"})
    capped = {s.name: s for s in gather_status(config, store, now=NOW, configured_sources=configured,
                                               load_rules=False).sources}["flaky"]
    assert capped.poll_every_seconds == 300 and "(every 5m instead of 1m)" in capped.failing


def test_percentile_nearest_rank():
    assert percentile([], 95) is None
    assert percentile([5.0], 50) == 5.0
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 100) == 100


def test_status_cli_json(tmp_path, capsys):
    from service_harness import lookout, lookout_in_process, write_config

    config = write_config(tmp_path / "svc", sources=[{"name": "one", "feed": "http://127.0.0.1:9/feed",
                                                      "every": "5m"}], token=TOKEN, api_url="http://127.0.0.1:9")
    result = lookout(config, "status", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["service"] is None  # nothing running
    assert [s["name"] for s in doc["sources"]] == ["one"]
    assert doc["sources"][0]["last_run"] is None and doc["sources"][0]["every_seconds"] == 300
    assert doc["outbox"]["pending"] == 0 and doc["subscribers"]["chats"] == 0
    assert doc["rules"]["errors"] == [] and len(doc["rules"]["version"]) >= 12
    assert TOKEN not in result.stdout + result.stderr
    # The text form in this process: the subprocess above already proved the real command line.
    capsys.readouterr()
    assert lookout_in_process(config, "status") == 0
    text = capsys.readouterr()
    assert "one" in text.out and "not running" in text.out and TOKEN not in text.out + text.err
