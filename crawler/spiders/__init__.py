"""One spider per source kind: ``feed``, ``sitemap``, ``listing`` (``scrapy crawl KIND -a source=NAME``),
and ``spider_for``, the runner's way from a source's kind to its spider."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.spiders.feed import FeedSpider
from crawler.spiders.listing import ListingSpider
from crawler.spiders.sitemap import SitemapSpider

if TYPE_CHECKING:
    from crawler.sources import SourceKind
    from crawler.spiders.base import LookoutSpider

SPIDERS: dict[SourceKind, type[LookoutSpider]] = {
    spider.kind: spider for spider in (FeedSpider, SitemapSpider, ListingSpider)
}


def spider_for(kind: SourceKind) -> type[LookoutSpider]:
    return SPIDERS[kind]
