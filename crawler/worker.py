"""The long-lived crawl engine: one Scrapy crawler, started once per process, that crawls sources
as they are handed to it, many at once and one after another, for the life of the process.

Twisted's reactor cannot restart, so a new crawl is not a new crawler: it is a new set of
requests into the running one. ``WorkerSpider`` is the only Scrapy spider; it never closes while
the worker lives (``spider_idle`` raises ``DontCloseSpider``). Each source's crawl is a
``SourceCrawl``: the source's own spider object (``FeedSpider``, ``SitemapSpider``,
``ListingSpider``: their callbacks and per-crawl state, never run as Scrapy spiders themselves)
and a count of its requests still open. Every request of a source crawl goes through
``WorkerSpider._on_response`` / ``_on_failure``, which call the source spider's callback, store
what it yields, and close the count; the crawl is over when its last request is. Since one
crawler downloads for every source, Scrapy's per-host download slot is shared by all the sources
of one host: politeness holds whatever the number of sources on a host.

A source crawl that outlives ``crawl.timeout`` is abandoned as ``timeout``: its requests still
queued are dropped (``AbandonedCrawls``), those in flight are ignored when they end, and the other
crawls go on.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy import signals
from scrapy.exceptions import DontCloseSpider, IgnoreRequest

from crawler.items import Cleaned
from crawler.pipelines import store_cleaned
from crawler.spiders import spider_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from concurrent.futures import Future

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import Settings
    from twisted.python.failure import Failure

    from crawler.runtime import CrawlRuntime
    from crawler.sources import Source
    from crawler.spiders.base import LookoutSpider
    from crawler.state import SourceStats

log = logging.getLogger(__name__)

STOP_WAIT = 2.0  # seconds the engine's graceful stop gets before the reactor is stopped under it
CRAWL_META = "lookout_crawl"  # the request's SourceCrawl
CALLBACK_META = "lookout_callback"  # the source spider's own callback and errback
ERRBACK_META = "lookout_errback"


@dataclass(eq=False)
class SourceCrawl:
    """One source's crawl in the running engine."""

    id: int
    spider: LookoutSpider
    done: asyncio.Future[SourceStats]
    open_requests: int = 0
    finished: bool = False
    started_at: float = field(default_factory=time.monotonic)
    deadline: asyncio.TimerHandle | None = None

    @property
    def source(self) -> Source:
        return self.spider.source

    @property
    def stats(self) -> SourceStats:
        return self.spider.source_stats


class CrawlEngine:
    """Hands sources to the running ``WorkerSpider`` and tells when each crawl is over.

    ``submit`` is called on the reactor's event loop; its future gives the source's stats, with
    ``finish_reason`` ``finished`` or ``timeout``. ``on_finished`` (the run recorder) is called
    once per crawl; when it returns a future, the crawl's future resolves once that one has."""

    def __init__(
        self, runtime: CrawlRuntime, *, on_finished: Callable[[SourceStats], Future[None] | None] | None = None
    ):
        self.runtime = runtime
        self.on_finished = on_finished
        self.crawls: dict[int, SourceCrawl] = {}
        self._ids = itertools.count(1)
        self._spider: WorkerSpider | None = None
        self.main: Callable[[CrawlEngine], Awaitable[None]] | None = None  # what run_engine drives
        self.main_error: BaseException | None = None
        self._main_task: asyncio.Task[None] | None = None

    # -- the spider's side -------------------------------------------------------------------
    def attach(self, spider: WorkerSpider) -> None:
        self._spider = spider
        if self.main is not None:
            self._main_task = asyncio.get_running_loop().create_task(self._drive(self.main))

    async def _drive(self, main: Callable[[CrawlEngine], Awaitable[None]]) -> None:
        """Run ``main`` (the worker's loop, or one ``lookout crawl``), then stop the engine."""
        try:
            await main(self)
        except BaseException as exc:  # re-raised by run_engine once the reactor stopped
            self.main_error = exc
        finally:
            self.abandon_all("shutdown")
            assert self._spider is not None
            self._spider.closing = True
            # Scrapy's graceful stop waits for every download in flight, an abandoned crawl's
            # hanging one too (up to crawl.download_timeout); every crawl is recorded by now.
            stop = asyncio.ensure_future(self._spider.crawler.stop_async())
            _done, pending = await asyncio.wait({stop}, timeout=STOP_WAIT)
            if pending:
                from twisted.internet import reactor  # noqa: PLC0415 - the one installed by then

                log.debug("downloads still in flight at shutdown: stopping the reactor under them")
                reactor.stop()  # type: ignore[misc]

    # -- crawls --------------------------------------------------------------------------------
    def submit(self, source: Source) -> asyncio.Future[SourceStats]:
        spider = self._spider
        if spider is None:
            raise RuntimeError("the crawl engine is not running: submit from the main run_engine drives")
        loop = asyncio.get_running_loop()
        source_spider = spider_for(source.kind)(source=source, runtime=self.runtime)
        crawl = SourceCrawl(next(self._ids), source_spider, loop.create_future())
        self.crawls[crawl.id] = crawl
        timeout = self.runtime.crawl.timeout.total_seconds()
        crawl.deadline = loop.call_later(timeout, self._time_out, crawl)
        crawl.open_requests += 1  # the start itself: the crawl cannot end before it has begun
        task = loop.create_task(self._start(crawl))
        task.add_done_callback(_log_task_error)
        return crawl.done

    async def _start(self, crawl: SourceCrawl) -> None:
        try:
            async for request in crawl.spider.start():
                self.schedule(crawl, request)
        except Exception as exc:
            log.warning("%s: could not start: %s: %s", crawl.source.name, type(exc).__name__, exc)
            crawl.stats.index_reason = "error"
            crawl.stats.index_error = f"error: {type(exc).__name__}: {exc}"[:500]
        finally:
            self.release(crawl)

    def schedule(self, crawl: SourceCrawl, request: scrapy.Request) -> None:
        """Send one of the crawl's requests into the engine, counted until its callback ends."""
        assert self._spider is not None
        if crawl.finished:
            return
        meta = request.meta
        meta[CRAWL_META] = crawl
        meta[CALLBACK_META] = request.callback
        meta[ERRBACK_META] = request.errback
        request.callback = self._spider.on_response
        request.errback = self._spider.on_failure
        crawl.open_requests += 1
        engine = self._spider.crawler.engine
        assert engine is not None
        engine.crawl(request)

    def release(self, crawl: SourceCrawl) -> None:
        crawl.open_requests -= 1
        if crawl.open_requests <= 0 and not crawl.finished:
            self._finish(crawl, "finished")

    def _time_out(self, crawl: SourceCrawl) -> None:
        if not crawl.finished:
            limit = self.runtime.crawl.timeout.total_seconds()
            log.warning("%s: abandoned after %.0f s (crawl.timeout), %d request(s) open",
                        crawl.source.name, limit, crawl.open_requests)
            self._finish(crawl, "timeout")

    def _finish(self, crawl: SourceCrawl, reason: str) -> None:
        crawl.finished = True
        if crawl.deadline is not None:
            crawl.deadline.cancel()
        self.crawls.pop(crawl.id, None)
        self.runtime.release(crawl.spider.claimed_urls)
        stats = crawl.stats
        try:
            crawl.spider.closed(reason)  # the source spider's own close: validators saved
        except Exception:
            log.exception("%s: closing its crawl failed", crawl.source.name)
        stats.finish_reason = reason
        stats.seconds = time.monotonic() - crawl.started_at
        recorded: Future[None] | None = None
        if self.on_finished is not None:
            try:
                recorded = self.on_finished(stats)
            except Exception:
                log.exception("%s: recording its crawl failed", crawl.source.name)
        if recorded is None:
            _resolve(crawl.done, stats)
        else:  # the crawl is over once its run is in the store (what reads the store sees it then)
            asyncio.wrap_future(recorded).add_done_callback(lambda f: _resolve(crawl.done, stats, f))

    def abandon_all(self, reason: str) -> None:
        for crawl in list(self.crawls.values()):
            self._finish(crawl, reason)


class WorkerSpider(scrapy.Spider):
    """The engine's one spider: open for the worker's life, every request's callback."""

    name = "lookout-worker"

    def __init__(self, engine: CrawlEngine | None = None, **kwargs: Any):
        if engine is None:
            raise ValueError("WorkerSpider runs inside crawler.worker.CrawlEngine only")
        super().__init__(**kwargs)
        self.engine = engine
        self.closing = False  # set when the engine stops: idle may close the spider then

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> WorkerSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider._idle, signal=signals.spider_idle)
        crawler.signals.connect(spider._opened, signal=signals.spider_opened)
        crawler.signals.connect(spider._dropped, signal=signals.request_dropped)
        return spider

    async def start(self) -> AsyncIterator[scrapy.Request]:
        return
        yield  # an async generator that yields nothing: crawls come through CrawlEngine.submit

    def _opened(self, spider: scrapy.Spider) -> None:
        if spider is self:
            self.engine.attach(self)

    def _idle(self, spider: scrapy.Spider) -> None:
        if spider is self and not self.closing:
            raise DontCloseSpider

    def _dropped(self, request: scrapy.Request, spider: scrapy.Spider) -> None:  # noqa: ARG002 - the signal's
        crawl = request.meta.get(CRAWL_META)
        if isinstance(crawl, SourceCrawl):
            self.engine.release(crawl)

    async def on_response(self, response: Response, **kwargs: Any) -> None:
        crawl: SourceCrawl = response.meta[CRAWL_META]
        try:
            if crawl.finished:
                return
            callback = response.meta[CALLBACK_META] or crawl.spider.parse_index
            await self._consume(crawl, callback(response, **kwargs))
        except Exception as exc:
            if not crawl.finished:
                log.debug("the callback for %s raised", response.url, exc_info=exc)
                crawl.spider.callback_failed(response, exc)
        finally:
            self.engine.release(crawl)

    def on_failure(self, failure: Failure) -> None:
        request = getattr(failure, "request", None)
        crawl = request.meta.get(CRAWL_META) if isinstance(request, scrapy.Request) else None
        if not isinstance(crawl, SourceCrawl):
            return
        try:
            errback = request.meta.get(ERRBACK_META) if request is not None else None
            if not crawl.finished and errback is not None:
                errback(failure)
        except Exception:
            log.exception("%s: an errback failed", crawl.source.name)
        finally:
            self.engine.release(crawl)

    async def _consume(self, crawl: SourceCrawl, output: object) -> None:
        """A source spider callback's output: requests go into the engine, articles are stored
        (awaited here, so a crawl is not over before its last article is stored)."""
        if inspect.isawaitable(output):
            output = await output
        if output is None:
            return
        if inspect.isasyncgen(output):
            async for item in output:
                await self._take(crawl, item)
        else:
            for item in output:  # type: ignore[attr-defined]
                await self._take(crawl, item)

    async def _take(self, crawl: SourceCrawl, item: object) -> None:
        if crawl.finished:
            return
        if isinstance(item, scrapy.Request):
            self.engine.schedule(crawl, item)
        elif isinstance(item, Cleaned):
            log.debug("scraped %s", item.article.url)  # the URL only: never an article's text in a log
            await store_cleaned(crawl.spider, item)
        else:
            raise TypeError(f"a {crawl.source.kind} callback yielded a {type(item).__name__}")


class AbandonedCrawls:
    """Downloader middleware: a request of a crawl already over (abandoned at its timeout) is
    dropped before it is downloaded."""

    def process_request(self, request: scrapy.Request) -> None:
        crawl = request.meta.get(CRAWL_META)
        if isinstance(crawl, SourceCrawl) and crawl.finished:
            raise IgnoreRequest(f"the crawl of {crawl.source.name} is over")


def run_engine(settings: Settings, engine: CrawlEngine, main: Callable[[CrawlEngine], Awaitable[None]]) -> None:
    """Run the crawl engine in this process until ``main(engine)`` returns (once per process:
    Twisted's reactor cannot restart). ``main`` submits crawls and awaits them; an exception it
    raises is raised here once the reactor has stopped."""
    from scrapy.crawler import CrawlerProcess  # noqa: PLC0415 - installs the reactor: only when run

    engine.main = main
    process = CrawlerProcess(settings)  # the caller's logging owns the root: LOG_INSTALL_ROOT_HANDLER
    process.crawl(WorkerSpider, engine=engine)
    process.start()
    if engine.main_error is not None:
        raise engine.main_error


def _resolve(
    done: asyncio.Future[SourceStats], stats: SourceStats, recorded: asyncio.Future[None] | None = None
) -> None:
    if recorded is not None and not recorded.cancelled():
        recorded.exception()  # retrieved: the recorder logged it; the crawl is over all the same
    if not done.done():
        done.set_result(stats)


def _log_task_error(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a crawl start failed", exc_info=task.exception())
