"""Crawl state: what the store keeps between crawls (conditional-GET validators per index URL in
``http_cache``, failures per source and URL in ``crawl_failures``, the article URLs backing off
after failing in ``failing_urls``, the ``sources`` row of each configured source) and what one
crawl counts per source (``SourceStats``, ``CrawlResult``).

Backoff: an article URL that failed is not requested again before its next try. 404 and 410
(and failures that are the page's own: too large, not HTML, no text, robots, a private address,
other 4xx) are tried again after 1 h, then 6 h, then given up; 5xx, 408, 429, timeouts and
network errors are retried after 10 min, doubling, at most 12 h apart, never given up."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, assert_never

from sqlalchemy import delete, select, update

from core.store import Store, crawl_failures, failing_urls, http_cache, insert_ignore, sources, url_hash, utcnow

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from sqlalchemy.engine import Connection, Row

    from crawler.sources import SourceKind


class CrawlResult(StrEnum):
    """How one source's crawl ended, as ``sources.last_result`` and ``crawl_runs.result`` store it."""

    OK = "ok"  # index read, every article page stored
    PARTIAL = "partial"  # index read, some article pages failed
    EMPTY = "empty"  # index read, and it lists no article at all (a feed with no entries, a selector matching nothing)
    FAILED = "failed"  # the index page itself failed, or the crawl ended abnormally
    TIMEOUT = "timeout"  # the crawl was abandoned at ``crawl.timeout``
    KILLED = "killed"  # the worker crawling it died (a signal: the kernel's OOM killer, kill -9)


# The counters of ``SourceStats`` that add up across sources (``CrawlReport.total``).
StatCounter = Literal["fetched", "new", "updated", "unchanged", "duplicates", "skipped", "not_modified"]


@dataclass
class SourceStats:
    """One source's results in one crawl (what ``lookout crawl`` prints per source)."""

    source: str
    kind: SourceKind | None = None  # None: not said (stats built by hand)
    url: str | None = None  # the source's index URL (its ``sources`` row is made from it if missing)
    fetched: int = 0  # article pages downloaded
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0  # new URLs that joined a story already stored (syndicated copies)
    skipped: int = 0  # entries already stored and unchanged, or backing off: not downloaded
    backing_off: int = 0  # of the skipped: URLs that failed before, waiting for their next try or given up
    not_modified: int = 0  # index pages answered 304
    index_failures: int = 0  # of the failed: the source's own index pages
    failed: Counter[str] = field(default_factory=Counter)  # reason -> count
    seconds: float = 0.0
    index_error: str | None = None  # the feed/sitemap/listing itself failed
    index_reason: str | None = None  # its short reason: "http-404", "not-a-feed (HTML page)", ...
    finish_reason: str | None = None
    indexes_read: int = 0  # index pages parsed (a 304 is not read)
    entries: int = 0  # article links the index pages listed
    empty_reason: str | None = None  # why an index page listed none: "selector matched nothing", ...
    # ETag and Last-Modified by index URL, to save with the run (a clean crawl's only).
    validators: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return sum(self.failed.values())

    @property
    def empty(self) -> bool:
        """Index pages were read (not answered 304) and none listed an article."""
        return self.indexes_read > 0 and self.entries == 0 and self.not_modified == 0

    @property
    def result(self) -> CrawlResult:
        if self.finish_reason == "timeout":
            return CrawlResult.TIMEOUT
        if self.index_error:
            return CrawlResult.FAILED
        if self.finish_reason not in (None, "finished"):
            return CrawlResult.FAILED
        if self.failures:
            return CrawlResult.PARTIAL
        return CrawlResult.EMPTY if self.empty else CrawlResult.OK

    @property
    def outcome(self) -> str:
        """The result with its reason, as the crawl summary shows it: ``ok``, ``partial``,
        ``empty: selector matched nothing``, ``failed: not-a-feed (HTML page)``."""
        result = self.result
        if result == CrawlResult.FAILED:
            ended = None if self.finish_reason in (None, "finished") else f"crawl ended: {self.finish_reason}"
            why = self.index_reason or ended
            return f"{result}: {why}" if why else str(result)
        if result == CrawlResult.EMPTY:
            return f"{result}: {self.empty_reason}" if self.empty_reason else str(result)
        return str(result)

    def failed_text(self) -> str:
        return ", ".join(f"{reason} {n}" for reason, n in sorted(self.failed.items())) or "-"

    def count(self, counter: StatCounter) -> int:
        """The counter named ``counter``."""
        match counter:
            case "fetched":
                return self.fetched
            case "new":
                return self.new
            case "updated":
                return self.updated
            case "unchanged":
                return self.unchanged
            case "duplicates":
                return self.duplicates
            case "skipped":
                return self.skipped
            case "not_modified":
                return self.not_modified
            case _:
                assert_never(counter)


def cached_validators(conn: Connection, url: str) -> tuple[str | None, str | None]:
    row = conn.execute(
        select(http_cache.c.etag, http_cache.c.last_modified).where(http_cache.c.url == url)
    ).first()
    return (row.etag, row.last_modified) if row else (None, None)


def save_validators(
    conn: Connection, url: str, etag: str | None, last_modified: str | None, now: datetime | None = None
) -> None:
    now = now or utcnow()
    values = {"etag": etag, "last_modified": last_modified, "checked_at": now}
    if not insert_ignore(conn, http_cache, {"url": url, **values}):
        conn.execute(update(http_cache).where(http_cache.c.url == url).values(**values))


def record_failure(
    store: Store,
    source: str,
    url: str,
    reason: str,
    detail: str | None = None,
    *,
    backoff_url: str | None = None,
    now: datetime | None = None,
) -> FailingUrl | None:
    """One ``crawl_failures`` row, in its own transaction (detail cut to 2000 characters); with
    ``backoff_url`` (an article's URL as its index listed it) that URL's backoff moves on in the
    same transaction, and its new state is returned."""
    now = now or utcnow()
    with store.begin() as conn:
        conn.execute(
            crawl_failures.insert().values(source=source, url=url, reason=reason, detail=(detail or "")[:2000], at=now)
        )
        if backoff_url is None or reason in NOT_BACKED_OFF:
            return None
        return note_failure(conn, source, backoff_url, reason, detail, now)


# -- backoff of failing article URLs ----------------------------------------------------------

GONE_DELAYS = (timedelta(hours=1), timedelta(hours=6))  # then given up
RETRY_FIRST = timedelta(minutes=10)
RETRY_CAP = timedelta(hours=12)
# Failures the server may get over: retried with growing delays, never given up.
TRANSIENT_REASONS = frozenset({
    "http-408", "http-429", "timeout", "connection-refused", "dns", "tls", "connection", "error", "ignored",
})
NOT_BACKED_OFF = frozenset({"store-error"})  # ours, not the page's: tried again at the next crawl


@dataclass(frozen=True)
class FailingUrl:
    """An article URL that failed: how often, why last, and when it may be requested again."""

    url: str
    source: str
    reason: str
    tries: int
    last_failed_at: datetime
    next_try_at: datetime | None  # None: given up
    detail: str | None = None

    @property
    def given_up(self) -> bool:
        return self.next_try_at is None

    def waiting(self, now: datetime) -> bool:
        """Not to be requested at ``now``: given up, or its next try still ahead."""
        return self.next_try_at is None or self.next_try_at > now


def transient(reason: str) -> bool:
    return reason in TRANSIENT_REASONS or reason.startswith("http-5")


def retry_delay(reason: str, tries: int) -> timedelta | None:
    """How long a URL that has failed ``tries`` times, the last for ``reason``, waits before it
    is requested again; None: given up (404, 410 and the page's own faults, at the third try)."""
    if transient(reason):
        return min(RETRY_FIRST * 2 ** min(tries - 1, 16), RETRY_CAP)
    return GONE_DELAYS[tries - 1] if tries <= len(GONE_DELAYS) else None


def note_failure(
    conn: Connection, source: str, url: str, reason: str, detail: str | None, now: datetime
) -> FailingUrl:
    """Count one more failure of ``url`` and schedule its next try (or give it up)."""
    key = url_hash(url)
    row = conn.execute(select(failing_urls.c.tries).where(failing_urls.c.url_hash == key)).first()
    tries = (row.tries if row is not None else 0) + 1
    delay = retry_delay(reason, tries)
    next_try = now + delay if delay is not None else None
    values = {
        "url": url, "source": source, "reason": reason, "detail": (detail or "")[:2000], "tries": tries,
        "last_failed_at": now, "next_try_at": next_try,
    }
    if row is not None or not insert_ignore(conn, failing_urls, {"url_hash": key, "first_failed_at": now, **values}):
        conn.execute(update(failing_urls).where(failing_urls.c.url_hash == key).values(**values))
    return FailingUrl(url, source, reason, tries, now, next_try, detail)


def failing_states(conn: Connection, urls: Sequence[str]) -> dict[str, FailingUrl]:
    """The backoff state of those of ``urls`` that failed before, by URL."""
    out: dict[str, FailingUrl] = {}
    hashes = [url_hash(u) for u in urls]
    for start in range(0, len(hashes), 500):
        for row in conn.execute(select(failing_urls).where(failing_urls.c.url_hash.in_(hashes[start : start + 500]))):
            out[row.url] = _failing(row)
    return out


def list_failing(conn: Connection, source: str | None = None) -> list[FailingUrl]:
    """Every URL backing off (of one source), the next to be tried first, given-up ones last."""
    stmt = select(failing_urls)
    if source is not None:
        stmt = stmt.where(failing_urls.c.source == source)
    rows = [_failing(r) for r in conn.execute(stmt)]
    return sorted(rows, key=lambda f: (f.given_up, f.next_try_at or f.last_failed_at, f.url))


def clear_failures(conn: Connection, urls: Iterable[str]) -> set[str]:
    """Forget the backoff of ``urls``; the URLs that had one."""
    by_hash = {url_hash(u): u for u in urls}
    found = set(conn.execute(
        select(failing_urls.c.url_hash).where(failing_urls.c.url_hash.in_(list(by_hash)))
    ).scalars())
    if found:
        conn.execute(delete(failing_urls).where(failing_urls.c.url_hash.in_(found)))
    return {by_hash[h] for h in found}


def clear_source_failures(conn: Connection, source: str | None = None) -> int:
    """Forget the backoff of every URL (of one source); how many were forgotten."""
    stmt = delete(failing_urls)
    if source is not None:
        stmt = stmt.where(failing_urls.c.source == source)
    return conn.execute(stmt).rowcount or 0


def _failing(row: Row[Any]) -> FailingUrl:
    return FailingUrl(
        row.url, row.source, row.reason, row.tries, row.last_failed_at, row.next_try_at, row.detail or None
    )


def upsert_source(conn: Connection, name: str, kind: str, url: str) -> None:
    """The ``sources`` row of a configured source, created or brought up to date (its kind and
    URL may change in the sources file while its crawl history stays)."""
    if not insert_ignore(conn, sources, {"name": name, "kind": kind, "url": url}):
        conn.execute(update(sources).where(sources.c.name == name).values(kind=kind, url=url))


# The counters of a source's crawl in the order the line and the table read them, as an account
# of its entries: ``seen``, the article URLs its index pages listed; ``skipped``, those not
# downloaded (stored already and unchanged, backing off after failing, or claimed by the crawl
# of another source running at the same time); ``fetched``, the pages downloaded and read as
# HTML; what storing them found (``new``, ``updated``, ``unchanged``; ``duplicates``: the new
# ones that joined a story already stored, syndicated copies); ``failed``, the pages that failed
# before or after their download.
ACCOUNT = ("seen", "skipped", "fetched", "new", "updated", "unchanged", "duplicates", "failed")


def account(stats: SourceStats) -> tuple[int, ...]:
    """The counters ``ACCOUNT`` names, in its order."""
    return (
        stats.entries, stats.skipped, stats.fetched, stats.new, stats.updated, stats.unchanged,
        stats.duplicates, stats.failures,
    )


def unaccounted(stats: SourceStats) -> int:
    """The entries the counters place nowhere: seen - skipped - new - updated - unchanged - failed.

    Each entry an index page lists is skipped or requested (``follow_entries``), and each page
    requested is stored once (new, updated or unchanged: the store pipeline) or fails once
    (``fail``: before its download, an HTTP error, a timeout, a refused address; or after it, not
    HTML, no text, undecodable, a store error). So this is 0 for a crawl that finished with every
    index page read, or whose index pages failed (``index_failures``: counted in ``failed``, they
    list no entry). Not for a crawl cut short (its timeout, a shutdown): the pages still in flight
    then are never counted."""
    placed = stats.skipped + stats.new + stats.updated + stats.unchanged + stats.failures - stats.index_failures
    return stats.entries - placed


def accounted(stats: SourceStats) -> bool:
    """Every entry the source's index pages listed is skipped, stored or failed (``unaccounted``)."""
    return unaccounted(stats) == 0


def progress_line(stats: SourceStats) -> str:
    """A source's result as ``lookout crawl`` prints it when the source finishes: ``rss: ok -
    seen 6, skipped 1, fetched 5, new 5, updated 0, unchanged 0, duplicates 1, failed 0 (1.2 s)``;
    ``skipped 3 (2 backing off)`` when some skipped URLs wait for their next try after failing."""
    counts = [f"{name} {n}" for name, n in zip(ACCOUNT, account(stats), strict=True)]
    if stats.backing_off:
        counts[1] += f" ({stats.backing_off} backing off)"
    return f"{stats.source}: {stats.outcome} - {', '.join(counts)} ({stats.seconds:.1f} s)"
