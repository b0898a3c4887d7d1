"""The store pipeline: each cleaned article goes to the ingestor (store, match, enqueue alerts
in one transaction) and the outcome is counted in the spider's per-source stats."""

from __future__ import annotations

import logging

from crawler.items import Article

log = logging.getLogger(__name__)


class StorePipeline:
    def __init__(self, ingestor=None):
        self._ingestor = ingestor  # the LOOKOUT_INGESTOR setting, when given

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.settings.get("LOOKOUT_INGESTOR"))

    def process_item(self, item: Article, spider):
        ingestor = self._ingestor or spider.runtime.ingestor
        stats = spider.stats_
        try:
            outcome = ingestor.ingest(item)
        except Exception as exc:  # one bad article must not stop the crawl
            log.exception("storing %s failed", item.url)
            spider.fail(item.url, "store-error", f"{type(exc).__name__}: {exc}")
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
