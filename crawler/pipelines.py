"""The item pipeline: each cleaned article goes to the runtime's ingestor (which stores it, and
may match the rules and queue alerts in the same transaction) on the runtime's writer thread, in
batches; the outcome is counted in the spider's per-source stats."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from crawler.items import Cleaned
from crawler.spiders.base import LookoutSpider

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

__all__ = ["Cleaned", "StorePipeline", "store_cleaned"]  # Cleaned lives in crawler.items; named here too

log = logging.getLogger(__name__)


class StorePipeline:
    """Hands each ``Cleaned`` item to the crawl runtime and counts what storing it found."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        return cls(crawler)

    def _spider(self) -> LookoutSpider:
        spider = self.crawler.spider
        if not isinstance(spider, LookoutSpider):
            raise TypeError(f"StorePipeline serves Lookout's spiders only, not {type(spider).__name__}")
        return spider

    async def process_item(self, item: Cleaned) -> Cleaned:
        await store_cleaned(self._spider(), item)
        return item


async def store_cleaned(spider: LookoutSpider, item: Cleaned) -> None:
    """Store one cleaned article through the spider's runtime and count what storing found."""
    stats = spider.source_stats
    url = item.article.url
    try:
        stored = await spider.runtime.ingest(item.article, item.analysis)
    except Exception as exc:  # one bad article must not stop the crawl
        log.error("storing %s failed: %s: %s", url, type(exc).__name__, exc)
        spider.fail(url, "store-error", f"{type(exc).__name__}: {exc}")
        return
    if stored.status == "new":
        stats.new += 1
        if not stored.new_story:
            stats.duplicates += 1
    elif stored.status == "updated":
        stats.updated += 1
    else:
        stats.unchanged += 1
