"""Storing one cleaned article: new, updated (same URL, changed text: keeps its story) or
unchanged; story assignment; ``alertable`` from ``crawl.max_age``; and which discovered URLs are
stored already. Runs inside the caller's transaction (the caller may match rules and enqueue
alerts in the same one)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update

from core.store import article_urls, articles, insert_ignore, url_hash
from crawler.canonical import canonicalize
from crawler.stories import StoryClusterer, signature_of

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from sqlalchemy.engine import Connection, CursorResult

    from crawler.items import Article, ArticleStatus

_SPACE = re.compile(r"\s+")

# Built once: the writer runs these for every article, and building a statement costs more
# than running it on SQLite.
_FIND = select(articles.c.id, articles.c.story_id, articles.c.content_hash, articles.c.alertable).where(
    articles.c.url_hash == bindparam("find_hash")
)
_UPDATE = update(articles).where(articles.c.id == bindparam("row_id"))
_INSERT = articles.insert()


@dataclass(frozen=True)
class SavedArticle:
    """What ``save_article`` did with an article (a ``crawler.runtime.Stored``)."""

    article_id: int
    story_id: str
    status: ArticleStatus
    new_story: bool  # False when it joined an existing story from another URL (syndicated copy)
    alertable: bool


def content_hash(title: str, text: str) -> str:
    """The sha256 of the title and text, whitespace and case normalised."""
    normalised = _SPACE.sub(" ", f"{title}\n{text}").strip().lower()
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def is_alertable(published: datetime | None, *, max_age: timedelta | None, now: datetime) -> bool:
    """Too old at first sight: stored, never alerted. No date: alertable (first sight is now)."""
    return max_age is None or published is None or now - published <= max_age


def save_article(
    conn: Connection,
    article: Article,
    clusterer: StoryClusterer,
    *,
    max_age: timedelta | None,
    now: datetime,
) -> SavedArticle:
    if not article.content_hash:
        article.content_hash = content_hash(article.title, article.text)
    if article.signature is None:
        article.signature = signature_of(article.text)
    fetched = article.fetched or now
    hashed = url_hash(article.url)
    row = conn.execute(_FIND, {"find_hash": hashed}).first()
    if row is not None:
        values = {"row_id": row.id, "fetched": fetched, "entry_marker": article.entry_marker}
        _remember_other_urls(conn, row.id, article)
        if row.content_hash == article.content_hash:
            conn.execute(_UPDATE, values)
            return SavedArticle(row.id, row.story_id, "unchanged", True, row.alertable)
        values |= {
            "title": article.title,
            "text": article.text,
            "author": article.author,
            "published": article.published,
            "language": article.language,
            "outlet": article.outlet,
            "content_hash": article.content_hash,
            "signature": article.signature,
        }
        conn.execute(_UPDATE, values)
        clusterer.add(article.url, row.story_id, article.signature)  # same URL keeps its story
        return SavedArticle(row.id, row.story_id, "updated", True, row.alertable)

    story_id, similar = clusterer.assign(article)  # one LSH query per new article
    alertable = is_alertable(article.published, max_age=max_age, now=now)
    result = conn.execute(
        _INSERT,
        {
            "url": article.url,
            "url_hash": hashed,
            "source": article.source,
            "outlet": article.outlet,
            "title": article.title,
            "author": article.author,
            "published": article.published,
            "fetched": fetched,
            "first_seen": now,
            "language": article.language,
            "text": article.text,
            "content_hash": article.content_hash,
            "entry_marker": article.entry_marker,
            "story_id": story_id,
            "signature": article.signature,
            "alertable": alertable,
        },
    )
    article_id = inserted_id(result)
    _remember_other_urls(conn, article_id, article)
    return SavedArticle(article_id, story_id, "new", similar is None, alertable)


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key of the row a one-row INSERT added."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the INSERT reported no primary key")
    return int(key[0])


def _remember_other_urls(conn: Connection, article_id: int, article: Article) -> None:
    """The link that led here and the URL fetched, when they differ from the canonical URL."""
    others: set[str] = set()
    for raw in (article.discovered_url, article.fetched_url):
        if raw:
            url = canonicalize(raw)
            if url != article.url:
                others.add(url)
    if others:
        insert_ignore(conn, article_urls, [
            {"url_hash": url_hash(u), "url": u, "article_id": article_id} for u in sorted(others)
        ])


def known_articles(conn: Connection, urls: list[str]) -> dict[str, str | None]:
    """Stored canonical URLs among ``urls`` with their entry markers (for new-only discovery)."""
    found: dict[str, str | None] = {}
    by_hash = {url_hash(u): u for u in urls}
    hashes = list(by_hash)
    for i in range(0, len(hashes), 500):
        chunk = hashes[i : i + 500]
        canonical = select(articles.c.url_hash, articles.c.entry_marker).where(articles.c.url_hash.in_(chunk))
        other = (
            select(article_urls.c.url_hash, articles.c.entry_marker)
            .join(articles, articles.c.id == article_urls.c.article_id)
            .where(article_urls.c.url_hash.in_(chunk))
        )
        for stmt in (canonical, other):
            for h, marker in conn.execute(stmt):
                found[by_hash[h]] = marker
    return found
