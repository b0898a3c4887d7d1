"""Crawl logging: Scrapy, Twisted and trafilatura speak at WARNING and above (DEBUG with
``lookout -v``), and no log line ever carries an article item (its repr holds the whole text)."""

from __future__ import annotations

import logging

from scrapy import logformatter

NOISY = ("scrapy", "twisted", "py.warnings", "trafilatura", "htmldate", "courlan", "filelock", "asyncio")


def quiet_libraries() -> None:
    """Call after Scrapy's ``configure_logging`` (CrawlerProcess runs it and sets the scrapy
    logger to DEBUG): keep the libraries at WARNING unless the root logger asks for DEBUG."""
    verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _url(item) -> str:
    return str(getattr(item, "url", None) or type(item).__name__)


class ItemSafeLogFormatter(logformatter.LogFormatter):
    """Scrapy's messages, with an item named by its URL instead of its repr."""

    def scraped(self, item, response, spider):
        return {"level": logging.DEBUG, "msg": "scraped %(url)s", "args": {"url": _url(item)}}

    def dropped(self, item, exception, response, spider):
        return {
            "level": logging.WARNING,
            "msg": "dropped %(url)s: %(exception)s",
            "args": {"url": _url(item), "exception": exception},
        }

    def item_error(self, item, exception, response, spider):
        return {"level": logging.ERROR, "msg": "error processing %(url)s", "args": {"url": _url(item)}}
