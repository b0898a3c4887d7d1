"""A small local news site on 127.0.0.1, for the demo, the crawler's tests and the benches.

It renders articles as realistic pages (navigation, related-links box, comments, footer, og: and
article: meta tags, rel=canonical) and serves what a crawler discovers them through:

=============================  ===============================================================
``/``                          listing page: ``h2.entry-title a`` links (plus one off-site link)
``/feed/rss.xml``              RSS 2.0 (also ``rss091.xml``: RSS 0.91, ``rss1.rdf``: RSS 1.0)
``/feed/atom.xml``             Atom with ``xml:base`` and relative links
``/feed/broken.xml``           a malformed RSS feed that still holds its entries
``/feed/faults.xml``           RSS 2.0 linking one good article and every fault route
``/news-sitemap.xml``          Google news sitemap (``news:publication_date``, ``news:title``)
``/sitemap-index.xml``         sitemap index over ``/sitemaps/news-1.xml`` and ``news-2.xml``
``/robots.txt``                disallows ``/private/``
``/news/<slug>.html``          articles (``/partner/<slug>.html`` for syndicated copies)
``/fault/...``                 404, 500, slow, huge, gzip-bomb, loop, binary, binary-html,
                               undecodable; ``/private/secret.html`` is robots-disallowed
=============================  ===============================================================

Every response carries ETag and Last-Modified and answers conditional GETs with 304.

API::

    with NewsSite.from_seeds() as site:          # or NewsSite(articles), then start()/stop()
        site.url                                 # "http://127.0.0.1:PORT"
        site.add(SiteArticle(...)); site.update(slug, text=...); site.remove(slug)
        site.syndicate(slug, outlet="Levant Wire", edits={...})  # same story, other furniture
        site.requests                            # every path served, in order
        site.article_requests()                  # article pages served with a body (200)
    generate_articles(2000)                      # bench pages of 50-120 KB each
"""

from __future__ import annotations

import gzip
import hashlib
import html
import random
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterable

SEEDS_DIR = Path(__file__).resolve().parent.parent / "seeds"

# Furniture phrases mention watched names on purpose: if one reaches stored text, a rule fires
# on navigation instead of news. Tests look for these exact strings.
NAV_PHRASE = "Azaz live updates"
RELATED_PHRASES = ("Shelling reported near Azaz border crossing", "Marea residents recall the siege")
COMMENT_PHRASE = "Daesh will never hold Manbij, says a reader from Kafrah"
FOOTER_PHRASE = "Newsletter: the week in Marea and Azaz"


@dataclass
class SiteArticle:
    slug: str
    title: str
    paragraphs: list[str]
    published: datetime
    outlet: str = "Aleppo Monitor"
    author: str | None = None
    updated: datetime | None = None
    lang: str = "en"
    encoding: str = "utf-8"
    charset_in_header: bool = True  # False: only the page's <meta charset> says it
    prefix: str = "news"  # path prefix: /news/<slug>.html
    declare_lang: bool = True  # False: no <html lang>, so the crawler must detect it
    padding_kb: int = 0  # extra furniture (scripts, comments) to make bench pages realistic
    canonical: str | None = None  # override rel=canonical (absolute URL)

    @property
    def path(self) -> str:
        return f"/{self.prefix}/{self.slug}.html"

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
class _Page:
    body: bytes
    content_type: str
    modified: datetime | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def load_seed_articles(seeds_dir: Path = SEEDS_DIR) -> list[SiteArticle]:
    """The seed .txt files as articles, read with the help of ``seeds/site.yaml``."""
    from ruamel.yaml import YAML

    manifest = YAML(typ="safe").load((seeds_dir / "site.yaml").read_text(encoding="utf-8"))["seeds"]
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
                outlet=meta.get("outlet", "Aleppo Monitor"),
                author=meta.get("author"),
            )
        )
    return out


ARABIC_PARAGRAPHS = [
    "تقدم مقاتلو تنظيم الدولة الإسلامية صباح الجمعة نحو مدينة إعزاز الحدودية في ريف حلب الشمالي، "
    "وسيطروا على عدة قرى قريبة من طريق الإمداد الرئيسي للفصائل المعارضة.",
    "وقال المرصد السوري لحقوق الإنسان إن آلاف المدنيين نزحوا باتجاه الحدود التركية المغلقة، "
    "حيث يعيش عشرات الآلاف في مخيمات عشوائية.",
    "وأضاف أن التنظيم بات على بعد خمسة كيلومترات من إعزاز، وأن الاشتباكات ما زالت مستمرة "
    "قرب بلدة مارع المحاصرة.",
]


def arabic_article(slug: str = "azaz-arabic", *, published: datetime | None = None) -> SiteArticle:
    """An Arabic article served as windows-1256, charset only in the page's meta tag."""
    return SiteArticle(
        slug=slug,
        title="تنظيم الدولة يتقدم نحو إعزاز",
        paragraphs=list(ARABIC_PARAGRAPHS),
        published=published or datetime(2016, 5, 27, 12, 0, tzinfo=UTC),
        outlet="حلب اليوم",
        lang="ar",
        encoding="windows-1256",
        charset_in_header=False,
        declare_lang=False,
    )


_WORDS = [
    "the",
    "rebels",
    "said",
    "on",
    "Tuesday",
    "that",
    "fighters",
    "from",
    "the",
    "group",
    "had",
    "moved",
    "toward",
    "villages",
    "north",
    "of",
    "Aleppo",
    "near",
    "the",
    "Turkish",
    "border",
    "where",
    "thousands",
    "of",
    "civilians",
    "live",
    "in",
    "camps",
    "and",
    "aid",
    "agencies",
    "warned",
    "of",
    "shortages",
    "as",
    "clashes",
    "continued",
    "along",
    "the",
    "supply",
    "route",
    "monitoring",
    "group",
    "reported",
    "airstrikes",
    "overnight",
    "while",
    "local",
    "councils",
    "asked",
    "for",
    "help",
    "with",
    "water",
    "electricity",
    "and",
    "bread",
    "schools",
    "closed",
    "hospitals",
    "were",
    "damaged",
    "and",
    "families",
    "fled",
    "toward",
    "the",
    "frontier",
    "crossing",
]
_PLACES = ("Azaz", "Marea", "Manbij", "Kafrah", "Jarablus", "al-Bab", "Tal Rifaat", "Afrin")


def generate_articles(
    count: int,
    *,
    seed: int = 0,
    min_kb: int = 50,
    max_kb: int = 120,
    start: datetime | None = None,
) -> list[SiteArticle]:
    """``count`` distinct articles whose rendered pages weigh ``min_kb``-``max_kb`` KB each (the
    bulk is furniture, like real news pages); deterministic for a given ``seed``."""
    rng = random.Random(seed)
    start = start or datetime.now(UTC) - timedelta(hours=1)
    out = []
    for i in range(count):
        paragraphs = []
        for _ in range(rng.randint(6, 14)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(40, 90))]
            words.insert(rng.randrange(len(words)), rng.choice(_PLACES))
            words.insert(0, f"Report {i}:")
            paragraphs.append(" ".join(words).capitalize() + ".")
        title = f"{rng.choice(_PLACES)}: {' '.join(rng.choice(_WORDS) for _ in range(7))} ({i})"
        out.append(
            SiteArticle(
                slug=f"story-{i:05d}",
                title=title,
                paragraphs=paragraphs,
                published=start - timedelta(minutes=i),
                author="Staff reporter",
                padding_kb=rng.randint(min_kb, max_kb),
            )
        )
    return out


class NewsSite:
    """The site and its server. Thread-safe: tests edit articles while the crawler reads."""

    def __init__(self, articles: Iterable[SiteArticle] = (), *, outlet: str = "Aleppo Monitor"):
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
    def from_seeds(cls, seeds_dir: Path = SEEDS_DIR, **kwargs) -> NewsSite:
        return cls(load_seed_articles(seeds_dir), **kwargs)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> NewsSite:
        if self._server is None:
            handler = type("Handler", (_Handler,), {"site": self})
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            self._server.daemon_threads = True
            self._thread = threading.Thread(target=self._server.serve_forever, name="newssite", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            _ = self.url
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> NewsSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The site's root; still known after stop() so tests can read results."""
        if self._server is not None:
            host, port = self._server.server_address[:2]
            self._last_url = f"http://{host}:{port}"
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

    def publish(self, article: SiteArticle) -> SiteArticle:
        """Add an article as just published (its dates set to now)."""
        now = _now()
        return self.add(replace(article, published=now, updated=None))

    def update(self, path_or_slug: str, **changes) -> SiteArticle:
        """Edit an article; its ``updated`` stamp moves to now unless given."""
        old = self.get(path_or_slug)
        changes.setdefault("updated", max(_now(), old.modified + timedelta(seconds=1)))
        new = replace(old, **changes)
        with self._lock:
            self._articles[new.path] = new
            self._touch(new.modified)
        return new

    def remove(self, path_or_slug: str) -> None:
        old = self.get(path_or_slug)
        with self._lock:
            del self._articles[old.path]
            self._touch(_now())

    def syndicate(
        self,
        path_or_slug: str,
        *,
        outlet: str = "Levant Wire",
        slug: str | None = None,
        edits: dict[str, str] | None = None,
        prefix: str = "partner",
    ) -> SiteArticle:
        """The same story run by another outlet: other furniture, optional small text edits."""
        old = self.get(path_or_slug)
        paragraphs = list(old.paragraphs)
        for before, after in (edits or {}).items():
            paragraphs = [p.replace(before, after) for p in paragraphs]
        copy = replace(
            old,
            slug=slug or old.slug,
            outlet=outlet,
            prefix=prefix,
            paragraphs=paragraphs,
            published=old.published + timedelta(hours=2),
            updated=None,
            author=f"{outlet} wire",
        )
        return self.add(copy)

    def _touch(self, when: datetime) -> None:
        self._pages.clear()  # related links and feeds depend on every article
        self._site_modified = max(self._site_modified + timedelta(seconds=1), when)

    # -- request log ---------------------------------------------------------------------
    def article_requests(self) -> list[str]:
        """Article pages sent with a body (a 304 or a feed fetch does not count)."""
        return [
            r.path
            for r in list(self.requests)
            if r.status == 200
            and r.path.endswith(".html")
            and r.path.count("/") == 2
            and not r.path.startswith(("/private/", "/fault/"))
        ]

    def reset_requests(self) -> None:
        self.requests.clear()

    # -- rendering -----------------------------------------------------------------------
    def render(self, path: str, query: dict[str, list[str]]) -> _Page | None:
        arts = self.articles
        if path in ("/", "/index.html"):
            return _Page(self._listing(arts).encode(), "text/html; charset=utf-8", self._site_modified)
        if path == "/robots.txt":
            return _Page(b"User-agent: *\nDisallow: /private/\n", "text/plain", self._site_modified)
        feeds = {
            "/feed/rss.xml": lambda: self._rss2(arts),
            "/feed/rss091.xml": lambda: self._rss091(arts),
            "/feed/rss1.rdf": lambda: self._rss1(arts),
            "/feed/atom.xml": lambda: self._atom(arts),
            "/feed/broken.xml": lambda: self._rss2(arts).replace("</channel>", "<item><title>cut off"),
            "/feed/faults.xml": lambda: self._faults_feed(arts),
            "/news-sitemap.xml": lambda: self._news_sitemap(arts),
            "/sitemap-index.xml": lambda: self._sitemap_index(),
            "/sitemaps/news-1.xml": lambda: self._news_sitemap(arts[::2]),
            "/sitemaps/news-2.xml": lambda: self._news_sitemap(arts[1::2]),
        }
        if path in feeds:
            kind = (
                "application/rss+xml"
                if "rss" in path or "broken" in path or "faults" in path
                else ("application/atom+xml" if "atom" in path else "application/xml")
            )
            return _Page(feeds[path]().encode(), f"{kind}; charset=utf-8", self._site_modified)
        if path.startswith(("/fault/", "/private/")):
            return self._fault(path, query)
        with self._lock:
            article = self._articles.get(path)
        if article is None:
            return None
        body = self._pages.get(path)
        if body is None:
            body = self._article_page(article, arts).encode(article.encoding, errors="xmlcharrefreplace")
            self._pages[path] = body
        ctype = "text/html" + (f"; charset={article.encoding}" if article.charset_in_header else "")
        return _Page(body, ctype, article.modified)

    def _furniture_head(self, title: str, outlet: str) -> str:
        return (
            f'<header class="site-header"><div class="logo"><a href="/">{_e(outlet)}</a></div>'
            '<nav class="main-nav" role="navigation"><ul>'
            '<li><a href="/">Home</a></li><li><a href="/section/syria">Syria</a></li>'
            '<li><a href="/section/aleppo">Aleppo</a></li><li><a href="/section/opinion">Opinion</a></li>'
            f'<li><a href="/live/azaz">{NAV_PHRASE}</a></li></ul></nav>'
            '<div class="breaking">Breaking: <a href="/live/azaz">Follow our coverage</a></div></header>'
        )

    def _article_page(self, a: SiteArticle, arts: list[SiteArticle]) -> str:
        url = a.canonical or self.link(a.path)
        others = [o for o in arts if o.path != a.path][:3]
        related = "".join(f'<li><a href="{o.path}">{_e(o.title)}</a></li>' for o in others)
        related += "".join(
            f'<li><a href="/news/archive-{i}.html">{p}</a></li>' for i, p in enumerate(RELATED_PHRASES)
        )
        body = "".join(f"<p>{_e(p)}</p>" for p in a.paragraphs)
        lang = f' lang="{a.lang}"' if a.declare_lang else ""
        direction = ' dir="rtl"' if a.lang == "ar" else ""
        author = f'<meta name="author" content="{_e(a.author)}">' if a.author else ""
        byline = f'By <span class="author">{_e(a.author)}</span> ' if a.author else ""
        updated = (
            f'<meta property="article:modified_time" content="{a.updated.isoformat()}">' if a.updated else ""
        )
        padding = _padding(a.padding_kb, a.slug)
        return (
            f'<!DOCTYPE html><html{lang}{direction}><head><meta charset="{a.encoding}">'
            f"<title>{_e(a.title)} | {_e(a.outlet)}</title>"
            f'<link rel="canonical" href="{_e(url)}">'
            f'<meta property="og:type" content="article"><meta property="og:title" content="{_e(a.title)}">'
            f'<meta property="og:site_name" content="{_e(a.outlet)}">'
            f'<meta property="og:url" content="{_e(url)}">'
            f'<meta property="article:published_time" content="{a.published.isoformat()}">{updated}{author}'
            '<link rel="stylesheet" href="/static/site.css">'
            f'{padding[0]}</head><body class="single-post">'
            f"{self._furniture_head(a.title, a.outlet)}"
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
            f"</title></head><body>{self._furniture_head('News', self.outlet)}<main>{items}</main>"
            f'<footer class="site-footer"><p>{FOOTER_PHRASE}</p></footer></body></html>'
        )

    def _rss2(self, arts: list[SiteArticle], extra: Iterable[tuple[str, str]] = ()) -> str:
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

    def _faults_feed(self, arts: list[SiteArticle]) -> str:
        return self._rss2(arts[:1], [(p, p) for p in FAULT_PATHS])

    def _rss091(self, arts: list[SiteArticle]) -> str:
        items = "".join(
            f"<item><title>{_e(a.title)}</title><link>{self.link(a.path)}</link>"
            "<description>…</description></item>"
            for a in arts
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="0.91"><channel>'
            f"<title>{_e(self.outlet)}</title><link>{self.url}/</link><description>News</description>"
            f"<language>en</language>{items}</channel></rss>"
        )

    def _rss1(self, arts: list[SiteArticle]) -> str:
        seq = "".join(f'<rdf:li resource="{self.link(a.path)}"/>' for a in arts)
        items = "".join(
            f'<item rdf:about="{self.link(a.path)}"><title>{_e(a.title)}</title>'
            f"<link>{self.link(a.path)}</link>"
            f"<dc:date>{a.published.isoformat()}</dc:date></item>"
            for a in arts
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
            ' xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f'<channel rdf:about="{self.url}/feed/rss1.rdf"><title>{_e(self.outlet)}</title>'
            f"<link>{self.url}/</link><description>News</description><items><rdf:Seq>{seq}</rdf:Seq></items>"
            f"</channel>{items}</rdf:RDF>"
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

    def _sitemap_index(self) -> str:
        parts = "".join(
            f"<sitemap><loc>{self.url}/sitemaps/news-{i}.xml</loc>"
            f"<lastmod>{self._site_modified.isoformat()}</lastmod></sitemap>"
            for i in (1, 2)
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><sitemapindex '
            f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{parts}</sitemapindex>'
        )

    def _fault(self, path: str, query: dict[str, list[str]]) -> _Page | None:
        html_type = "text/html; charset=utf-8"
        if path == "/fault/404":
            return _Page(b"<html><body>Not found</body></html>", html_type, status=404)
        if path == "/fault/500":
            return _Page(b"<html><body>Server error</body></html>", html_type, status=500)
        if path == "/fault/slow":
            time.sleep(float(query.get("seconds", ["5"])[0]))
            return _Page(b"<html><body><p>late</p></body></html>", html_type)
        if path == "/fault/huge":
            size = int(query.get("bytes", [str(8 * 1024 * 1024)])[0])
            return _Page(b"<html><body><p>" + b"x" * size + b"</p></body></html>", html_type)
        if path == "/fault/gzip-bomb":
            size = int(query.get("bytes", [str(64 * 1024 * 1024)])[0])
            bomb = gzip.compress(b"<html><body><p>" + b"\0" * size, compresslevel=9)
            return _Page(bomb, html_type, headers={"Content-Encoding": "gzip"})
        if path == "/fault/loop":
            return _Page(b"", html_type, status=302, headers={"Location": "/fault/loop2"})
        if path == "/fault/loop2":
            return _Page(b"", html_type, status=302, headers={"Location": "/fault/loop"})
        if path == "/fault/binary":
            return _Page(b"%PDF-1.4\n" + bytes(range(256)) * 64, "application/pdf")
        if path == "/fault/binary-html":
            return _Page(b"\x89PNG\r\n\x1a\n\0\0\0" + bytes(range(256)) * 64, "text/html")
        if path == "/fault/undecodable":
            garbage = bytes(random.Random(7).randrange(128, 256) for _ in range(6000))
            return _Page(
                b'<html><head><meta charset="utf-8"></head><body><p>' + garbage + b"</p></body></html>",
                "text/html; charset=utf-8",
            )
        if path == "/private/secret.html":
            return _Page(b"<html><body><p>Robots said no.</p></body></html>", html_type)
        return None


# Fault routes with the failure reason the crawler records for each.
FAULTS = {
    "/fault/404": "http-404",
    "/fault/500": "http-500",
    "/fault/slow?seconds=4": "timeout",
    "/fault/huge": "too-large",
    "/fault/gzip-bomb": "too-large",
    "/fault/loop": "redirect-loop",
    "/fault/binary": "not-html",
    "/fault/binary-html": "binary",
    "/fault/undecodable": "undecodable",
    "/private/secret.html": "robots",
}
FAULT_PATHS = tuple(FAULTS)


def _padding(kb: int, key: str) -> tuple[str, str]:
    """Realistic bulk for bench pages: an inline script in <head> and many short comments."""
    if kb <= 0:
        return "", ""
    rng = random.Random(key)
    script_bytes = kb * 1024 * 2 // 3
    blob = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(256))
    script = f'<script>window.__STATE__="{(blob * (script_bytes // 256 + 1))[:script_bytes]}";</script>'
    comments, size, n = [], 0, 0
    target = kb * 1024 // 3 - 6000  # the rest of the page is about 6 KB
    while size < target:
        n += 1
        c = (
            f'<li class="comment"><div class="comment-content"><p>Reader {n}: '
            f"{' '.join(rng.choice(_WORDS) for _ in range(20))}</p></div></li>"
        )
        comments.append(c)
        size += len(c)
    return script, f'<ol class="comment-list more">{"".join(comments)}</ol>'


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class _Handler(BaseHTTPRequestHandler):
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
            page = _Page(f"site error: {exc}".encode(), "text/plain", status=500)
        if page is None:
            page = _Page(b"<html><body>Not found</body></html>", "text/html; charset=utf-8", status=404)
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


def _not_modified(headers, etag: str, modified: datetime | None) -> bool:
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
    "FAULTS",
    "FAULT_PATHS",
    "NewsSite",
    "SiteArticle",
    "arabic_article",
    "generate_articles",
    "load_seed_articles",
]
