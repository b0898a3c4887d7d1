"""The demo's news site: the seed articles in ``seeds/`` served as a small news site on 127.0.0.1.

Owns the article model (``SiteArticle``), reading the seeds (``load_seed_articles``), rendering
realistic pages and the HTTP server. Pages carry what real news pages do around the story
(navigation, a related-links box, comments, a footer, og: and article: meta tags,
rel=canonical), so the demo shows the cleaning keep the story and drop the furniture. The site
serves what ``lookout demo``'s four sources discover the articles through:

=============================  ===============================================================
``/``                          listing page: ``h2.entry-title a`` links (plus one off-site link)
``/feed/rss.xml``              RSS 2.0
``/feed/atom.xml``             Atom with ``xml:base`` and relative links
``/news-sitemap.xml``          Google news sitemap (``news:publication_date``, ``news:title``)
``/robots.txt``                disallows ``/private/``
``/news/<slug>.html``          articles
=============================  ===============================================================

Every response carries ETag and Last-Modified and answers conditional GETs with 304.

API::

    with NewsSite.from_seeds() as site:          # or NewsSite(articles), then start()/stop()
        site.url                                 # "http://127.0.0.1:PORT"
        site.add(SiteArticle(...))
        site.requests                            # every path served, in order

Subclasses add routes by extending ``_feeds`` and ``render`` and change how an article's page is
served through the ``_canonical``, ``_html_attrs``, ``_padding`` and ``_content_type`` hooks
(the tests' site in tests/support/newssite.py does).
"""

from __future__ import annotations

import hashlib
import html
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qs, urlsplit

from ruamel.yaml import YAML

if TYPE_CHECKING:
    from collections.abc import Iterable
    from email.message import Message

SEEDS_DIR = Path(__file__).resolve().parent.parent.parent / "seeds"
HOST = "127.0.0.1"
DEFAULT_OUTLET = "Aleppo Monitor"

# Furniture phrases mention watched names on purpose: if one reaches stored text, a rule fires
# on navigation instead of news. Tests look for these exact strings.
NAV_PHRASE = "Azaz live updates"
RELATED_PHRASES = ("Shelling reported near Azaz border crossing", "Marea residents recall the siege")
COMMENT_PHRASE = "Daesh will never hold Manbij, says a reader from Kafrah"
FOOTER_PHRASE = "Newsletter: the week in Marea and Azaz"

HTML_TYPE = "text/html; charset=utf-8"
RSS_TYPE = "application/rss+xml"
ATOM_TYPE = "application/atom+xml"
XML_TYPE = "application/xml"


@dataclass
class SiteArticle:
    slug: str
    title: str
    paragraphs: list[str]
    published: datetime
    outlet: str = DEFAULT_OUTLET
    author: str | None = None
    updated: datetime | None = None
    lang: str = "en"
    encoding: str = "utf-8"

    @property
    def path(self) -> str:
        return f"/news/{self.slug}.html"

    @property
    def modified(self) -> datetime:
        return self.updated or self.published

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


@dataclass
class ServedRequest:
    path: str
    status: int
    method: str = "GET"
    user_agent: str = ""


@dataclass
class Page:
    """One response: what ``NewsSite.render`` returns and the handler sends."""

    body: bytes
    content_type: str
    modified: datetime | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


# A feed route: its content type (before "; charset=utf-8") and what renders its body.
Feed = tuple[str, Callable[[], str]]


def load_seed_articles(seeds_dir: Path = SEEDS_DIR) -> list[SiteArticle]:
    """The seed .txt files as articles, read with the help of ``seeds/site.yaml``."""
    manifest: dict[str, dict[str, Any]] = YAML(typ="safe").load(
        (seeds_dir / "site.yaml").read_text(encoding="utf-8")
    )["seeds"]
    out = []
    for name, meta in sorted(manifest.items()):
        raw = (seeds_dir / name).read_text(encoding="utf-8")
        prefix = meta.get("strip_prefix")
        if prefix and raw.startswith(prefix):
            raw = raw[len(prefix) :]
        lines = raw.split("\n")
        drop = int(meta.get("drop_lines", 0))
        while drop and lines:
            if lines.pop(0).strip():
                drop -= 1
        paragraphs = [p.strip() for p in "\n".join(lines).split("\n") if p.strip()]
        published = meta["published"]
        if isinstance(published, str):
            published = datetime.fromisoformat(published.replace("Z", "+00:00"))
        if published.tzinfo is None:
            published = published.replace(tzinfo=UTC)
        out.append(
            SiteArticle(
                slug=meta["slug"],
                title=meta["title"],
                paragraphs=paragraphs,
                published=published,
                outlet=meta.get("outlet", DEFAULT_OUTLET),
                author=meta.get("author"),
            )
        )
    return out


class NewsSite:
    """The site and its server. Thread-safe: tests edit articles while the crawler reads."""

    def __init__(self, articles: Iterable[SiteArticle] = (), *, outlet: str = DEFAULT_OUTLET) -> None:
        self.outlet = outlet
        self._articles: dict[str, SiteArticle] = {}
        self._lock = threading.Lock()
        self.requests: list[ServedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._last_url = ""
        self._pages: dict[str, bytes] = {}  # rendered article pages, until the next edit
        self._site_modified = datetime(2016, 1, 1, tzinfo=UTC)
        for a in articles:
            self.add(a)

    @classmethod
    def from_seeds(cls, seeds_dir: Path = SEEDS_DIR, *, outlet: str = DEFAULT_OUTLET) -> Self:
        return cls(load_seed_articles(seeds_dir), outlet=outlet)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Self:
        if self._server is None:
            handler = type("Handler", (_Handler,), {"site": self})
            self._server = ThreadingHTTPServer((HOST, 0), handler)
            self._server.daemon_threads = True
            # A short poll: stop() (the end of every demo) waits for it, 0.5 s by default.
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="newssite", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            _ = self.url
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The site's root; still known after stop() so tests can read results."""
        if self._server is not None:
            self._last_url = f"http://{HOST}:{self._server.server_port}"
        if not self._last_url:
            raise RuntimeError("NewsSite was never started")
        return self._last_url

    def link(self, path: str) -> str:
        return self.url + path

    # -- content -------------------------------------------------------------------------
    @property
    def articles(self) -> list[SiteArticle]:
        with self._lock:
            return sorted(self._articles.values(), key=lambda a: (a.published, a.slug), reverse=True)

    def get(self, path_or_slug: str) -> SiteArticle:
        with self._lock:
            for a in self._articles.values():
                if path_or_slug in (a.path, a.slug):
                    return a
        raise KeyError(path_or_slug)

    def add(self, article: SiteArticle) -> SiteArticle:
        with self._lock:
            self._articles[article.path] = article
            self._touch(article.modified)
        return article

    def _touch(self, when: datetime) -> None:
        """Call with ``_lock`` held after any edit."""
        self._pages.clear()  # related links and feeds depend on every article
        self._site_modified = max(self._site_modified + timedelta(seconds=1), when)

    # -- rendering -----------------------------------------------------------------------
    def render(self, path: str, query: dict[str, list[str]]) -> Page | None:  # noqa: ARG002 - subclasses read it
        """The response for ``path``, or None for a 404."""
        arts = self.articles
        if path in ("/", "/index.html"):
            return Page(self._listing(arts).encode(), HTML_TYPE, self._site_modified)
        if path == "/robots.txt":
            return Page(b"User-agent: *\nDisallow: /private/\n", "text/plain", self._site_modified)
        feed = self._feeds(arts).get(path)
        if feed is not None:
            kind, body = feed
            return Page(body().encode(), f"{kind}; charset=utf-8", self._site_modified)
        with self._lock:
            article = self._articles.get(path)
        if article is None:
            return None
        page = self._pages.get(path)
        if page is None:
            page = self._article_page(article, arts).encode(article.encoding, errors="xmlcharrefreplace")
            self._pages[path] = page
        return Page(page, self._content_type(article), article.modified)

    def _feeds(self, arts: list[SiteArticle]) -> dict[str, Feed]:
        return {
            "/feed/rss.xml": (RSS_TYPE, lambda: self._rss2(arts)),
            "/feed/atom.xml": (ATOM_TYPE, lambda: self._atom(arts)),
            "/news-sitemap.xml": (XML_TYPE, lambda: self._news_sitemap(arts)),
        }

    # Hooks for how an article's page is served.
    def _canonical(self, a: SiteArticle) -> str:
        return self.link(a.path)

    def _html_attrs(self, a: SiteArticle) -> str:
        return f' lang="{a.lang}"' + (' dir="rtl"' if a.lang == "ar" else "")

    def _padding(self, a: SiteArticle) -> tuple[str, str]:  # noqa: ARG002 - subclasses read it
        """Extra bulk for the page's <head> and its comments section: none here."""
        return "", ""

    def _content_type(self, a: SiteArticle) -> str:
        return f"text/html; charset={a.encoding}"

    def _furniture_head(self, outlet: str) -> str:
        return (
            f'<header class="site-header"><div class="logo"><a href="/">{_e(outlet)}</a></div>'
            '<nav class="main-nav" role="navigation"><ul>'
            '<li><a href="/">Home</a></li><li><a href="/section/syria">Syria</a></li>'
            '<li><a href="/section/aleppo">Aleppo</a></li><li><a href="/section/opinion">Opinion</a></li>'
            f'<li><a href="/live/azaz">{NAV_PHRASE}</a></li></ul></nav>'
            '<div class="breaking">Breaking: <a href="/live/azaz">Follow our coverage</a></div></header>'
        )

    def _article_page(self, a: SiteArticle, arts: list[SiteArticle]) -> str:
        url = self._canonical(a)
        others = [o for o in arts if o.path != a.path][:3]
        related = "".join(f'<li><a href="{o.path}">{_e(o.title)}</a></li>' for o in others)
        related += "".join(
            f'<li><a href="/news/archive-{i}.html">{p}</a></li>' for i, p in enumerate(RELATED_PHRASES)
        )
        body = "".join(f"<p>{_e(p)}</p>" for p in a.paragraphs)
        author = f'<meta name="author" content="{_e(a.author)}">' if a.author else ""
        byline = f'By <span class="author">{_e(a.author)}</span> ' if a.author else ""
        updated = (
            f'<meta property="article:modified_time" content="{a.updated.isoformat()}">' if a.updated else ""
        )
        padding = self._padding(a)
        return (
            f'<!DOCTYPE html><html{self._html_attrs(a)}><head><meta charset="{a.encoding}">'
            f"<title>{_e(a.title)} | {_e(a.outlet)}</title>"
            f'<link rel="canonical" href="{_e(url)}">'
            f'<meta property="og:type" content="article"><meta property="og:title" content="{_e(a.title)}">'
            f'<meta property="og:site_name" content="{_e(a.outlet)}">'
            f'<meta property="og:url" content="{_e(url)}">'
            f'<meta property="article:published_time" content="{a.published.isoformat()}">{updated}{author}'
            '<link rel="stylesheet" href="/static/site.css">'
            f'{padding[0]}</head><body class="single-post">'
            f"{self._furniture_head(a.outlet)}"
            '<div class="container"><main id="main" class="site-main">'
            '<article class="post type-post hentry">'
            f'<header class="entry-header"><h1 class="entry-title">{_e(a.title)}</h1>'
            f'<div class="entry-meta">{byline}<time class="published" datetime="{a.published.isoformat()}">'
            f"{a.published:%d %B %Y}</time></div></header>"
            f'<div class="entry-content">{body}</div>'
            '<div class="share-buttons"><a href="#">Share on Facebook</a> <a href="#">Tweet</a></div>'
            "</article>"
            '<aside class="related-posts widget"><h3 class="widget-title">Related stories</h3>'
            f"<ul>{related}</ul></aside>"
            '<section id="comments" class="comments-area"><h3 class="comments-title">2 comments</h3>'
            '<ol class="comment-list">'
            '<li class="comment" id="comment-1"><article class="comment-body"><footer class="comment-meta">'
            '<b class="fn">Abu Omar</b> <time>2 hours ago</time></footer>'
            f'<div class="comment-content"><p>{COMMENT_PHRASE}</p></div></article></li>'
            '<li class="comment" id="comment-2"><article class="comment-body"><footer class="comment-meta">'
            '<b class="fn">Lina</b></footer><div class="comment-content"><p>Thank you for this report.'
            "</p></div></article></li>"
            f"</ol>{padding[1]}</section></main>"
            '<aside id="secondary" class="sidebar"><section class="widget"><h3>Most read</h3><ul>'
            '<li><a href="/news/most-read-1.html">Kafrah residents return after clashes</a></li></ul>'
            "</section></aside></div>"
            f'<footer class="site-footer"><div class="footer-widgets"><p>{FOOTER_PHRASE}</p></div>'
            f'<p class="copyright">&copy; 2016 {_e(a.outlet)}. <a href="/about">About</a> '
            '<a href="/contact">Contact</a> <a href="/privacy">Privacy</a></p></footer></body></html>'
        )

    def _listing(self, arts: list[SiteArticle]) -> str:
        items = "".join(
            f'<div class="post"><h2 class="entry-title"><a href="{a.path}">{_e(a.title)}</a></h2>'
            f'<p class="excerpt">{_e(a.paragraphs[0][:160] if a.paragraphs else "")}</p></div>'
            for a in arts
        )
        items += (
            '<div class="post"><h2 class="entry-title"><a href="http://elsewhere.invalid/news/x.html">'
            "Partner story</a></h2></div>"
        )
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>News | {_e(self.outlet)}'
            f"</title></head><body>{self._furniture_head(self.outlet)}<main>{items}</main>"
            f'<footer class="site-footer"><p>{FOOTER_PHRASE}</p></footer></body></html>'
        )

    def _rss2(self, arts: list[SiteArticle], extra: Iterable[tuple[str, str]] = ()) -> str:
        """RSS 2.0 over ``arts``, then one bare item per (title, path) in ``extra``."""
        items = "".join(
            f"<item><title>{_e(a.title)}</title><link>{self.link(a.path)}?utm_source=rss&amp;utm_medium=feed</link>"
            f'<guid isPermaLink="false">{a.path}</guid><pubDate>{format_datetime(a.published)}</pubDate>'
            + (f"<atom:updated>{a.updated.isoformat()}</atom:updated>" if a.updated else "")
            + "</item>"
            for a in arts
        )
        items += "".join(f"<item><title>{_e(t)}</title><link>{self.link(p)}</link></item>" for t, p in extra)
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
            f"<channel><title>{_e(self.outlet)}</title><link>{self.url}/</link>"
            f"<description>News from northern Syria</description>{items}</channel></rss>"
        )

    def _atom(self, arts: list[SiteArticle]) -> str:
        # Relative links resolved against xml:base, as many CMS feeds do.
        entries = "".join(
            f'<entry><title>{_e(a.title)}</title><link rel="alternate" href="{a.path.lstrip("/")}"/>'
            f"<id>tag:aleppo-monitor,2016:{a.slug}</id><published>{a.published.isoformat()}</published>"
            f"<updated>{a.modified.isoformat()}</updated>"
            + (f"<author><name>{_e(a.author)}</name></author>" if a.author else "")
            + "</entry>"
            for a in arts
        )
        updated = self._site_modified.isoformat()
        return (
            f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
            f'xml:base="{self.url}/"><title>{_e(self.outlet)}</title><id>{self.url}/</id>'
            f"<updated>{updated}</updated>{entries}</feed>"
        )

    def _news_sitemap(self, arts: list[SiteArticle]) -> str:
        urls = "".join(
            f"<url><loc>{self.link(a.path)}</loc><lastmod>{a.modified.isoformat()}</lastmod><news:news>"
            f"<news:publication><news:name>{_e(a.outlet)}</news:name><news:language>{a.lang}</news:language>"
            f"</news:publication><news:publication_date>{a.published.isoformat()}</news:publication_date>"
            f"<news:title>{_e(a.title)}</news:title></news:news></url>"
            for a in arts
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">{urls}</urlset>'
        )


def _e(text: str) -> str:
    return html.escape(text, quote=True)


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive responses go out at once: with Nagle's algorithm each one waited ~40 ms for
    # the client's delayed ACK.
    disable_nagle_algorithm = True
    site: NewsSite
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the site's request log is ``site.requests``

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        parts = urlsplit(self.path)
        try:
            page = self.site.render(parts.path, parse_qs(parts.query))
        except Exception as exc:  # a bug in the site must show, not hang the crawler
            page = Page(f"site error: {exc}".encode(), "text/plain", status=500)
        if page is None:
            page = Page(b"<html><body>Not found</body></html>", HTML_TYPE, status=404)
        status, headers = page.status, dict(page.headers)
        if status == 200:
            etag = '"' + hashlib.sha1(page.body).hexdigest()[:16] + '"'
            headers["ETag"] = etag
            if page.modified:
                headers["Last-Modified"] = format_datetime(page.modified.astimezone(UTC), usegmt=True)
            if _not_modified(self.headers, etag, page.modified):
                status = 304
        self.site.requests.append(
            ServedRequest(parts.path, status, "HEAD" if head else "GET", self.headers.get("User-Agent", ""))
        )
        body = b"" if status == 304 or head else page.body
        try:
            self.send_response(status)
            self.send_header("Content-Type", page.content_type)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(page.body) if head and status != 304 else len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the crawler gave up on us (size limit, timeout): expected


def _not_modified(headers: Message, etag: str, modified: datetime | None) -> bool:
    inm = headers.get("If-None-Match")
    if inm is not None:
        return etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
    ims = headers.get("If-Modified-Since")
    if ims and modified is not None:
        try:
            return modified.replace(microsecond=0) <= parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
    return False


__all__ = [
    "COMMENT_PHRASE",
    "FOOTER_PHRASE",
    "NAV_PHRASE",
    "RELATED_PHRASES",
    "SEEDS_DIR",
    "NewsSite",
    "Page",
    "ServedRequest",
    "SiteArticle",
    "load_seed_articles",
]
