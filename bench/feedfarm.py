"""A farm of small RSS feeds on many loopback hosts, for the capacity bench (bench/capacity.py)
and tests that need many sources.

Owns the HTTP server (plain ``asyncio.start_server``, HTTP/1.1 keep-alive, just enough parsing:
it shares the machine with the service being measured, so it must cost little CPU), the feeds
and their article pages, and the request counts the bench computes freshness from.

Feed ``i`` of ``n`` lives on host ``127.0.0.(2 + i % hosts)`` at ``/feed/<i>.xml``, the same port
on every host: RSS 2.0 with the 3 newest items, linking ``/article/<i>-<k>.html`` on the same host
(HTML, a few paragraphs of neutral text that no example rule matches). Feeds carry an ETag and
Last-Modified and answer 304 to a matching ``If-None-Match`` (else ``If-Modified-Since``).
``/robots.txt`` allows everything. API::

    with FeedFarm(1000, hosts=200) as farm:     # or start() / stop(); serves from a thread
        farm.feed_url(i)                         # "http://127.0.0.12:PORT/feed/10.xml"
        farm.publish(i, article)                 # new item (.title, .paragraphs): new ETag
        farm.snapshot()                          # per feed: poll times, 200s, 304s (copies)
        farm.counts                              # requests by kind: feed, article, robots, other
        farm.published                           # Publication(feed, url, title, at), in order

Times are ``time.monotonic()`` (the fake Bot API stamps messages on the same clock).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import html
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, formatdate, mktime_tz, parsedate_tz
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    from collections.abc import Sequence

FIRST_HOST = 2  # 127.0.0.2: 127.0.0.1 is left to everything else on the machine
MAX_HOSTS = 253  # 127.0.0.2 .. 127.0.0.254
ITEMS_SHOWN = 3  # items a feed document lists: the newest
_TEXT = (
    "the committee met on a quiet morning to review the spring planting schedule and the watering "
    "plan for the community gardens while volunteers repaired benches painted fences and sorted seeds "
    "into labelled boxes for the weekend market where neighbours trade cuttings recipes and advice "
    "about compost soil and the best time to prune fruit trees before the first warm week arrives"
)
_WORDS = _TEXT.split(" ")


class ArticleLike(Protocol):
    """What ``publish`` needs of an article (tests' ``SiteArticle`` has both)."""

    title: str
    paragraphs: Sequence[str]


@dataclass(frozen=True)
class Publication:
    feed: int
    url: str
    title: str
    at: float  # time.monotonic() when it appeared in the feed


@dataclass
class FeedCounts:
    """One feed's requests: when it was polled, and how each poll was answered."""

    times: list[float] = field(default_factory=list)
    ok: int = 0  # answered 200 (a body)
    not_modified: int = 0  # answered 304


@dataclass
class _Feed:
    version: int = 0
    modified: int = 0  # epoch seconds, Last-Modified
    items: list[int] = field(default_factory=lambda: list(range(ITEMS_SHOWN)))  # article numbers, oldest first
    extra: dict[int, tuple[str, list[str]]] = field(default_factory=dict)  # published: k -> (title, paragraphs)
    body: bytes | None = None  # rendered document of this version
    counts: FeedCounts = field(default_factory=FeedCounts)


class FeedFarm:
    def __init__(self, n: int, *, hosts: int = 200, port: int = 0):
        if not 1 <= hosts <= MAX_HOSTS:
            raise ValueError(f"hosts must be 1..{MAX_HOSTS} (127.0.0.2 .. 127.0.0.254)")
        self.n = n
        self.hosts = min(hosts, n) or 1
        self.port = port
        self.counts: collections.Counter[str] = collections.Counter()
        self.published: list[Publication] = []
        # Items "published" an hour ago, an hour apart: recent enough for any crawl.max_age.
        self._born = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=ITEMS_SHOWN + 1)
        self._feeds = [_Feed(modified=int(self._born.timestamp())) for _ in range(n)]
        self._lock = threading.Lock()  # feeds are read by the server thread, published from others
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()

    # -- addresses ---------------------------------------------------------------------------
    def host_of(self, i: int) -> str:
        return f"127.0.0.{FIRST_HOST + i % self.hosts}"

    def base_url(self, i: int) -> str:
        return f"http://{self.host_of(i)}:{self.port}"

    def feed_url(self, i: int) -> str:
        return f"{self.base_url(i)}/feed/{i}.xml"

    def article_url(self, i: int, k: int) -> str:
        return f"{self.base_url(i)}/article/{i}-{k}.html"

    # -- what the bench reads and changes ------------------------------------------------------
    def snapshot(self) -> list[FeedCounts]:
        """Every feed's counts, copied (the server keeps appending to its own)."""
        with self._lock:
            return [FeedCounts(list(f.counts.times), f.counts.ok, f.counts.not_modified) for f in self._feeds]

    def publish(self, i: int, article: ArticleLike) -> Publication:
        """Add ``article`` as feed ``i``'s newest item: the feed's ETag and Last-Modified change."""
        with self._lock:
            feed = self._feeds[i]
            k = max(feed.items) + 1
            feed.extra[k] = (article.title, list(article.paragraphs))
            feed.items = [*feed.items, k][-ITEMS_SHOWN:]
            feed.version += 1
            # Last-Modified has one-second resolution: move it on even within the same second.
            feed.modified = max(int(time.time()), feed.modified + 1)
            feed.body = None
            pub = Publication(i, self.article_url(i, k), article.title, time.monotonic())
            self.published.append(pub)
        return pub

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Self:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="feedfarm", daemon=True)
        self._thread.start()
        ready = asyncio.run_coroutine_threadsafe(self._open(), self._loop)
        try:
            ready.result(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _open(self) -> None:
        """Listen on every host; the port is the first host's free port, tried on the others."""
        for _attempt in range(10):
            try:
                await self._listen_all()
                return
            except OSError:  # the port is taken on another address: close all, try another
                await self._close()
                self.port = 0
        raise OSError("no port free on every farm address")

    async def _listen_all(self) -> None:
        first = await asyncio.start_server(self._serve, self.host_of(0), self.port)
        self._servers.append(first)
        self.port = first.sockets[0].getsockname()[1]
        for h in range(1, self.hosts):
            self._servers.append(await asyncio.start_server(self._serve, self.host_of(h), self.port))

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    # -- HTTP ------------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        host = int(writer.get_extra_info("sockname")[0].rsplit(".", 1)[1]) - FIRST_HOST
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    break
                response, keep_alive = self._answer(head, host)
                writer.write(response)
                await writer.drain()
                if not keep_alive:
                    break
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, head: bytes, host: int) -> tuple[bytes, bool]:
        """The whole response to one request head, and whether the connection stays open."""
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            return _response(400, b"text/plain", b"bad request\n", close=True), False
        method, target, version = parts
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        connection = headers.get(b"connection", b"").lower()
        keep_alive = connection != b"close" and (version == b"HTTP/1.1" or connection == b"keep-alive")
        status, ctype, body, extra = self._route(target.split(b"?", 1)[0].decode("latin-1"), host, headers)
        if method == b"HEAD":
            body = b""
        return _response(status, ctype, body, extra, close=not keep_alive), keep_alive

    def _route(self, path: str, host: int, headers: dict[bytes, bytes]) -> tuple[int, bytes, bytes, bytes]:
        if path.startswith("/feed/") and path.endswith(".xml"):
            i = _int(path[6:-4])
            if i is not None and 0 <= i < self.n and i % self.hosts == host:
                self.counts["feed"] += 1
                return self._feed_response(i, headers)
        elif path.startswith("/article/") and path.endswith(".html"):
            feed, _, number = path[9:-5].partition("-")
            page = self._article_page(_int(feed), _int(number), host)
            if page is not None:
                self.counts["article"] += 1
                return 200, b"text/html; charset=utf-8", page, b""
        elif path == "/robots.txt":
            self.counts["robots"] += 1
            return 200, b"text/plain", b"User-agent: *\nAllow: /\n", b""
        self.counts["other"] += 1
        return 404, b"text/plain", b"not found\n", b""

    def _feed_response(self, i: int, headers: dict[bytes, bytes]) -> tuple[int, bytes, bytes, bytes]:
        with self._lock:
            feed = self._feeds[i]
            feed.counts.times.append(time.monotonic())
            etag = f'"{i}-{feed.version}"'.encode()
            validators = b"ETag: " + etag + b"\r\nLast-Modified: " + _http_date(feed.modified) + b"\r\n"
            if _not_modified(headers, etag, feed.modified):
                feed.counts.not_modified += 1
                return 304, b"", b"", validators
            feed.counts.ok += 1
            if feed.body is None:
                feed.body = self._render_feed(i, feed)
            return 200, b"application/rss+xml; charset=utf-8", feed.body, validators

    # -- documents -------------------------------------------------------------------------------
    def _render_feed(self, i: int, feed: _Feed) -> bytes:
        items = "".join(
            f"<item><title>{html.escape(self._title(i, k, feed))}</title><link>{self.article_url(i, k)}</link>"
            f'<guid isPermaLink="true">{self.article_url(i, k)}</guid>'
            f"<pubDate>{format_datetime(self._published(k, feed))}</pubDate></item>"
            for k in reversed(feed.items)
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>Farm feed {i}</title><link>{self.base_url(i)}/</link>"
            f"<description>Bench feed {i}</description>{items}</channel></rss>\n"
        ).encode()

    def _article_page(self, i: int | None, k: int | None, host: int) -> bytes | None:
        if i is None or k is None or not 0 <= i < self.n or i % self.hosts != host:
            return None
        with self._lock:
            feed = self._feeds[i]
            if k >= ITEMS_SHOWN and k not in feed.extra:
                return None
            title = self._title(i, k, feed)
            paragraphs = feed.extra[k][1] if k in feed.extra else _neutral_paragraphs(i, k)
            published = self._published(k, feed)
        body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta property="og:title" content="{html.escape(title)}">'
            f'<meta property="article:published_time" content="{published.isoformat()}"></head>'
            f'<body><article><h1>{html.escape(title)}</h1><div class="entry-content">{body}</div>'
            "</article></body></html>"
        ).encode()

    def _title(self, i: int, k: int, feed: _Feed) -> str:
        return feed.extra[k][0] if k in feed.extra else f"Garden notes {i}-{k}: the planting schedule"

    def _published(self, k: int, feed: _Feed) -> datetime:
        if k in feed.extra:
            return datetime.fromtimestamp(feed.modified, UTC)
        return self._born + timedelta(hours=k)


def _neutral_paragraphs(i: int, k: int) -> list[str]:
    """Four sentences-worth paragraphs, different for each article, naming no place or group."""
    out = []
    for p in range(4):
        start = (i * 7 + k * 3 + p * 11) % len(_WORDS)
        words = (_WORDS[start:] + _WORDS[:start])[:40]
        out.append(" ".join(words).capitalize() + f" (note {i}-{k}-{p}).")
    return out


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _http_date(epoch: int) -> bytes:
    return formatdate(epoch, usegmt=True).encode()


def _not_modified(headers: dict[bytes, bytes], etag: bytes, modified: int) -> bool:
    """RFC 9110: If-None-Match decides when present; else If-Modified-Since."""
    inm = headers.get(b"if-none-match")
    if inm is not None:
        return inm.strip() == b"*" or etag in (t.strip() for t in inm.split(b","))
    ims = headers.get(b"if-modified-since")
    if ims is None:
        return False
    parsed = parsedate_tz(ims.decode("latin-1"))
    if parsed is None:
        return False
    return mktime_tz(parsed) >= modified


_REASONS = {200: b"OK", 304: b"Not Modified", 400: b"Bad Request", 404: b"Not Found"}


def _response(status: int, ctype: bytes, body: bytes, extra: bytes = b"", *, close: bool = False) -> bytes:
    head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
    if ctype:
        head += b"Content-Type: " + ctype + b"\r\n"
    head += b"Content-Length: %d\r\n" % len(body) + extra
    head += b"Connection: close\r\n" if close else b"Connection: keep-alive\r\n"
    return head + b"\r\n" + body
