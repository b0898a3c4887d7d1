"""Listing pages: article links picked by the source's CSS selector, same-site links only. A
selector that picks nothing makes the crawl ``empty: selector matched nothing``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.canonical import same_site
from crawler.spiders.base import Entry, LookoutSpider

if TYPE_CHECKING:
    from collections.abc import Iterable

    from scrapy.http import Response


class ListingSpider(LookoutSpider):
    """A listing source: the links its ``follow`` selector picks on the page are articles."""

    name = "listing"
    kind = "listing"

    def discover(self, response: Response) -> Iterable[Entry]:
        follow = self.source.follow
        if not follow:  # the sources file's validation requires it of a listing source
            raise ValueError(f"listing source {self.source.name} has no 'follow' selector")
        matched = response.css(follow)
        if not matched:
            self.source_stats.empty_reason = "selector matched nothing"
            return
        links = 0
        for sel in matched:
            href = sel.attrib.get("href") or sel.css("a::attr(href)").get()
            if not href:
                continue
            url = response.urljoin(href.strip())
            if same_site(url, response.url):
                links += 1
                yield Entry(url, " ".join(sel.css("::text").getall()).strip() or None)
        if not links:
            self.source_stats.empty_reason = f"selector matched {len(matched)} element(s), none a link to this site"
