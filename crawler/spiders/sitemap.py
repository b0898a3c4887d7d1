"""News sitemaps and sitemap indexes, parsed with lxml (Scrapy's SitemapSpider drops the
``news:`` fields: ``news:publication_date`` dates the article, ``news:title`` names it). A page
that is no sitemap fails the crawl as ``not-a-sitemap``; a sitemap listing no URL makes it
``empty``."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no type hints

from crawler.spiders.base import Entry, LookoutSpider, marker_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import scrapy
    from scrapy.http import Response

NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"


class SitemapSpider(LookoutSpider):
    """A sitemap source: a news sitemap's URLs are articles; a sitemap index's sitemaps are read
    in turn, each as an index page of its own (conditional GET included)."""

    name = "sitemap"
    kind = "sitemap"

    def parse_index(self, response: Response) -> Iterator[scrapy.Request]:
        if response.status == 304:
            self.source_stats.not_modified += 1
            return
        self.source_stats.indexes_read += 1
        self._remember_validators(response)
        root = _parse_xml(response.body, self.runtime.crawl.max_body_bytes)
        kind = etree.QName(root).localname if root is not None else None
        if root is None or kind not in ("urlset", "sitemapindex"):
            ctype = (response.headers.get("Content-Type") or b"").decode("latin-1")
            note = "HTML page" if kind == "html" or "html" in ctype.lower() else None
            detail = f"root element {kind or 'none'}, content-type {ctype or 'none'}"
            self.index_problem(response.url, "not-a-sitemap", detail, note)
            return
        if kind == "sitemapindex":
            children = [loc.text.strip() for loc in root.iterfind("{*}sitemap/{*}loc") if loc.text and loc.text.strip()]
            if not children:
                self.source_stats.empty_reason = "the sitemap index lists no sitemaps"
            for child in children:
                yield self.index_request(response.urljoin(child))
            return
        self.source_stats.empty_reason = "the sitemap lists no URLs"  # said only if no sitemap lists one
        yield from self.follow_entries(response, self.entries(root))

    def entries(self, root: etree._Element) -> Iterable[Entry]:
        for url in root.iterfind("{*}url"):
            loc = (url.findtext("{*}loc") or "").strip()
            if not loc:
                continue
            lastmod = (url.findtext("{*}lastmod") or "").strip() or None
            news_date = (
                url.findtext(f"{{{NEWS_NS}}}news/{{{NEWS_NS}}}publication_date") or ""
            ).strip() or None
            title = url.findtext(f"{{{NEWS_NS}}}news/{{{NEWS_NS}}}title")
            outlet = url.findtext(f"{{{NEWS_NS}}}news/{{{NEWS_NS}}}publication/{{{NEWS_NS}}}name")
            published = _iso(news_date) or _iso(lastmod)
            marker = marker_of(_iso(lastmod) or published, lastmod or news_date)
            yield Entry(
                loc, title.strip() if title else None, published, marker, outlet.strip() if outlet else None
            )


def _parse_xml(body: bytes, max_size: int) -> etree._Element | None:
    if body[:2] == b"\x1f\x8b":  # a .xml.gz sitemap served without Content-Encoding
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as f:
            body = f.read(max_size + 1 if max_size else -1)
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError:
        return None
    return root


def _iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
