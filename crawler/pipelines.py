"""The store pipeline: each cleaned article goes to the ingestor (store, match, enqueue alerts
in one transaction), on the runtime's writer thread, in batches, and the outcome is counted in
the spider's per-source stats."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from crawler.items import Article
from lookout.ingest import Analysed

log = logging.getLogger(__name__)


@dataclass
class Cleaned:
    """The item a spider yields: the article and, when the extraction pool matched the rules,
    its matches and mentions."""

    article: Article
    analysed: Analysed | None = None


class StorePipeline:
    def __init__(self, crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def process_item(self, item: Cleaned) -> Cleaned:
        spider = self.crawler.spider
        stats = spider.stats_
        url = item.article.url
        try:
            outcome = await spider.runtime.ingest(item.article, item.analysed)
        except Exception as exc:  # one bad article must not stop the crawl
            log.error("storing %s failed: %s: %s", url, type(exc).__name__, exc)
            spider.fail(url, "store-error", f"{type(exc).__name__}: {exc}")
            return item
        status = getattr(outcome, "status", "new")
        if status == "new":
            stats.new += 1
            if not getattr(outcome, "new_story", True):
                stats.duplicates += 1
        elif status == "updated":
            stats.updated += 1
        else:
            stats.unchanged += 1
        return item
