"""Metrics counted from the store (own registry), the /healthz and /metrics endpoint, and daily
maintenance (retention never drops a pending alert; VACUUM on SQLite)."""

from __future__ import annotations

import asyncio
import urllib.request
from datetime import timedelta

from prometheus_client import REGISTRY
from sqlalchemy import func, select

from core.store import articles, crawl_runs, matches, outbox, sources, utcnow
from lookout.maintenance import run_maintenance
from lookout.metrics import HttpEndpoint, Metrics, parse_listen


def _article(conn, i: int, first_seen) -> int:
    return conn.execute(articles.insert().values(
        url=f"http://x/{i}", url_hash=f"h{i}", source="s", title="t", fetched=first_seen,
        first_seen=first_seen, content_hash="c", story_id=f"s{i}", text="",
    )).inserted_primary_key[0]


def _sample(metrics: Metrics, name: str, labels: dict | None = None) -> float | None:
    return metrics.registry.get_sample_value(name, labels or {})


def test_counters_follow_the_store_from_process_start(store):
    now = utcnow()
    with store.begin() as conn:
        _article(conn, 0, now)  # before the service started: not counted
    metrics = Metrics()
    metrics.refresh(store, ["s"], now)
    with store.begin() as conn:
        a1 = _article(conn, 1, now)
        _article(conn, 2, now)
        conn.execute(matches.insert().values(article_id=a1, rule_id="r", evidence={}, created_at=now))
        conn.execute(sources.insert().values(name="s", kind="feed", url="http://127.0.0.1:9/f", last_result="ok",
                                             last_success_at=now - timedelta(seconds=60)))
        states = (("sent", 12.0), ("sent", 3.0), ("pending", None), ("failed", None))
        for n, (state, sent) in enumerate(states):
            conn.execute(outbox.insert().values(
                chat_id="1", story_id=f"x{n}", alert_key="r", article_id=a1, state=state, created_at=now,
                updated_at=now + timedelta(seconds=1), first_seen_at=now,
                sent_at=now + timedelta(seconds=sent) if sent is not None else None))
    metrics.count_crawl("timeout")
    metrics.refresh(store, ["s"], now + timedelta(seconds=20))
    metrics.refresh(store, ["s"], now + timedelta(seconds=20))  # idempotent: nothing new
    assert _sample(metrics, "lookout_articles_total") == 2
    assert _sample(metrics, "lookout_matches_total") == 1
    assert _sample(metrics, "lookout_alerts_sent_total") == 2
    assert _sample(metrics, "lookout_alerts_failed_total") == 1
    assert _sample(metrics, "lookout_outbox_queue_depth") == 1
    assert _sample(metrics, "lookout_crawls_total", {"result": "timeout"}) == 1
    assert _sample(metrics, "lookout_crawls_total", {"result": "ok"}) == 0
    assert _sample(metrics, "lookout_source_staleness_seconds", {"source": "s"}) == 80
    assert _sample(metrics, "lookout_alert_latency_seconds_count") == 2
    assert _sample(metrics, "lookout_alert_latency_seconds_bucket", {"le": "5.0"}) == 1
    assert _sample(metrics, "lookout_alert_latency_seconds_sum") == 15
    # Its own registry: the process-wide default knows nothing of it.
    assert REGISTRY.get_sample_value("lookout_articles_total") is None


def test_http_endpoint_serves_health_and_metrics():
    metrics = Metrics()
    metrics.count_crawl("ok")
    healthy = {"ok": True}

    async def scenario():
        endpoint = HttpEndpoint(metrics, lambda: (healthy["ok"], {"status": "x"}), "127.0.0.1", 0)
        await endpoint.start()
        base = f"http://127.0.0.1:{endpoint.port}"

        def fetch(path):
            try:
                with urllib.request.urlopen(base + path, timeout=5) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()

        results = [await asyncio.to_thread(fetch, "/healthz"), await asyncio.to_thread(fetch, "/metrics")]
        healthy["ok"] = False
        results.append(await asyncio.to_thread(fetch, "/healthz"))
        results.append(await asyncio.to_thread(fetch, "/nope"))
        await endpoint.stop()
        return results

    health, metrics_page, sick, missing = asyncio.run(scenario())
    assert health[0] == 200 and '"status": "x"' in health[1]
    assert metrics_page[0] == 200 and 'lookout_crawls_total{result="ok"} 1.0' in metrics_page[1]
    assert sick[0] == 503
    assert missing[0] == 404
    assert parse_listen("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert parse_listen(":9108") == ("127.0.0.1", 9108)


def test_retention_keeps_pending_alerts_and_vacuums(store):
    now = utcnow()
    old = now - timedelta(days=100)
    with store.begin() as conn:
        gone = _article(conn, 1, old)
        kept_pending = _article(conn, 2, old)
        fresh = _article(conn, 3, now)
        conn.execute(matches.insert().values(article_id=gone, rule_id="r", evidence={}, created_at=old))
        conn.execute(outbox.insert().values(chat_id="1", story_id="a", alert_key="r", article_id=gone,
                                            state="sent", created_at=old, updated_at=old))
        conn.execute(outbox.insert().values(chat_id="1", story_id="b", alert_key="r", article_id=kept_pending,
                                            state="pending", created_at=old, updated_at=old))
        conn.execute(crawl_runs.insert().values(source="s", started_at=old, result="ok"))
    report = run_maintenance(store, timedelta(days=90), now=now)
    with store.connect() as conn:
        left = set(conn.execute(select(articles.c.id)).scalars())
        n_matches = conn.execute(select(func.count()).select_from(matches)).scalar_one()
        n_outbox = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
    assert left == {kept_pending, fresh}
    assert (report.articles, report.crawl_runs, n_matches, n_outbox) == (1, 1, 0, 1)
    assert report.vacuumed is (store.dialect == "sqlite")


def test_failing_sources_show_their_failures_in_row_and_backed_off_interval(store):
    with store.begin() as conn:
        for row in (  # rows with different keys: one insert each
            {"name": "flaky", "kind": "feed", "url": "http://flaky/feed", "last_result": "failed",
             "failures_in_row": 3, "next_run_at": utcnow() + timedelta(minutes=8)},
            {"name": "hourly", "kind": "feed", "url": "http://hourly/feed", "last_result": "timeout",
             "failures_in_row": 3},
            {"name": "fine", "kind": "feed", "url": "http://fine/feed", "last_result": "ok"},  # NULL: none
        ):
            conn.execute(sources.insert().values(**row))
    metrics = Metrics()  # crawl.max_backoff's default: 1 h
    every = {"flaky": timedelta(minutes=1), "hourly": timedelta(hours=1), "fine": timedelta(minutes=5)}
    metrics.refresh(store, ["flaky", "hourly", "fine", "new"], intervals=every)

    def failures(name):
        return _sample(metrics, "lookout_source_failures_in_row", {"source": name})

    def interval(name):
        return _sample(metrics, "lookout_source_poll_interval_seconds", {"source": name})

    assert [failures(n) for n in ("flaky", "hourly", "fine", "new")] == [3, 3, 0, 0]  # "new": no row yet
    assert interval("flaky") == 8 * 60  # 1m * 2**3
    assert interval("hourly") == 3600  # never polled more often than configured
    assert interval("fine") == 300
    # A tighter cap, and a source whose interval is not known: no interval series for it.
    capped = Metrics(max_backoff=timedelta(minutes=5))
    capped.refresh(store, ["flaky", "fine"], intervals={"flaky": timedelta(minutes=1)})
    assert _sample(capped, "lookout_source_poll_interval_seconds", {"source": "flaky"}) == 300
    assert _sample(capped, "lookout_source_poll_interval_seconds", {"source": "fine"}) is None
    assert _sample(capped, "lookout_source_failures_in_row", {"source": "fine"}) == 0
    # Without intervals (the service passes none yet): failures only.
    Metrics().refresh(store, ["flaky"])
    # A source dropped from the sources file leaves no series behind.
    metrics.drop_source("flaky")
    assert failures("flaky") is None and interval("flaky") is None
    exposition = metrics.exposition().decode()
    assert 'lookout_source_failures_in_row{source="hourly"} 3.0' in exposition
    assert 'lookout_source_poll_interval_seconds{source="hourly"} 3600.0' in exposition
