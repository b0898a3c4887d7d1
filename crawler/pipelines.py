"""The store pipeline: each cleaned article goes to the ingestor (store, match, enqueue alerts
in one transaction), on the runtime's writer thread, in batches, and the outcome is counted in
the spider's per-source stats."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.items import Article
    from crawler.spiders.base import LookoutSpider
    from rules.types import Analysis

log = logging.getLogger(__name__)


@dataclass
class Cleaned:
    """The item a spider yields: the article and, when the extraction pool matched the rules,
    its matches and mentions."""

    article: Article
    analysis: Analysis | None = None


class StorePipeline:
    def __init__(self, crawler: Crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        return cls(crawler)

    async def process_item(self, item: Cleaned) -> Cleaned:
        spider: LookoutSpider = self.crawler.spider  # type: ignore[assignment]
        stats = spider.source_stats
        url = item.article.url
        try:
            outcome = await spider.runtime.ingest(item.article, item.analysis)
        except Exception as exc:  # one bad article must not stop the crawl
            log.error("storing %s failed: %s: %s", url, type(exc).__name__, exc)
            spider.fail(url, "store-error", f"{type(exc).__name__}: {exc}")
            return item
        if outcome.status == "new":
            stats.new += 1
            if not outcome.new_story:
                stats.duplicates += 1
        elif outcome.status == "updated":
            stats.updated += 1
        else:
            stats.unchanged += 1
        return item
