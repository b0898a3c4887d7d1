"""Crawl logging: Scrapy, Twisted and trafilatura speak at WARNING and above (DEBUG with
``lookout -v``), and no log line ever carries an article item (its repr holds the whole text)."""

from __future__ import annotations

import logging

from scrapy import logformatter

NOISY = ("scrapy", "twisted", "py.warnings", "trafilatura", "htmldate", "courlan", "filelock", "hpack", "asyncio")


class LibraryFilter(logging.Filter):
    """Drops the libraries' records below ``level`` whatever level their loggers are set to
    (Scrapy's ``configure_logging`` sets the scrapy logger to DEBUG and logs at once)."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level
        self.prefixes = tuple(NOISY) + tuple(f"{n}." for n in NOISY)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or not record.name.startswith(self.prefixes)


def quiet_libraries() -> None:
    """Keep Scrapy, Twisted and trafilatura at WARNING unless the root logger asks for DEBUG
    (``lookout -v``). Call before building the CrawlerProcess."""
    root = logging.getLogger()
    level = logging.DEBUG if root.getEffectiveLevel() <= logging.DEBUG else logging.WARNING
    for handler in root.handlers:
        if not any(isinstance(f, LibraryFilter) for f in handler.filters):
            handler.addFilter(LibraryFilter(level))


def _url(item) -> str:
    item = getattr(item, "article", item)  # crawler.pipelines.Cleaned wraps the Article
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
