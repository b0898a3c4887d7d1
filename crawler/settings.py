"""Scrapy settings for Lookout's spiders. Politeness and safety limits come from the
``crawl:`` section of lookout.yaml through ``apply_config``; these are the fixed parts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.settings.default_settings import EXTENSIONS_BASE as _SCRAPY_EXTENSIONS

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

    from crawler.config import CrawlConfig

BOT_NAME = "lookout"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 4
# Scrapy starts this many tasks for every response's output; an article page yields one item.
CONCURRENT_ITEMS = 1
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.5
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0
DOWNLOAD_DELAY = 0
DOWNLOAD_TIMEOUT = 30
DOWNLOAD_MAXSIZE = 5 * 1024 * 1024  # also enforced after decompression by HttpCompressionMiddleware
DOWNLOAD_WARNSIZE = 0
REDIRECT_MAX_TIMES = 5
RETRY_TIMES = 1
# A page given up on is recorded, and logged in one line with its reason, by the spider's errback.
RETRY_GIVE_UP_LOG_LEVEL = "DEBUG"
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
HTTPCACHE_ENABLED = False  # conditional GET is ours (http_cache table), per index URL
LOG_LEVEL = "WARNING"
LOG_FORMATTER = "crawler.logsetup.ItemSafeLogFormatter"  # never an article's repr in a log line
REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"

ITEM_PIPELINES = {"crawler.pipelines.StorePipeline": 300}

# Per-response work a feed crawl does not need, off the reactor's hot path: no HTTP auth, no
# depth bookkeeping (spiders follow index -> article only), no meta-copy debug check; meta
# refresh is still followed, without decoding every page to look for it. (RefererMiddleware
# stays: the redirect middlewares rely on it.) The address guard comes first: an article link
# to a private address is refused before anything is requested, robots.txt included; robots.txt
# that cannot be fetched is a DEBUG line, not an ERROR traceback; a callback's exception is one
# line and the page's failure.
DOWNLOADER_MIDDLEWARES = {
    "crawler.middlewares.AddressGuard": 60,
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "crawler.middlewares.QuietRobotsTxtMiddleware": 100,
    "scrapy.downloadermiddlewares.httpauth.HttpAuthMiddleware": None,
    "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware": None,
    "crawler.middlewares.CheapMetaRefreshMiddleware": 580,
}
SPIDER_MIDDLEWARES = {
    "scrapy.spidermiddlewares.depth.DepthMiddleware": None,
    "scrapy.spidermiddlewares.metacopy.MetaCopyDetectionMiddleware": None,
    "crawler.middlewares.OneLineErrors": 950,
}
# Scrapy's downloader, with the per-site concurrency limit kept under asyncio (crawler.downloader);
# the keep-alive pool (CONCURRENT_REQUESTS_PER_DOMAIN idle connections per host) then suffices.
DOWNLOADER = "crawler.downloader.PoliteDownloader"
# Scrapy's own extensions minus three a crawler has no use for: the memory debugger, feed export,
# and 2.19's RemoteControl, which would open a code-execution endpoint on 127.0.0.1 in every
# crawl. Left out of the base list rather than set to None in EXTENSIONS: Scrapy imports every
# class named there, and RemoteControl's import (aiohttp) is 0.2 s of each crawl's start-up.
_UNUSED_EXTENSIONS = (".MemoryDebugger", ".FeedExporter", ".RemoteControl")
EXTENSIONS_BASE = {k: v for k, v in _SCRAPY_EXTENSIONS.items() if not k.endswith(_UNUSED_EXTENSIONS)}
REMOTE_CONTROL_ENABLED = False
# Plain `scrapy crawl` records its run in crawl_runs and the sources row as `lookout crawl` does
# (a managed crawl's runner records its own: the extension stays out of its way).
EXTENSIONS = {"crawler.runner.StandaloneRunRecorder": 0}
LOOKOUT_ALLOW_PRIVATE = False  # crawl.allow_private: follow article links to private addresses


# Plain `scrapy crawl` (no runner) asks this object for its settings and runtime: the
# composition root names itself here as a string, so the crawler never imports it.
LOOKOUT_STANDALONE = "lookout.pipeline.ScrapyStandalone"
LOOKOUT_CONFIG_FILE = None  # `scrapy crawl -s LOOKOUT_CONFIG_FILE=...`; default: as `lookout` finds it


def user_agent(crawl: CrawlConfig, version: str) -> str:
    return crawl.user_agent or f"Lookout/{version} (+{crawl.contact_url})"


def apply_config(
    settings: BaseSettings, crawl: CrawlConfig, *, version: str, debug: bool = False, priority: str = "cmdline"
) -> None:
    """Copy the ``crawl:`` section into Scrapy settings."""
    settings.setdict(
        {
            "USER_AGENT": user_agent(crawl, version),
            "ROBOTSTXT_OBEY": crawl.obey_robots,
            "CONCURRENT_REQUESTS_PER_DOMAIN": crawl.concurrency_per_domain,
            "AUTOTHROTTLE_ENABLED": crawl.autothrottle,
            "DOWNLOAD_TIMEOUT": max(1, int(crawl.download_timeout.total_seconds())),
            "DOWNLOAD_MAXSIZE": crawl.max_body_bytes,
            "REDIRECT_MAX_TIMES": crawl.max_redirects,
            "LOOKOUT_ALLOW_PRIVATE": crawl.allow_private,
            "LOG_LEVEL": "DEBUG" if debug else "WARNING",
        },
        priority=priority,
    )
