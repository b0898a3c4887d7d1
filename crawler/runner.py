"""Run a crawl of several sources in this process with one CrawlerProcess (Twisted's reactor
cannot restart: call ``run_crawl`` once per process; the service runs ``lookout crawl NAME`` in a
subprocess). Records ``crawl_runs`` and the crawl state of each ``sources`` row."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings
from sqlalchemy import update

from core.store import Store, crawl_runs, sources, utcnow
from crawler.extract import ExtractionPool
from crawler.logsetup import quiet_libraries
from crawler.runtime import CrawlRuntime, Ingestor
from crawler.settings import apply_config
from crawler.spiders import spider_for
from crawler.state import upsert_source

if TYPE_CHECKING:
    from collections.abc import Callable

    from crawler.config import CrawlConfig
    from crawler.sources import Source
    from crawler.state import SourceStats

log = logging.getLogger(__name__)


@dataclass
class CrawlReport:
    sources: list[SourceStats] = field(default_factory=list)
    seconds: float = 0.0

    def total(self, attr: str) -> int:
        return sum(getattr(s, attr) for s in self.sources)

    @property
    def failures(self) -> int:
        return sum(s.failures for s in self.sources)

    @property
    def ok(self) -> bool:
        return all(s.result != "failed" for s in self.sources)


def crawl_settings(crawl: CrawlConfig, *, version: str, debug: bool = False) -> Settings:
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
        self.run_ids: dict[str, int] = {}

    def started(self, source: Source) -> None:
        now = utcnow()
        with self.store.begin() as conn:
            upsert_source(conn, source.name, source.kind, source.url)
            conn.execute(update(sources).where(sources.c.name == source.name).values(last_crawl_at=now))
            result = conn.execute(crawl_runs.insert().values(source=source.name, started_at=now))
            self.run_ids[source.name] = int(result.inserted_primary_key[0])

    def spider_closed(self, spider, reason: str) -> None:
        stats: SourceStats = spider.source_stats
        stats.finish_reason = reason
        stats.seconds = time.monotonic() - spider.started_at
        now = utcnow()
        error = stats.index_error or (None if reason == "finished" else f"crawl ended: {reason}")
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
            values: dict = {"last_result": stats.result, "last_error": error}
            if stats.result != "failed":
                values["last_success_at"] = now
            if stats.failures and not error:
                values["last_error"] = f"{stats.failures} page(s) failed: {stats.failed_text()}"
            conn.execute(update(sources).where(sources.c.name == stats.source).values(**values))
        self.report.sources.append(stats)
        if self.progress is not None:
            self.progress(stats)


def run_crawl(
    sources_: list[Source],
    *,
    crawl: CrawlConfig,
    store: Store,
    ingestor: Ingestor,
    version: str,
    debug: bool = False,
    progress: Callable[[SourceStats], None] | None = None,
) -> CrawlReport:
    """Crawl ``sources_`` now (in parallel, one reactor) and return per-source stats."""
    started = time.monotonic()
    report = CrawlReport()
    if not sources_:
        return report
    # Before the reactor: forking is safe and cheap here, and the workers share the ruleset
    # (matching is pure CPU work: it runs next to extraction, not on the reactor's process).
    quiet_libraries()
    extractor = ExtractionPool(ruleset=ingestor.ruleset()).start()
    runtime = CrawlRuntime(crawl, store, ingestor, extractor, sources=list(sources_))
    recorder = _RunRecorder(runtime.store, report, progress)
    try:
        process = CrawlerProcess(crawl_settings(crawl, version=version, debug=debug))
        for source in sources_:
            crawler = process.create_crawler(spider_for(source.kind))
            crawler.signals.connect(recorder.spider_closed, signal=signals.spider_closed)
            recorder.started(source)
            process.crawl(crawler, source=source, runtime=runtime)
        process.start()
    finally:
        extractor.shutdown()
        runtime.close()
    report.seconds = time.monotonic() - started
    order = {s.name: i for i, s in enumerate(sources_)}
    report.sources.sort(key=lambda s: order.get(s.source, 0))
    return report
