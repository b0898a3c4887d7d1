"""Prometheus metrics and the ``--http`` endpoint (``/healthz``, ``/metrics``).

The metrics live in the service's own ``CollectorRegistry`` (never the global default, so tests
and embedded uses do not collide). Crawl results are counted as the service sees each crawl
finish; articles, matches and alerts are written by crawl subprocesses and the dispatcher, so they
are counted from the store: each refresh counts the rows past the last watermark, which keeps
the counters monotonic and exact across crawls in other processes. A failing source's backoff
(``lookout.pollbackoff``) shows as its failures in a row and the interval it is polled at now.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import func, select

from alerts.ledger import oldest_pending_since
from alerts.outbox import OutboxState
from core.store import Store, articles, matches, outbox, sources, utcnow
from crawler.config import CrawlConfig
from crawler.state import CrawlResult
from lookout.pollbackoff import poll_interval

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime, timedelta

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (1, 2, 5, 10, 15, 20, 25, 30, 45, 60, 90, 120, 300, 600, 1800, 3600)


@dataclass
class _Watermarks:
    article_id: int = 0
    match_id: int = 0
    sent_at: datetime | None = None
    failed_at: datetime | None = None


class Metrics:
    def __init__(self, max_backoff: timedelta | None = None) -> None:
        """``max_backoff``: ``crawl.max_backoff`` (its default when None), for the poll intervals."""
        self.max_backoff = max_backoff if max_backoff is not None else CrawlConfig().max_backoff
        self.registry = CollectorRegistry()
        r = self.registry
        self.crawls = Counter("lookout_crawls", "Crawls finished, by result", ["result"], registry=r)
        self.articles = Counter("lookout_articles", "New articles stored", registry=r)
        self.matches = Counter("lookout_matches", "Rule matches stored", registry=r)
        self.alerts_sent = Counter("lookout_alerts_sent", "Alerts delivered to Telegram", registry=r)
        self.alerts_failed = Counter("lookout_alerts_failed", "Alerts given up on (failed)", registry=r)
        self.queue_depth = Gauge("lookout_outbox_queue_depth", "Alerts pending or in flight", registry=r)
        self.oldest_pending = Gauge("lookout_outbox_oldest_pending_seconds",
                                    "Age of the oldest alert on its way (held ones left out), 0 when none",
                                    registry=r)
        self.flood_waits = Gauge("lookout_chats_in_flood_wait", "Chats Telegram told to wait (429)", registry=r)
        self.oldest_pending_seconds: float | None = None  # the same, for /healthz (None: nothing pending)
        self.staleness = Gauge("lookout_source_staleness_seconds",
                               "Seconds since the source's last successful crawl", ["source"], registry=r)
        # One series per result for each source, 1 for its last crawl's (ok, partial, empty, failed, timeout, killed).
        self.source_result = Gauge("lookout_source_result", "The result of the source's last crawl (1) among "
                                   "the possible ones (0)", ["source", "result"], registry=r)
        self.failures_in_row = Gauge("lookout_source_failures_in_row",
                                     "Crawls of the source failed in a row (failed, timeout, killed); 0 once one "
                                     "reads its index", ["source"], registry=r)
        self.poll_interval = Gauge("lookout_source_poll_interval_seconds",
                                   "Seconds between the source's polls now: its interval, longer while it backs off",
                                   ["source"], registry=r)
        self.latency = Histogram("lookout_alert_latency_seconds",
                                 "Article first seen by the crawler to its Telegram message",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.rule_reloads_refused = Counter("lookout_rule_reloads_refused", "Rule edits refused", registry=r)
        for result in CrawlResult:
            self.crawls.labels(result)  # present at 0 from the start
        self._marks: _Watermarks | None = None

    def count_crawl(self, result: str) -> None:
        self.crawls.labels(result).inc()

    def refresh(
        self,
        store: Store,
        source_names: Sequence[str],
        now: datetime | None = None,
        intervals: Mapping[str, timedelta] | None = None,
    ) -> None:
        """Bring the store-derived metrics up to date (cheap: indexed max/count queries).
        ``intervals``: each source's configured ``every``, by name; a source not in it has no
        poll interval series (the store knows its failures, not its interval)."""
        now = now or utcnow()
        with store.connect() as conn:
            if self._marks is None:
                # Counters count from this process's start, as Prometheus expects.
                self._marks = _Watermarks(
                    article_id=conn.execute(select(func.coalesce(func.max(articles.c.id), 0))).scalar_one(),
                    match_id=conn.execute(select(func.coalesce(func.max(matches.c.id), 0))).scalar_one(),
                    sent_at=conn.execute(select(func.max(outbox.c.sent_at))).scalar() or now,
                    failed_at=now,
                )
            m = self._marks
            new_article = conn.execute(
                select(func.count(), func.max(articles.c.id)).where(articles.c.id > m.article_id)).one()
            if new_article[0]:
                self.articles.inc(new_article[0])
                m.article_id = new_article[1]
            new_match = conn.execute(
                select(func.count(), func.max(matches.c.id)).where(matches.c.id > m.match_id)).one()
            if new_match[0]:
                self.matches.inc(new_match[0])
                m.match_id = new_match[1]
            sent = conn.execute(
                select(outbox.c.sent_at, outbox.c.first_seen_at)
                .where(outbox.c.state == OutboxState.SENT, outbox.c.sent_at > m.sent_at)
            ).all()
            for sent_at, first_seen in sent:
                self.alerts_sent.inc()
                if first_seen is not None:
                    self.latency.observe(max(0.0, (sent_at - first_seen).total_seconds()))
                m.sent_at = max(m.sent_at, sent_at)
            failed = conn.execute(
                select(func.count(), func.max(outbox.c.updated_at))
                .where(outbox.c.state == OutboxState.FAILED, outbox.c.updated_at > m.failed_at)).one()
            if failed[0]:
                self.alerts_failed.inc(failed[0])
                m.failed_at = failed[1]
            depth = conn.execute(
                select(func.count()).where(outbox.c.state.in_((OutboxState.PENDING, OutboxState.SENDING)))).scalar_one()
            self.queue_depth.set(depth)
            oldest = oldest_pending_since(conn)
            self.oldest_pending_seconds = None if oldest is None else max(0.0, (now - oldest).total_seconds())
            self.oldest_pending.set(self.oldest_pending_seconds or 0.0)
            # From the sources rows, not an aggregate over crawl_runs: that table grows with every
            # poll of every source, and this runs every few seconds.
            last_ok: dict[str, datetime] = {}
            last_result: dict[str, str | None] = {}
            failures: dict[str, int] = {}
            for row in conn.execute(select(sources.c.name, sources.c.last_result, sources.c.failures_in_row,
                                           sources.c.last_success_at)):
                last_result[row.name] = row.last_result
                failures[row.name] = row.failures_in_row or 0  # NULL: none
                if row.last_success_at is not None:
                    last_ok[row.name] = row.last_success_at
        for name in source_names:
            at = last_ok.get(name)
            if at is not None:
                if at.tzinfo is None:
                    at = at.replace(tzinfo=UTC)
                self.staleness.labels(name).set(max(0.0, (now - at).total_seconds()))
            else:
                self.staleness.labels(name).set(float("nan"))
        self._refresh_source_state(source_names, last_result, failures, intervals or {})

    def _refresh_source_state(
        self,
        source_names: Sequence[str],
        last_result: Mapping[str, str | None],
        failures: Mapping[str, int],
        intervals: Mapping[str, timedelta],
    ) -> None:
        """The gauges of the ``sources`` rows: last result, failures in a row, and the poll
        interval of the sources whose ``every`` is known."""
        for name in source_names:
            if last_result.get(name) is not None:
                for result in CrawlResult:
                    self.source_result.labels(name, result).set(1 if last_result[name] == result else 0)
            self.failures_in_row.labels(name).set(failures.get(name, 0))
            every = intervals.get(name)
            if every is not None:
                self.poll_interval.labels(name).set(
                    poll_interval(every, failures.get(name, 0), self.max_backoff).total_seconds())

    def drop_source(self, name: str) -> None:
        for gauge in (self.staleness, self.failures_in_row, self.poll_interval):
            with contextlib.suppress(KeyError):
                gauge.remove(name)
        for result in CrawlResult:
            with contextlib.suppress(KeyError):
                self.source_result.remove(name, result)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class HttpEndpoint:
    """A tiny HTTP/1.1 server on the service's loop: no thread, no framework. ``health`` says
    whether the service is healthy (200, else 503) and what ``/healthz`` shows as JSON."""

    def __init__(self, metrics: Metrics, health: Callable[[], tuple[bool, Mapping[str, object]]],
                 host: str, port: int):
        self.metrics = metrics
        self.health = health
        self.host = host
        self.port = port
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("http endpoint listening on http://%s:%d (/healthz, /metrics)", self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=10)
            while (await asyncio.wait_for(reader.readline(), timeout=10)).strip():
                pass  # headers: nothing we need
            parts = request.decode("latin-1").split()
            method, path = (parts[0], parts[1].split("?")[0]) if len(parts) >= 2 else ("", "")
            if method not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path == "/metrics":
                body = await asyncio.to_thread(self.metrics.exposition)
                status, ctype = "200 OK", CONTENT_TYPE_LATEST
            elif path == "/healthz":
                ok, details = self.health()
                status = "200 OK" if ok else "503 Service Unavailable"
                ctype, body = "application/json", (json.dumps(details) + "\n").encode()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"try /healthz or /metrics\n"
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n").encode()
            writer.write(head + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("http endpoint request failed")
        finally:
            writer.close()


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:9108`` or ``:9108`` (loopback) into host and port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--http expects HOST:PORT, e.g. 127.0.0.1:9108 (got {text!r})")
    return host.strip("[]") or "127.0.0.1", int(port)
