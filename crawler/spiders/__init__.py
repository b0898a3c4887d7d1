"""One spider per source kind: ``feed``, ``sitemap``, ``listing`` (``scrapy crawl KIND -a source=NAME``)."""

from __future__ import annotations


def spider_for(kind: str):
    from crawler.spiders.feed import FeedSpider
    from crawler.spiders.listing import ListingSpider
    from crawler.spiders.sitemap import SitemapSpider

    return {"feed": FeedSpider, "sitemap": SitemapSpider, "listing": ListingSpider}[kind]
