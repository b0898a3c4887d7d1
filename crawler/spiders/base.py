"""What every Lookout spider shares (``LookoutSpider``): the source it crawls and the crawl
runtime it reports to, conditional GET on its index pages, new-only discovery (URLs backing off
after failing are not requested: ``crawler.state``), article extraction in the process pool,
failure recording, and an empty index said as such; with the page and failure checks they use."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, Self

import scrapy
from scrapy import signals
from scrapy.exceptions import CannotResolveHostError, DownloadConnectionRefusedError, IgnoreRequest
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.misc import load_object
from twisted.internet import error as neterr

from core.store import utcnow
from crawler.canonical import canonicalize, same_site
from crawler.extract import Hints, text_problem
from crawler.items import Article, Cleaned
from crawler.middlewares import SOURCE_URL_META, PrivateAddress
from crawler.runtime import Standalone
from crawler.sources import Source, select_sources
from crawler.state import (
    CrawlResult,
    SourceStats,
    clear_failures,
    failing_states,
    record_failure,
)
from crawler.storage import known_articles

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Iterator

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure

    from crawler.runtime import CrawlRuntime
    from crawler.sources import SourceKind

log = logging.getLogger(__name__)
HTML_TYPES = (b"text/html", b"application/xhtml+xml")
INDEX_META = "lookout_index"  # set on index page requests: a failure there is the source's own


@dataclass(frozen=True)
class Entry:
    """An article link found on an index page, with what the index says about it."""

    url: str
    title: str | None = None
    published: datetime | None = None
    marker: str | None = None  # the entry's "updated" stamp: a changed marker means re-fetch
    outlet: str | None = None


class LookoutSpider(scrapy.Spider):
    """One source's crawl: its index page(s), then the article pages not stored yet.

    The runner passes the ``Source`` and the ``CrawlRuntime``; plain ``scrapy crawl KIND -a
    source=NAME`` passes the name only, and ``from_crawler`` builds the runtime and picks the
    source from it. Either way both are there once ``from_crawler`` returns."""

    kind: ClassVar[SourceKind]  # the kind of source this spider crawls

    def __init__(
        self, source: str | Source | None = None, runtime: CrawlRuntime | None = None, **kwargs: object
    ):
        if source is None:
            raise ValueError(f"usage: scrapy crawl {self.kind} -a source=NAME")
        super().__init__(name=self.name, **kwargs)
        self.source_name = source.name if isinstance(source, Source) else source
        self._source = source if isinstance(source, Source) else None
        self._runtime = runtime
        self._owns_runtime = False  # built here for plain `scrapy crawl`: closed with the spider
        self.source_stats = SourceStats(self.source_name, self.kind,
                                        url=source.url if isinstance(source, Source) else None)
        # ETag and Last-Modified of the index pages read in this crawl, by URL: saved at close.
        self._index_validators: dict[str, tuple[str | None, str | None]] = {}
        self._retrying: set[str] = set()  # entry URLs that failed before, requested again now
        self._awaiting_retry = 0  # entries not requested, waiting for their next try (not given up)
        self._entry_urls: dict[str, str] = {}  # a page being parsed: its response URL -> its entry URL
        self.claimed_urls: list[str] = []  # article URLs this crawl took for itself (released when it ends)
        self.started_at = time.monotonic()

    @property
    def runtime(self) -> CrawlRuntime:
        if self._runtime is None:
            raise RuntimeError(f"{type(self).__name__} has no crawl runtime: create it with from_crawler")
        return self._runtime

    @property
    def source(self) -> Source:
        if self._source is None:
            raise RuntimeError(f"{type(self).__name__} has no source: create it with from_crawler")
        return self._source

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        if not settings.getbool("LOOKOUT_MANAGED"):  # plain `scrapy crawl`: the config's crawl section
            standalone(settings).apply_settings(settings)

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: object, **kwargs: object) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        if spider._runtime is None:  # plain `scrapy crawl`: build what the runner would have given
            spider._runtime = standalone(crawler.settings).runtime(crawler.settings)
            spider._owns_runtime = True
            # Closed once the engine stops: after every spider_closed receiver, the run recorder
            # (crawler.runner.StandaloneRunRecorder) included, has used its store.
            crawler.signals.connect(spider._close_runtime, signal=signals.engine_stopped)
        if spider._source is None:
            spider._source = select_sources(spider.runtime.sources, [spider.source_name])[0]
        if spider.source.kind != cls.kind:
            raise ValueError(f"source {spider.source.name} is a {spider.source.kind} source, not {cls.kind}")
        return spider

    # -- index pages ---------------------------------------------------------------------
    async def start(self) -> AsyncIterator[scrapy.Request]:
        yield self.index_request(self.source.url)

    def index_request(
        self, url: str, callback: Callable[[Response], Iterable[scrapy.Request]] | None = None
    ) -> scrapy.Request:
        etag, last_modified = self.runtime.validators_for(url)
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return scrapy.Request(
            url,
            callback=callback or self.parse_index,
            errback=self.index_failed,
            headers=headers,
            # The source's URL too: an index page it links (a sitemap index's sitemaps) or
            # redirects to is checked by the address guard like an article link.
            meta={"handle_httpstatus_list": [304], INDEX_META: True, SOURCE_URL_META: self.source.url},
            dont_filter=True,
        )

    def parse_index(self, response: Response) -> Iterable[scrapy.Request]:
        if response.status == 304:
            self.source_stats.not_modified += 1  # unchanged since last crawl: nothing to parse
            return
        self.source_stats.indexes_read += 1
        self._remember_validators(response)
        yield from self.follow_entries(response, self.discover(response))

    def discover(self, response: Response) -> Iterable[Entry]:
        raise NotImplementedError

    def _remember_validators(self, response: Response) -> None:
        etag = response.headers.get("ETag")
        modified = response.headers.get("Last-Modified")
        if etag or modified:
            url = response.request.url if response.request is not None else response.url
            self._index_validators[url] = (
                etag.decode("latin-1") if etag else None,
                modified.decode("latin-1") if modified else None,
            )

    def follow_entries(self, response: Response, entries: Iterable[Entry]) -> Iterable[scrapy.Request]:
        """Requests for the entries not stored yet, or whose entry marker changed."""
        unique: dict[str, Entry] = {}
        for e in entries:
            url = canonicalize(e.url, base=response.url)
            if url.startswith(("http://", "https://")) and url not in unique:
                unique[url] = Entry(url, e.title, e.published, e.marker, e.outlet)
        self.source_stats.entries += len(unique)
        now = utcnow()
        with self.runtime.store.connect() as conn:
            known = known_articles(conn, list(unique))
            failing = failing_states(conn, [u for u in unique if u not in known])
        for url, entry in unique.items():
            if url in known and not changed_since(entry.marker, known[url]):
                self.source_stats.skipped += 1
                continue
            backoff = failing.get(url)
            if backoff is not None and backoff.waiting(now):  # failed before: not before its next try
                self.source_stats.skipped += 1
                self.source_stats.backing_off += 1
                self._awaiting_retry += not backoff.given_up
                continue
            if not self.runtime.claim(url):  # another source's crawl running now fetches it
                self.source_stats.skipped += 1
                continue
            self.claimed_urls.append(url)
            if backoff is not None:
                self._retrying.add(url)
            yield scrapy.Request(
                url,
                callback=self.fetch_article,
                errback=self.article_failed,
                cb_kwargs={"entry": entry},
                meta={SOURCE_URL_META: self.source.url},
                dont_filter=True,
            )

    async def fetch_article(self, response: Response, entry: Entry) -> AsyncIterator[Cleaned]:
        """``parse_article``, and the backoff bookkeeping around it: a failure while parsing
        backs off the entry's URL (not a redirect's target), an article got clears it."""
        self._entry_urls[response.url] = entry.url
        try:
            async for item in self.parse_article(response, entry):
                if entry.url in self._retrying:
                    self._retrying.discard(entry.url)
                    with self.runtime.store.begin() as conn:
                        clear_failures(conn, [entry.url])
                yield item
        finally:
            self._entry_urls.pop(response.url, None)

    # -- articles ------------------------------------------------------------------------
    async def parse_article(self, response: Response, entry: Entry) -> AsyncIterator[Cleaned]:
        problem = header_problem(response)
        if problem or not isinstance(response, TextResponse):  # not text: header_problem says not-html
            self.fail(response.url, problem or "not-html", f"content-type {content_type(response)}")
            return
        self.source_stats.fetched += 1
        # Bytes and the encoding go to the pool: decoding, extraction, signature and rule
        # matching all happen there, never on the reactor thread.
        min_chars = self.runtime.crawl.min_text_chars
        hints = Hints(self.source.name, entry.title, self.source.lang, min_chars)
        found = await self.runtime.extractor.extract(response.body, response.encoding, response.url, hints)
        if found.problem:
            detail = f"content-type {content_type(response)}, encoding {response.encoding}"
            self.fail(response.url, found.problem, detail)
            return
        if not found.text or found.text_chars < min_chars:
            # No article: an empty body, or only menus, link lists and the headline (a page
            # rendered by JavaScript, a live-blog shell, a soft 404). Never stored nor matched,
            # and the index's summary does not stand in for it.
            detail = (
                f"{found.text_chars} characters of article text once links and the headline are left out"
                f" (crawl.min_text_chars: {min_chars})"
                if found.text
                else "trafilatura found no article text"
            )
            self.fail(response.url, "no-text", detail)
            return
        if found.canonical and same_site(found.canonical, response.url):
            url = canonicalize(found.canonical, base=response.url)
        else:  # the entry's URL is canonical already: only a redirect needs the work again
            url = entry.url if response.url == entry.url else canonicalize(response.url)
        title = found.title or entry.title or ""
        article = Article(
            url=url,
            source=self.source.name,
            title=title,
            text=found.text,
            signature=found.signature,
            content_hash=found.content_hash if title == found.title else "",
            fetched_url=response.url,
            discovered_url=entry.url,
            outlet=found.sitename or entry.outlet,
            author=found.author,
            published=_published(found.published, entry.published),
            language=found.language or self.source.lang,
            fetched=datetime.now(UTC),
            entry_marker=entry.marker,
        )
        yield Cleaned(article, found.analysis)

    # -- failures ------------------------------------------------------------------------
    def index_failed(self, failure: Failure) -> None:
        reason, detail = classify_failure(failure)
        self.index_problem(_first_url(failure), reason, detail)

    def article_failed(self, failure: Failure) -> None:
        reason, detail = classify_failure(failure)
        self.fail(_first_url(failure), reason, detail)

    def index_problem(self, url: str, reason: str, detail: str | None = None, note: str | None = None) -> None:
        """The source's own index page failed (``note``: what it was instead, "HTML page"): the
        crawl is ``failed: <reason> (<note>)``. Index URLs never back off."""
        short = f"{reason} ({note})" if note else reason
        self.source_stats.index_reason = short
        self.source_stats.index_error = f"{short}: {detail}"[:500] if detail else short
        self.fail(url, reason, detail, index=True)

    def callback_failed(self, response: Response, exc: Exception) -> None:
        """A callback raised (``crawler.middlewares.OneLineErrors``): the page's failure, ``error``."""
        detail = f"{type(exc).__name__}: {exc}"[:500]
        request = response.request
        url = (request.meta.get("redirect_urls") or [request.url])[0] if request is not None else response.url
        if request is not None and request.meta.get(INDEX_META):
            self.index_problem(url, "error", detail)
        else:
            self.fail(url, "error", detail)

    def fail(self, url: str, reason: str, detail: str | None = None, *, index: bool = False) -> None:
        """Count and record a failure, in one log line; an article URL backs off (``crawler.state``)."""
        self.source_stats.failed[reason] += 1
        self.source_stats.index_failures += index
        retry = None if index else self._entry_urls.get(url, url)
        state = record_failure(self.runtime.store, self.source_stats.source, url, reason, detail, backoff_url=retry)
        after = ""
        if state is not None:
            after = "; given up" if state.next_try_at is None else f"; next try {state.next_try_at:%Y-%m-%d %H:%M} UTC"
        log.warning("%s: %s failed: %s (%s)%s", self.source_stats.source, url, reason, detail, after)

    def closed(self, reason: str) -> None:
        self.source_stats.seconds = time.monotonic() - self.started_at
        self.source_stats.finish_reason = reason
        # Keep validators only after a clean crawl: a failed article must be retried next time
        # (and one backing off once its time comes), which needs its index page parsed again
        # rather than answered 304; an empty index must be read again to be said empty again.
        # The run's recorder saves them with the run, off the reactor thread (a write here would
        # wait for the database's write lock on the thread every crawl runs on).
        clean = self.source_stats.result == CrawlResult.OK and not self._awaiting_retry
        if clean and self._index_validators:
            self.source_stats.validators = dict(self._index_validators)
            self.runtime.validators.update(self._index_validators)

    def _close_runtime(self) -> None:
        """Plain `scrapy crawl`: the runtime built for it, closed when the engine stops."""
        if self._owns_runtime:
            self._owns_runtime = False
            self.runtime.close()


def standalone(settings: BaseSettings) -> Standalone:
    """The object the ``LOOKOUT_STANDALONE`` setting names (Scrapy's ``load_object``)."""
    path = settings["LOOKOUT_STANDALONE"]
    made = load_object(path)()
    if not isinstance(made, Standalone):
        raise TypeError(f"LOOKOUT_STANDALONE={path} makes a {type(made).__name__}, not a crawler.runtime.Standalone")
    return made


def marker_of(when: datetime | None, raw: str | None = None) -> str | None:
    """An entry's change stamp in one spelling (ISO, UTC) whichever index it came from."""
    return when.astimezone(UTC).isoformat() if when is not None else raw


def changed_since(entry_marker: str | None, stored_marker: str | None) -> bool:
    """Whether the index says the article changed after we stored it (unknown: no)."""
    if entry_marker is None or stored_marker is None:
        return False
    try:
        return datetime.fromisoformat(entry_marker) > datetime.fromisoformat(stored_marker)
    except ValueError:
        return entry_marker != stored_marker


def _first_url(failure: Failure) -> str:
    """The failed request's URL as discovered, before any redirect."""
    request = getattr(failure, "request", None)  # Scrapy sets it on the failures errbacks get
    if not isinstance(request, scrapy.Request):
        raise TypeError(f"a failure without its request reached an errback: {failure!r}")
    urls: list[str] = request.meta.get("redirect_urls") or [request.url]
    return urls[0]


def _published(page: datetime | None, entry: datetime | None) -> datetime | None:
    """The page's date, unless the index gives the same day with a time (trafilatura keeps
    dates only); the index's date when the page has none."""
    if page is None or (entry is not None and entry.date() == page.date()):
        return entry or page
    return page


def page_problem(response: Response) -> str | None:
    """Why a downloaded article page cannot be used, or None."""
    problem = header_problem(response)
    if problem is None and isinstance(response, TextResponse):  # not text: header_problem says not-html
        problem = text_problem(response.text)
    return problem


def content_type(response: Response) -> str:
    """The response's Content-Type header as sent ("" without one), for failure details."""
    return (response.headers.get("Content-Type") or b"").decode("latin-1")


def header_problem(response: Response) -> str | None:
    """What the headers and the first bytes show (cheap: no decoding, fit for the reactor)."""
    ctype = (response.headers.get("Content-Type") or b"").split(b";")[0].strip().lower()
    if ctype and ctype not in HTML_TYPES:
        return "not-html"
    head = response.body[:4096]
    if b"\x00" in head:
        return "binary"
    if not isinstance(response, TextResponse):
        return "not-html"
    return None


def classify_failure(failure: Failure) -> tuple[str, str]:
    """A short reason (http-404, timeout, too-large, robots, redirect-loop, private-address,
    connection-refused, dns, tls, ...) and the detail."""
    exc = failure.value
    detail = f"{type(exc).__name__}: {exc}"[:500]
    if isinstance(exc, HttpError):
        return f"http-{exc.response.status}", detail
    if isinstance(exc, PrivateAddress):
        return "private-address", detail
    text = str(exc).lower()
    name = type(exc).__name__.lower()
    if "timeout" in name or "timedout" in name or isinstance(exc, neterr.TimeoutError):
        return "timeout", detail
    if "maxsize" in text or "max size" in text or "download_maxsize" in text or "larger than" in text:
        return "too-large", detail
    if isinstance(exc, IgnoreRequest):
        if "robots" in text:
            return "robots", detail
        if "redirect" in text:
            return "redirect-loop", detail
        return "ignored", detail
    causes = list(_causes(exc)) if exc is not None else []
    if any(isinstance(e, DownloadConnectionRefusedError | neterr.ConnectionRefusedError) for e in causes):
        return "connection-refused", detail
    if any(isinstance(e, CannotResolveHostError | neterr.DNSLookupError) for e in causes):
        return "dns", detail
    if any(type(e).__module__.startswith(("OpenSSL", "ssl", "service_identity")) for e in causes):
        return "tls", detail
    if any(isinstance(e, neterr.TimeoutError | neterr.TCPTimedOutError) for e in causes):
        return "timeout", detail
    if any(isinstance(e, neterr.ConnectError | neterr.ConnectionLost) for e in causes):
        return "connection", detail
    if "cancel" in name:
        return "too-large", detail
    return "error", detail


def _causes(exc: BaseException, depth: int = 0) -> Iterator[BaseException]:
    """``exc``, what it was raised from, and the failures a Twisted wrapper (ResponseFailed,
    ResponseNeverReceived) carries in ``reasons``."""
    yield exc
    if depth > 5:
        return
    for inner in (exc.__cause__, exc.__context__):
        if inner is not None:
            yield from _causes(inner, depth + 1)
    for reason in getattr(exc, "reasons", None) or ():
        value = getattr(reason, "value", None)
        if isinstance(value, BaseException):
            yield from _causes(value, depth + 1)
