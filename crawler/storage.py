"""Storing one cleaned article: new, updated (same URL, changed text: keeps its story) or
unchanged; story assignment (the story index in the database, ``crawler.stories``); ``alertable``
from ``crawl.max_age``; and which discovered URLs are stored already. Runs inside the caller's
transaction (the caller may match rules and enqueue alerts in the same one).

Safe with other transactions storing at once (crawl processes, threads): copies of one story
end in one story (``StoryClusterer.lock``), and two sightings of one new URL store one row, the
later one counting as that row's re-sighting."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core.store import article_urls, articles, insert_ignore, url_hash
from crawler.canonical import canonicalize
from crawler.stories import StoryClusterer, new_story_id, signature_of

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from sqlalchemy.engine import Connection, Row

    from crawler.items import Article, ArticleStatus

_SPACE = re.compile(r"\s+")

# Built once: the writer runs these for every article, and building a statement costs more
# than running it on SQLite.
_FIND = select(articles.c.id, articles.c.story_id, articles.c.content_hash, articles.c.alertable).where(
    articles.c.url_hash == bindparam("find_hash")
)
_UPDATE = update(articles).where(articles.c.id == bindparam("row_id"))
# Conflict-safe: another transaction may store the same URL between our look-up and our insert
# (on PostgreSQL this one then waits for it to commit); no row comes back then. No conflict
# target: url and url_hash are both unique, and PostgreSQL raises on a conflict in a unique index
# it was not told to arbitrate (url's, when the two inserts race past url_hash's pre-check). The
# dialects' own INSERTs, as core.store.insert_ignore's: SQL has no portable ON CONFLICT.
_INSERT_NEW = {
    "postgresql": postgresql.insert(articles).on_conflict_do_nothing().returning(articles.c.id),
    "sqlite": sqlite.insert(articles).on_conflict_do_nothing().returning(articles.c.id),
}


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
    # Before the first read: a copy of this story (or this URL) another transaction is storing
    # is then either committed, and found below, or waits for this transaction to end.
    clusterer.lock(conn, [article.signature])
    hashed = url_hash(article.url)
    row = conn.execute(_FIND, {"find_hash": hashed}).first()
    if row is None:
        saved = _insert_new(conn, article, clusterer, hashed, max_age=max_age, now=now)
        if saved is not None:
            return saved
        # Stored meanwhile by another transaction (on PostgreSQL, where a text without bands
        # takes no lock, and another text at this URL other locks): this is the row's re-sighting.
        row = conn.execute(_FIND, {"find_hash": hashed}).one()
    return _save_existing(conn, row, article, clusterer, now=now)


def _insert_new(
    conn: Connection,
    article: Article,
    clusterer: StoryClusterer,
    hashed: str,
    *,
    max_age: timedelta | None,
    now: datetime,
) -> SavedArticle | None:
    """Store an article first seen now under a similar article's story, else a new one; None if
    another transaction stored its URL first."""
    similar = clusterer.find(conn, article.signature)  # one indexed query per new article
    story_id = similar or new_story_id(article.url)
    alertable = is_alertable(article.published, max_age=max_age, now=now)
    article_id = conn.execute(
        _INSERT_NEW[conn.dialect.name],
        {
            "url": article.url,
            "url_hash": hashed,
            "source": article.source,
            "outlet": article.outlet,
            "title": article.title,
            "author": article.author,
            "published": article.published,
            "fetched": article.fetched or now,
            "first_seen": now,
            "language": article.language,
            "text": article.text,
            "content_hash": article.content_hash,
            "entry_marker": article.entry_marker,
            "story_id": story_id,
            "signature": article.signature,
            "alertable": alertable,
        },
    ).scalar()
    if article_id is None:
        return None
    clusterer.add(conn, article_id, article.signature)
    _remember_other_urls(conn, article_id, article)
    return SavedArticle(article_id, story_id, "new", similar is None, alertable)


def _save_existing(
    conn: Connection, row: Row[Any, Any, Any, Any], article: Article, clusterer: StoryClusterer, *, now: datetime
) -> SavedArticle:
    """A stored URL seen again: unchanged, or updated (its story kept, its bands re-indexed)."""
    values = {"row_id": row.id, "fetched": article.fetched or now, "entry_marker": article.entry_marker}
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
    clusterer.reindex(conn, row.id, article.signature)  # same URL keeps its story
    return SavedArticle(row.id, row.story_id, "updated", True, row.alertable)


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
