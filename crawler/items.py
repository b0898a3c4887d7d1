"""The crawler's items, typed (Scrapy accepts dataclass items): the cleaned ``Article``, the
``Cleaned`` item a spider yields (the article with its rule analysis), and what storing an
article found (``ArticleStatus``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from datetime import datetime

    from rules.types import Analysis

# What storing an article found: a first sighting, a changed text at a known URL, or neither.
ArticleStatus = Literal["new", "updated", "unchanged"]


@dataclass
class Article:
    """One article page, cleaned: body text and metadata, ready to store."""

    url: str  # canonical URL: the page's rel=canonical when same-site, else the canonicalised fetch URL
    source: str  # source name from the sources file
    title: str
    text: str  # body text only: no navigation, related links, comments or footer
    fetched_url: str = ""
    discovered_url: str | None = None  # the link in the feed, sitemap or listing that led here
    outlet: str | None = None  # the site's own name ("NOW Lebanon"), for the alert footer
    author: str | None = None
    published: datetime | None = None  # timezone-aware UTC
    language: str | None = None  # ISO 639-1
    fetched: datetime | None = None
    content_hash: str = ""  # sha256 of the normalised text: an unchanged page is not an update
    entry_marker: str | None = None  # the feed/sitemap entry's own "updated" stamp, if any
    signature: bytes | None = field(default=None, repr=False)  # MinHash for story clustering


@dataclass
class Cleaned:
    """The item a spider yields: the article and, when the extraction pool matched the rules,
    its matches and mentions."""

    article: Article
    analysis: Analysis | None = None
