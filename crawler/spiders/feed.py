"""RSS 0.9x / 1.0 / 2.0 and Atom feeds, parsed by feedparser from the response body (relative
links and ``xml:base`` resolved; a malformed feed still yields the entries it holds). A page that
is no feed at all fails the crawl as ``not-a-feed`` (an HTML page says so); a feed without
entries makes it ``empty``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import feedparser

from crawler.spiders.base import HTML_TYPES, Entry, LookoutSpider, marker_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from time import struct_time

    from scrapy.http import Response


class FeedSpider(LookoutSpider):
    """A feed source: each entry's link (or its alternate link) is an article."""

    name = "feed"
    kind = "feed"

    def discover(self, response: Response) -> Iterable[Entry]:
        ctype = (response.headers.get("Content-Type") or b"application/xml").decode("latin-1")
        parsed = feedparser.parse(
            response.body, response_headers={"content-location": response.url, "content-type": ctype}
        )
        if not parsed.get("version") and not parsed.entries:  # neither RSS nor Atom
            note = "HTML page" if _is_html(response) else "not RSS or Atom"
            self.index_problem(response.url, "not-a-feed", f"content-type {ctype or 'none'}", note)
            return
        if not parsed.entries:
            problem = parsed.get("bozo_exception") if parsed.bozo else None
            self.source_stats.empty_reason = f"unreadable feed: {problem}" if problem else "the feed has no entries"
            return
        outlet = parsed.feed.get("title") or None
        for e in parsed.entries:
            link = e.get("link") or _alternate(e)
            if not link:
                continue
            updated = _when(e.get("updated_parsed"))
            published = _when(e.get("published_parsed")) or updated
            marker = marker_of(updated or published, e.get("updated") or e.get("published"))
            yield Entry(link, e.get("title"), published, marker, outlet)


def _is_html(response: Response) -> bool:
    ctype = (response.headers.get("Content-Type") or b"").split(b";")[0].strip().lower()
    head = response.body[:512].lstrip().lower()
    return ctype in HTML_TYPES or head.startswith((b"<!doctype html", b"<html"))


def _alternate(entry: Mapping[str, Any]) -> str | None:
    """The entry's first ``rel=alternate`` link (feedparser's entries hold any JSON-like value)."""
    for link in entry.get("links", []):
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return str(link["href"])
    return None


def _when(struct: struct_time | None) -> datetime | None:
    if not struct:
        return None
    try:
        year, month, day, hour, minute, second = struct[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError):
        return None
