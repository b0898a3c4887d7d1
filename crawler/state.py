"""Crawl state: what the store keeps between crawls (conditional-GET validators per index URL in
``http_cache``, failures per source and URL in ``crawl_failures``, the ``sources`` row of each
configured source) and what one crawl counts per source (``SourceStats``, ``CrawlResult``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, assert_never

from sqlalchemy import select, update

from core.store import Store, crawl_failures, http_cache, insert_ignore, sources, utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection

    from crawler.sources import SourceKind


class CrawlResult(StrEnum):
    """How one source's crawl ended, as ``sources.last_result`` and ``crawl_runs.result`` store it."""

    OK = "ok"  # index read, every article page stored
    PARTIAL = "partial"  # index read, some article pages failed
    FAILED = "failed"  # the index page itself failed, or the crawl ended abnormally
    TIMEOUT = "timeout"  # the crawl was killed at ``crawl.timeout``


# The counters of ``SourceStats`` that add up across sources (``CrawlReport.total``).
StatCounter = Literal["fetched", "new", "updated", "unchanged", "duplicates", "skipped", "not_modified"]


@dataclass
class SourceStats:
    """One source's results in one crawl (what ``lookout crawl`` prints per source)."""

    source: str
    kind: SourceKind | None = None  # None: not said (stats built by hand)
    fetched: int = 0  # article pages downloaded
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0  # new URLs that joined a story already stored (syndicated copies)
    skipped: int = 0  # entries already stored and unchanged: not downloaded
    not_modified: int = 0  # index pages answered 304
    failed: Counter[str] = field(default_factory=Counter)  # reason -> count
    seconds: float = 0.0
    index_error: str | None = None  # the feed/sitemap/listing itself failed
    finish_reason: str | None = None

    @property
    def failures(self) -> int:
        return sum(self.failed.values())

    @property
    def result(self) -> CrawlResult:
        if self.index_error:
            return CrawlResult.FAILED
        if self.finish_reason not in (None, "finished"):
            return CrawlResult.FAILED
        return CrawlResult.PARTIAL if self.failures else CrawlResult.OK

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


def record_failure(store: Store, source: str, url: str, reason: str, detail: str | None = None) -> None:
    """One ``crawl_failures`` row, in its own transaction (detail cut to 2000 characters)."""
    with store.begin() as conn:
        conn.execute(
            crawl_failures.insert().values(
                source=source, url=url, reason=reason, detail=(detail or "")[:2000], at=utcnow()
            )
        )


def upsert_source(conn: Connection, name: str, kind: str, url: str) -> None:
    """The ``sources`` row of a configured source, created or brought up to date (its kind and
    URL may change in the sources file while its crawl history stays)."""
    if not insert_ignore(conn, sources, {"name": name, "kind": kind, "url": url}):
        conn.execute(update(sources).where(sources.c.name == name).values(kind=kind, url=url))
