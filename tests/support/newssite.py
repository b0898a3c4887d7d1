"""The tests' and benches' news site: the demo's site (lookout/demo/site.py) plus what only
tests and benches need. Never shipped.

On top of the demo's routes it serves:

=============================  ===============================================================
``/feed/rss091.xml``           RSS 0.91 (``/feed/rss1.rdf``: RSS 1.0)
``/feed/broken.xml``           a malformed RSS feed that still holds its entries
``/feed/faults.xml``           RSS 2.0 linking one good article and every fault route
``/sitemap-index.xml``         sitemap index over ``/sitemaps/news-1.xml`` and ``news-2.xml``
``/partner/<slug>.html``       syndicated copies (any ``SiteArticle.prefix``)
``/fault/...``                 404, 500, slow, huge, gzip-bomb, loop, binary, binary-html,
                               undecodable; ``/private/secret.html`` is robots-disallowed
=============================  ===============================================================

and its articles can hide their charset or language, name another canonical URL and carry
bench padding. API::

    with NewsSite.from_seeds() as site:          # or NewsSite(articles), then start()/stop()
        site.add(SiteArticle(...)); site.update(slug, text=...); site.remove(slug)
        site.publish(SiteArticle(...))           # added as published now
        site.syndicate(slug, outlet="Levant Wire", edits={...})  # same story, other furniture
        site.requests                            # every path served, in order
        site.article_requests()                  # article pages served with a body (200)
    arabic_article()                             # windows-1256, charset only in <meta>
    generate_articles(2000)                      # bench pages of 50-120 KB each
"""

from __future__ import annotations

import functools
import gzip
import html
import random
import threading
import time
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self

from lookout.demo import site as demo
from lookout.demo.site import (
    COMMENT_PHRASE,
    FOOTER_PHRASE,
    HTML_TYPE,
    NAV_PHRASE,
    RELATED_PHRASES,
    RSS_TYPE,
    SEEDS_DIR,
    XML_TYPE,
    Page,
    ServedRequest,
)

if TYPE_CHECKING:
    from pathlib import Path

    from lookout.demo.site import Feed


@dataclass
class SiteArticle(demo.SiteArticle):
    """The demo's article with the knobs the crawler's tests and the benches turn."""

    charset_in_header: bool = True  # False: only the page's <meta charset> says it
    prefix: str = "news"  # path prefix: /news/<slug>.html
    declare_lang: bool = True  # False: no <html lang>, so the crawler must detect it
    padding_kb: int = 0  # extra furniture (scripts, comments) to make bench pages realistic
    canonical: str | None = None  # override rel=canonical (absolute URL)

    @property
    def path(self) -> str:
        return f"/{self.prefix}/{self.slug}.html"


def as_site_article(article: demo.SiteArticle) -> SiteArticle:
    """A demo article as this module's (same fields, the extra knobs at their defaults)."""
    if isinstance(article, SiteArticle):
        return article
    return SiteArticle(**{f.name: getattr(article, f.name) for f in fields(demo.SiteArticle)})


def load_seed_articles(seeds_dir: Path = SEEDS_DIR) -> list[SiteArticle]:
    """The seed .txt files as articles (see ``lookout.demo.site.load_seed_articles``)."""
    return [as_site_article(a) for a in demo.load_seed_articles(seeds_dir)]


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


# Fault routes with the failure reason the crawler records for each, in the order
# ``/feed/faults.xml`` lists them: the slow page first, so its download timeouts (and retry) run
# while the crawl fetches the others, not after them.
FAULTS = {
    "/fault/slow?seconds=4": "timeout",
    "/fault/404": "http-404",
    "/fault/500": "http-500",
    "/fault/huge": "too-large",
    "/fault/gzip-bomb": "too-large",
    "/fault/loop": "redirect-loop",
    "/fault/binary": "not-html",
    "/fault/binary-html": "binary",
    "/fault/undecodable": "undecodable",
    "/private/secret.html": "robots",
}
FAULT_PATHS = tuple(FAULTS)

STOP_POLL_SECONDS = 0.02


class NewsSite(demo.NewsSite):
    """The demo's site with more feed formats, fault routes, run-time edits and a request log
    helper. Every article it holds is this module's ``SiteArticle``."""

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Self:
        """As the demo site's, but the server looks for ``stop()`` every 20 ms, not every 0.5 s
        (``serve_forever``'s default), so stopping a site does not cost a test half a second."""
        if self._server is None:
            handler = type("Handler", (demo._Handler,), {"site": self})
            self._server = ThreadingHTTPServer((demo.HOST, 0), handler)
            self._server.daemon_threads = True
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": STOP_POLL_SECONDS},
                name="newssite",
                daemon=True,
            )
            self._thread.start()
        return self

    # -- content (``articles`` and ``get`` hold this module's SiteArticle: ``add`` converts) --
    def get(self, path_or_slug: str) -> SiteArticle:
        return as_site_article(super().get(path_or_slug))

    def add(self, article: demo.SiteArticle) -> SiteArticle:
        return as_site_article(super().add(as_site_article(article)))

    def publish(self, article: demo.SiteArticle) -> SiteArticle:
        """Add an article as just published (its dates set to now)."""
        now = _now()
        return self.add(replace(article, published=now, updated=None))

    def update(self, path_or_slug: str, **changes: Any) -> SiteArticle:
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
    def render(self, path: str, query: dict[str, list[str]]) -> Page | None:
        if path.startswith(("/fault/", "/private/")):
            return self._fault(path, query)
        return super().render(path, query)

    def _feeds(self, arts: list[demo.SiteArticle]) -> dict[str, Feed]:
        return {
            **super()._feeds(arts),
            "/feed/rss091.xml": (RSS_TYPE, lambda: self._rss091(arts)),
            "/feed/rss1.rdf": (RSS_TYPE, lambda: self._rss1(arts)),
            "/feed/broken.xml": (RSS_TYPE, lambda: self._rss2(arts).replace("</channel>", "<item><title>cut off")),
            "/feed/faults.xml": (RSS_TYPE, lambda: self._rss2(arts[:1], [(p, p) for p in FAULT_PATHS])),
            "/sitemap-index.xml": (XML_TYPE, self._sitemap_index),
            "/sitemaps/news-1.xml": (XML_TYPE, lambda: self._news_sitemap(arts[::2])),
            "/sitemaps/news-2.xml": (XML_TYPE, lambda: self._news_sitemap(arts[1::2])),
        }

    def _canonical(self, a: demo.SiteArticle) -> str:
        return as_site_article(a).canonical or super()._canonical(a)

    def _html_attrs(self, a: demo.SiteArticle) -> str:
        if as_site_article(a).declare_lang:
            return super()._html_attrs(a)
        return ' dir="rtl"' if a.lang == "ar" else ""

    def _padding(self, a: demo.SiteArticle) -> tuple[str, str]:
        return _padding(as_site_article(a).padding_kb, a.slug)

    def _content_type(self, a: demo.SiteArticle) -> str:
        return super()._content_type(a) if as_site_article(a).charset_in_header else "text/html"

    def _rss091(self, arts: list[demo.SiteArticle]) -> str:
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

    def _rss1(self, arts: list[demo.SiteArticle]) -> str:
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

    def _fault(self, path: str, query: dict[str, list[str]]) -> Page | None:
        if path == "/fault/404":
            return Page(b"<html><body>Not found</body></html>", HTML_TYPE, status=404)
        if path == "/fault/500":
            return Page(b"<html><body>Server error</body></html>", HTML_TYPE, status=500)
        if path == "/fault/slow":
            time.sleep(float(query.get("seconds", ["5"])[0]))
            return Page(b"<html><body><p>late</p></body></html>", HTML_TYPE)
        if path == "/fault/slow-feed":  # the site's RSS feed, late
            time.sleep(float(query.get("seconds", ["5"])[0]))
            return self.render("/feed/rss.xml", {})
        if path == "/fault/huge":
            size = int(query.get("bytes", [str(8 * 1024 * 1024)])[0])
            return Page(b"<html><body><p>" + b"x" * size + b"</p></body></html>", HTML_TYPE)
        if path == "/fault/gzip-bomb":
            size = int(query.get("bytes", [str(64 * 1024 * 1024)])[0])
            return Page(_gzip_bomb(size), HTML_TYPE, headers={"Content-Encoding": "gzip"})
        if path == "/fault/loop":
            return Page(b"", HTML_TYPE, status=302, headers={"Location": "/fault/loop2"})
        if path == "/fault/loop2":
            return Page(b"", HTML_TYPE, status=302, headers={"Location": "/fault/loop"})
        if path == "/fault/binary":
            return Page(b"%PDF-1.4\n" + bytes(range(256)) * 64, "application/pdf")
        if path == "/fault/binary-html":
            return Page(b"\x89PNG\r\n\x1a\n\0\0\0" + bytes(range(256)) * 64, "text/html")
        if path == "/fault/undecodable":
            garbage = bytes(random.Random(7).randrange(128, 256) for _ in range(6000))
            return Page(
                b'<html><head><meta charset="utf-8"></head><body><p>' + garbage + b"</p></body></html>",
                HTML_TYPE,
            )
        if path == "/private/secret.html":
            return Page(b"<html><body><p>Robots said no.</p></body></html>", HTML_TYPE)
        return None


@functools.cache
def _gzip_bomb(size: int) -> bytes:
    """``size`` bytes of page once gunzipped, in a few KB; made once per size (0.3 s for 64 MB)."""
    return gzip.compress(b"<html><body><p>" + b"\0" * size, compresslevel=9)


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


__all__ = [
    "ARABIC_PARAGRAPHS",
    "COMMENT_PHRASE",
    "FAULTS",
    "FAULT_PATHS",
    "FOOTER_PHRASE",
    "NAV_PHRASE",
    "RELATED_PHRASES",
    "SEEDS_DIR",
    "NewsSite",
    "ServedRequest",
    "SiteArticle",
    "arabic_article",
    "as_site_article",
    "generate_articles",
    "load_seed_articles",
]
