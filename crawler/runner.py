"""Run a crawl of several sources in this process with one CrawlerProcess (Twisted's reactor
cannot restart: call ``run_crawl`` once per process; a long-running caller crawls in a
subprocess). Records ``crawl_runs`` and the crawl state of each ``sources`` row, and returns a
``CrawlReport``; ``crawl_settings`` are the Scrapy settings such a crawl runs with. Plain
``scrapy crawl`` records its run through the same recorder (``StandaloneRunRecorder``, a Scrapy
extension)."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import scrapy
from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings
from sqlalchemy import update

from core.store import Store, crawl_runs, utcnow
from core.store import sources as source_rows
from crawler.extract import ExtractionPool
from crawler.logsetup import quiet_libraries
from crawler.runtime import CrawlRuntime, Ingestor, take_batch
from crawler.settings import apply_config
from crawler.spiders.base import LookoutSpider
from crawler.state import CrawlResult, progress_line, save_validators, upsert_source
from crawler.worker import CrawlEngine, run_engine

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy.crawler import Crawler
    from sqlalchemy.engine import Connection

    from crawler.config import CrawlConfig
    from crawler.sources import Source
    from crawler.state import SourceStats, StatCounter

log = logging.getLogger(__name__)


@dataclass
class CrawlReport:
    """One crawl's per-source stats (in the order the sources were given) and its duration."""

    sources: list[SourceStats] = field(default_factory=list)
    seconds: float = 0.0

    def total(self, counter: StatCounter) -> int:
        """``counter`` ("fetched", "new", ...) summed over the sources."""
        return sum(s.count(counter) for s in self.sources)

    @property
    def failures(self) -> int:
        return sum(s.failures for s in self.sources)

    @property
    def ok(self) -> bool:
        return all(s.result != CrawlResult.FAILED for s in self.sources)

    @property
    def result(self) -> CrawlResult:
        """The whole crawl's: failed when a source failed, partial when pages failed, else ok."""
        if not self.ok:
            return CrawlResult.FAILED
        return CrawlResult.PARTIAL if self.failures else CrawlResult.OK


def crawl_settings(crawl: CrawlConfig, *, version: str, debug: bool = False) -> Settings:
    """The crawler's Scrapy settings with the ``crawl:`` section applied, for a managed crawl
    (the long-lived engine of ``crawler.worker``: requests of abandoned crawls are dropped, and
    enough requests at once for ``crawl.parallel`` sources)."""
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    settings.set("LOOKOUT_MANAGED", True, priority="cmdline")
    settings.set("LOG_INSTALL_ROOT_HANDLER", False, priority="cmdline")  # the caller's logging owns the root
    apply_config(settings, crawl, version=version, debug=debug, priority="cmdline")
    settings.set("CONCURRENT_REQUESTS", max(16, 2 * crawl.parallel), priority="cmdline")
    middlewares = settings.getdict("DOWNLOADER_MIDDLEWARES")
    middlewares["crawler.worker.AbandonedCrawls"] = 50
    settings.set("DOWNLOADER_MIDDLEWARES", middlewares, priority="cmdline")
    return settings


WRITE_ATTEMPTS = 3
RECORD_BATCH = 256  # finished crawls per transaction at most


class RunRecorder:
    """Records each finished source crawl: its ``crawl_runs`` row and its ``sources`` row, in one
    transaction, on a thread of its own (never on the reactor), several crawls per commit."""

    def __init__(self, store: Store, *, wait: float = 0.05):
        self.store = store
        self.wait = wait
        self._queue: queue.Queue[_Finished | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="lookout-runs", daemon=True)
        self._thread.start()

    def record(self, stats: SourceStats) -> Future[None]:
        """``crawler.worker.CrawlEngine``'s ``on_finished`` (the reactor thread): the future is
        done once the run is committed."""
        finished = utcnow()
        item = _Finished(stats, finished - timedelta(seconds=stats.seconds), finished, Future())
        self._queue.put(item)
        return item.done

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (taken := take_batch(self._queue, self.wait, RECORD_BATCH)) is not None:
            batch, closing = taken
            self._write(batch)
            if closing:
                return

    def _write(self, batch: list[_Finished]) -> None:
        """One transaction for the batch; tried again (a busy database: SQLite's write lock held
        past its busy timeout) before it is given up, logged."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self.store.begin() as conn:
                    for item in batch:
                        record_run(conn, item.stats, item.started, item.finished)
            except Exception as exc:
                if attempt < WRITE_ATTEMPTS:
                    log.warning("recording %d crawl(s) failed (%s); trying again", len(batch), type(exc).__name__)
                    time.sleep(attempt)
                    continue
                log.exception("recording %d crawl(s) failed; given up", len(batch))
                for item in batch:
                    item.done.set_exception(exc)
                return
            for item in batch:
                item.done.set_result(None)
            return


@dataclass(frozen=True)
class _Finished:
    stats: SourceStats
    started: datetime
    finished: datetime
    done: Future[None]


def record_run(conn: Connection, stats: SourceStats, started: datetime, finished: datetime) -> None:
    """One finished source crawl into its ``sources`` row and, unless ``uneventful``, ``crawl_runs``."""
    reason = stats.finish_reason
    error = stats.index_error or (None if reason in (None, "finished") else f"crawl ended: {reason}")
    if reason == "timeout":
        error = f"timed out after {stats.seconds:.0f}s (crawl.timeout); abandoned"
    if error is None and stats.result == CrawlResult.EMPTY:
        error = stats.empty_reason or "the index listed no article"
    for url, (etag, modified) in stats.validators.items():
        save_validators(conn, url, etag, modified, now=finished)
    values: dict[str, object] = {"last_crawl_at": finished, "last_result": stats.result}
    if stats.result in (CrawlResult.OK, CrawlResult.PARTIAL):  # an empty index is no success
        values["last_success_at"] = finished
    if uneventful(stats):
        # Nothing fetched, nothing failed (a 304, or every entry known): the sources row says
        # when; a run row for each of thousands of such polls an hour would tell nothing more.
        _update_source(conn, stats, {**values, "last_error": None})
        return
    conn.execute(crawl_runs.insert().values(
        source=stats.source, started_at=started, finished_at=finished, result=stats.result,
        fetched=stats.fetched, new=stats.new, updated=stats.updated, duplicates=stats.duplicates,
        failed=stats.failures, skipped=stats.skipped, unchanged=stats.unchanged,
        error=error or (f"failed: {stats.failed_text()}" if stats.failures else None),
    ))
    pages_failed = f"{stats.failures} page(s) failed: {stats.failed_text()}" if stats.failures else None
    values["last_error"] = error or pages_failed
    _update_source(conn, stats, values)


def _update_source(conn: Connection, stats: SourceStats, values: dict[str, object]) -> None:
    """The source's row brought up to date; made first when missing (a worker crawling a source
    no service scheduled: ``lookout.worker`` driven by hand, a test)."""
    done = conn.execute(update(source_rows).where(source_rows.c.name == stats.source).values(**values))
    if not done.rowcount and stats.kind is not None and stats.url is not None:
        upsert_source(conn, stats.source, stats.kind, stats.url)
        conn.execute(update(source_rows).where(source_rows.c.name == stats.source).values(**values))


def uneventful(stats: SourceStats) -> bool:
    """A crawl that read nothing new and lost nothing: ok, no page fetched, none failed."""
    return stats.result == CrawlResult.OK and stats.fetched == 0 and stats.failures == 0


class StandaloneRunRecorder:
    """Scrapy extension (``EXTENSIONS`` in crawler.settings): plain ``scrapy crawl KIND -a
    source=NAME`` records its run in ``crawl_runs`` and the ``sources`` row through the runner's
    own recorder, and logs the source's result line. Not enabled for the runner's crawls
    (``LOOKOUT_MANAGED``): ``run_crawl`` records those itself."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self.started: datetime | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StandaloneRunRecorder:
        if crawler.settings.getbool("LOOKOUT_MANAGED"):
            raise NotConfigured  # the runner records its own crawls (no message: Scrapy would log it)
        extension = cls(crawler)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        return extension

    def spider_opened(self, spider: scrapy.Spider) -> None:
        if not isinstance(spider, LookoutSpider):
            return
        self.started = utcnow()
        source = spider.source
        with spider.runtime.store.begin() as conn:
            upsert_source(conn, source.name, source.kind, source.url)
        self.crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    def spider_closed(self, spider: scrapy.Spider, reason: str) -> None:
        if not isinstance(spider, LookoutSpider) or self.started is None:
            return
        stats = spider.source_stats
        stats.finish_reason = reason
        stats.seconds = time.monotonic() - spider.started_at
        with spider.runtime.store.begin() as conn:
            record_run(conn, stats, self.started, utcnow())
        _log_progress(stats)


def _log_progress(stats: SourceStats) -> None:
    log.log(logging.INFO if stats.result == CrawlResult.OK else logging.WARNING, "%s", progress_line(stats))


def run_crawl(
    sources: list[Source],
    *,
    crawl: CrawlConfig,
    store: Store,
    ingestor: Ingestor,
    version: str,
    debug: bool = False,
    progress: Callable[[SourceStats], None] | None = None,
) -> CrawlReport:
    """Crawl ``sources`` now, all at once, in this process's long-lived crawl engine (the one a
    worker runs; call once per process: Twisted's reactor cannot restart), and return their stats."""
    started = time.monotonic()
    report = CrawlReport()
    if not sources:
        return report
    # Before the reactor: forking is safe and cheap here, and the workers share the ruleset
    # (matching is pure CPU work: it runs next to extraction, not on the reactor's process).
    quiet_libraries()
    extractor = ExtractionPool(ruleset=ingestor.ruleset()).start()
    runtime = CrawlRuntime(crawl, store, ingestor, extractor, sources=list(sources))
    recorder = RunRecorder(store)

    async def crawl_all(engine: CrawlEngine) -> None:
        await asyncio.to_thread(_ensure_rows, store, sources)
        pending = [engine.submit(source) for source in sources]
        for finished in asyncio.as_completed(pending):
            stats = await finished
            report.sources.append(stats)
            if progress is not None:
                progress(stats)

    try:
        run_engine(crawl_settings(crawl, version=version, debug=debug),
                   CrawlEngine(runtime, on_finished=recorder.record), crawl_all)
    finally:
        recorder.close()
        extractor.shutdown()
        runtime.close()
    report.seconds = time.monotonic() - started
    order = {s.name: i for i, s in enumerate(sources)}
    report.sources.sort(key=lambda s: order.get(s.source, 0))
    return report


def _ensure_rows(store: Store, sources: list[Source]) -> None:
    with store.begin() as conn:
        for source in sources:
            upsert_source(conn, source.name, source.kind, source.url)
