"""Run a crawl of several sources in this process with one CrawlerProcess (Twisted's reactor
cannot restart: call ``run_crawl`` once per process; a long-running caller crawls in a
subprocess). Records ``crawl_runs`` and the crawl state of each ``sources`` row, and returns a
``CrawlReport``; ``crawl_settings`` are the Scrapy settings such a crawl runs with. Plain
``scrapy crawl`` records its run through the same recorder (``StandaloneRunRecorder``, a Scrapy
extension)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import scrapy
from scrapy import signals
from scrapy.crawler import Crawler, CrawlerProcess
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings
from sqlalchemy import update

from core.store import Store, crawl_runs, utcnow
from core.store import sources as source_rows
from crawler.extract import ExtractionPool
from crawler.logsetup import quiet_libraries
from crawler.runtime import CrawlRuntime, Ingestor
from crawler.settings import apply_config
from crawler.spiders import spider_for
from crawler.spiders.base import LookoutSpider
from crawler.state import CrawlResult, upsert_source
from crawler.storage import inserted_id

if TYPE_CHECKING:
    from collections.abc import Callable

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
    """The crawler's Scrapy settings with the ``crawl:`` section applied, for a managed crawl."""
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    settings.set("LOOKOUT_MANAGED", True, priority="cmdline")
    settings.set("LOG_INSTALL_ROOT_HANDLER", False, priority="cmdline")  # the caller's logging owns the root
    apply_config(settings, crawl, version=version, debug=debug, priority="cmdline")
    return settings


class _RunRecorder:
    """Held strongly by run_crawl: Scrapy keeps signal receivers as weak references."""

    def __init__(self, store: Store, report: CrawlReport, progress: Callable[[SourceStats], None] | None):
        self.store = store
        self.report = report
        self.progress = progress
        self.run_ids: dict[str, int] = {}  # source name -> its crawl_runs row

    def started(self, source: Source) -> None:
        now = utcnow()
        with self.store.begin() as conn:
            upsert_source(conn, source.name, source.kind, source.url)
            conn.execute(update(source_rows).where(source_rows.c.name == source.name).values(last_crawl_at=now))
            result = conn.execute(crawl_runs.insert().values(source=source.name, started_at=now))
            self.run_ids[source.name] = inserted_id(result)

    def spider_closed(self, spider: LookoutSpider, reason: str) -> None:
        """Scrapy's ``spider_closed`` signal (the runner connects it for its spiders only)."""
        stats = spider.source_stats
        stats.finish_reason = reason
        stats.seconds = time.monotonic() - spider.started_at
        now = utcnow()
        error = stats.index_error or (None if reason == "finished" else f"crawl ended: {reason}")
        if error is None and stats.result == CrawlResult.EMPTY:
            error = stats.empty_reason or "the index listed no article"
        with self.store.begin() as conn:
            conn.execute(
                update(crawl_runs)
                .where(crawl_runs.c.id == self.run_ids.get(stats.source))
                .values(
                    finished_at=now,
                    result=stats.result,
                    fetched=stats.fetched,
                    new=stats.new,
                    updated=stats.updated,
                    duplicates=stats.duplicates,
                    failed=stats.failures,
                    error=error or (f"failed: {stats.failed_text()}" if stats.failures else None),
                )
            )
            pages_failed = f"{stats.failures} page(s) failed: {stats.failed_text()}" if stats.failures else None
            last_error = error or pages_failed
            source_update = (
                update(source_rows)
                .where(source_rows.c.name == stats.source)
                .values(last_result=stats.result, last_error=last_error)
            )
            if stats.result in (CrawlResult.OK, CrawlResult.PARTIAL):  # an empty index is no success
                source_update = source_update.values(last_success_at=now)
            conn.execute(source_update)
        self.report.sources.append(stats)
        if self.progress is not None:
            self.progress(stats)


def progress_line(stats: SourceStats) -> str:
    """A source's result as ``lookout crawl`` prints it when the source finishes."""
    return (
        f"{stats.source}: {stats.outcome} - fetched {stats.fetched}, new {stats.new}, "
        f"updated {stats.updated}, duplicates {stats.duplicates}, failed {stats.failures} "
        f"({stats.seconds:.1f} s)"
    )


class StandaloneRunRecorder:
    """Scrapy extension (``EXTENSIONS`` in crawler.settings): plain ``scrapy crawl KIND -a
    source=NAME`` records its run in ``crawl_runs`` and the ``sources`` row through the runner's
    own recorder, and logs the source's result line. Not enabled for the runner's crawls
    (``LOOKOUT_MANAGED``): ``run_crawl`` records those itself."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self.recorder: _RunRecorder | None = None  # held here: Scrapy's signal receivers are weak references

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
        self.recorder = _RunRecorder(spider.runtime.store, CrawlReport(), _log_progress)
        self.recorder.started(spider.source)
        self.crawler.signals.connect(self.recorder.spider_closed, signal=signals.spider_closed)


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
    """Crawl ``sources`` now (in parallel, one reactor) and return per-source stats."""
    started = time.monotonic()
    report = CrawlReport()
    if not sources:
        return report
    # Before the reactor: forking is safe and cheap here, and the workers share the ruleset
    # (matching is pure CPU work: it runs next to extraction, not on the reactor's process).
    quiet_libraries()
    extractor = ExtractionPool(ruleset=ingestor.ruleset()).start()
    runtime = CrawlRuntime(crawl, store, ingestor, extractor, sources=list(sources))
    recorder = _RunRecorder(runtime.store, report, progress)
    try:
        process = CrawlerProcess(crawl_settings(crawl, version=version, debug=debug))
        for source in sources:
            crawler = process.create_crawler(spider_for(source.kind))
            crawler.signals.connect(recorder.spider_closed, signal=signals.spider_closed)
            recorder.started(source)
            process.crawl(crawler, source=source, runtime=runtime)
        process.start()
    finally:
        extractor.shutdown()
        runtime.close()
    report.seconds = time.monotonic() - started
    order = {s.name: i for i, s in enumerate(sources)}
    report.sources.sort(key=lambda s: order.get(s.source, 0))
    return report
