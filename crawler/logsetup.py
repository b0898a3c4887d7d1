"""Crawl logging: Scrapy, Twisted and trafilatura speak at WARNING and above (DEBUG with
``lookout -v``), and no log line ever carries an article item (its repr holds the whole text)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy import logformatter

from crawler.items import Article, Cleaned

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.http import Response
    from scrapy.logformatter import LogFormatterResult
    from twisted.python.failure import Failure

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


def _url(item: object) -> str:
    """An item as a log line names it: its article's URL, else its type."""
    article = item.article if isinstance(item, Cleaned) else item
    return (article.url if isinstance(article, Article) else "") or type(article).__name__


class ItemSafeLogFormatter(logformatter.LogFormatter):
    """Scrapy's messages, with an item named by its URL instead of its repr."""

    def scraped(
        self,
        item: object,
        response: Response | Failure | None,  # noqa: ARG002 - Scrapy's signature
        spider: Spider,  # noqa: ARG002 - Scrapy's signature
    ) -> LogFormatterResult:
        return {"level": logging.DEBUG, "msg": "scraped %(url)s", "args": {"url": _url(item)}}

    def dropped(
        self,
        item: object,
        exception: BaseException,
        response: Response | Failure | None,  # noqa: ARG002 - Scrapy's signature
        spider: Spider,  # noqa: ARG002 - Scrapy's signature
    ) -> LogFormatterResult:
        return {
            "level": logging.WARNING,
            "msg": "dropped %(url)s: %(exception)s",
            "args": {"url": _url(item), "exception": exception},
        }

    def item_error(
        self,
        item: object,
        exception: BaseException,  # noqa: ARG002 - Scrapy's signature (Scrapy logs the traceback itself)
        response: Response | Failure | None,  # noqa: ARG002 - Scrapy's signature
        spider: Spider,  # noqa: ARG002 - Scrapy's signature
    ) -> LogFormatterResult:
        return {"level": logging.ERROR, "msg": "error processing %(url)s", "args": {"url": _url(item)}}
