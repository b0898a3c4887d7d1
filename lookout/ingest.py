"""Ingest: the one transaction that stores a cleaned article, matches the rules on it, stores
the matches and enqueues the alerts. Either all of it is committed or none of it, so an alert is
never lost between matching and the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from crawler.items import Article
from lookout.store import Store, matches, select, utcnow
from rules.types import Match, Mentions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOutcome:
    article_id: int
    story_id: str
    status: str  # new | updated | unchanged
    new_story: bool  # False: a syndicated copy of a story already stored
    alertable: bool
    matches: tuple[Match, ...] = ()
    enqueued: int = 0
    also: int = 0  # existing alerts that gained an "Also: <outlet>"


@dataclass(frozen=True)
class Analysed:
    """An article's rule matches and mentions, computed before ingest (pure, so anywhere)."""

    matches: tuple[Match, ...]
    mentions: Mentions


@dataclass
class IngestTotals:
    articles: int = 0
    new: int = 0
    updated: int = 0
    duplicates: int = 0
    matches: int = 0
    alerts: int = 0
    outcomes: list[IngestOutcome] = field(default_factory=list)


class Ingestor:
    """Built once per crawl; ``ruleset`` is a callable so hot-reloaded rules take effect."""

    def __init__(
        self,
        store: Store,
        ruleset: Callable[[], object],
        *,
        max_age: timedelta | None,
        now: Callable[[], datetime] = utcnow,
        only_chats: frozenset[str] | None = None,
    ):
        from crawler.stories import StoryClusterer

        self.store = store
        self.ruleset = ruleset
        self.max_age = max_age
        self.now = now
        # The demo delivers to its own chat only, never to the rules' real notify channels.
        self.only_chats = only_chats
        self.totals = IngestTotals()
        with store.connect() as conn:
            self.clusterer = StoryClusterer.load(conn)

    def ingest(self, article: Article, analysed: Analysed | None = None) -> IngestOutcome:
        return self.ingest_many([article], [analysed])[0]

    def ingest_many(
        self, batch: list[Article], analysed: list[Analysed | None] | None = None
    ) -> list[IngestOutcome]:
        """Ingest several articles in one transaction (one commit, not one per article): each
        article's row, matches and outbox rows still commit together, or none of the batch does.
        ``analysed`` may carry each article's matches and mentions, computed elsewhere (the crawl
        matches in its extraction processes) with this ingestor's ruleset."""
        now = self.now()
        ruleset = self.ruleset()
        extra = analysed or [None] * len(batch)
        with self.store.begin() as conn:
            subscribed = _Once(conn)
            outcomes = [
                self._ingest_in(conn, article, ruleset, now, pre, subscribed)
                for article, pre in zip(batch, extra, strict=True)
            ]
        for article, outcome in zip(batch, outcomes, strict=True):
            self._count(outcome)
            # INFO only for what an operator acts on (alerts queued); every article at DEBUG, so
            # a crawl of thousands of pages does not bury its progress lines.
            log.log(
                logging.INFO if outcome.enqueued or outcome.also else logging.DEBUG,
                "ingested article=%s status=%s story=%s matches=%d alerts=%d url=%s",
                outcome.article_id, outcome.status, outcome.story_id, len(outcome.matches),
                outcome.enqueued, article.url,
            )
        return outcomes

    def _ingest_in(
        self, conn, article: Article, ruleset, now: datetime, analysed: Analysed | None,
        subscribed: Callable[[], bool] | None = None,
    ) -> IngestOutcome:
        import rules
        from alerts.outbox import enqueue
        from alerts.subscriptions import recipients_for
        from crawler.storage import save_article

        found: list[Match] = []
        enqueued = also = 0
        saved = save_article(conn, article, self.clusterer, max_age=self.max_age, now=now)
        # Only a first sighting alerts: an update at the same URL never alerts again.
        if saved.status == "new":
            found = list(analysed.matches) if analysed else rules.match(article, ruleset)
            rows: dict[str, dict] = {}
            for m in found:  # one row per rule: a repeat would be ignored anyway
                if m.rule_id not in rows:
                    rows[m.rule_id] = {
                        "article_id": saved.article_id, "rule_id": m.rule_id,
                        "evidence": m.to_dict(), "created_at": now,
                    }
            match_ids = _insert_matches(conn, saved.article_id, list(rows.values()))
            # No subscriptions at all: only a rule's notify can alert (asked once per batch).
            if saved.alertable and (any(m.notify for m in found) or (subscribed or _Once(conn))()):
                mentions = analysed.mentions if analysed else rules.scan(article, ruleset)
                recipients = recipients_for(conn, found, mentions, ruleset, now)
                if self.only_chats is not None:
                    recipients = [r for r in recipients if r.chat_id in self.only_chats]
                result = enqueue(
                    conn,
                    article_id=saved.article_id,
                    story_id=saved.story_id,
                    outlet=article.outlet or article.source,
                    recipients=recipients,
                    match_ids=match_ids,
                    first_seen=now,
                    now=now,
                )
                enqueued, also = result.new_rows, result.also_updates
        return IngestOutcome(
            article_id=saved.article_id, story_id=saved.story_id, status=saved.status,
            new_story=saved.new_story, alertable=saved.alertable, matches=tuple(found),
            enqueued=enqueued, also=also,
        )

    def _count(self, outcome: IngestOutcome) -> None:
        t = self.totals
        t.articles += 1
        t.new += outcome.status == "new"
        t.updated += outcome.status == "updated"
        t.duplicates += outcome.status == "new" and not outcome.new_story
        t.matches += len(outcome.matches)
        t.alerts += outcome.enqueued
        t.outcomes.append(outcome)


class _Once:
    """``has_subscriptions`` asked at most once per transaction."""

    def __init__(self, conn):
        self.conn = conn
        self.answer: bool | None = None

    def __call__(self) -> bool:
        if self.answer is None:
            from alerts.subscriptions import has_subscriptions

            self.answer = has_subscriptions(self.conn)
        return self.answer


_MATCH_INSERTS: dict[str, object] = {}


def _insert_matches(conn, article_id: int, rows: list[dict]) -> dict[str, int]:
    """Insert an article's matches in one statement; their ids by rule id."""
    if not rows:
        return {}
    stmt = _MATCH_INSERTS.get(conn.dialect.name)
    if stmt is None:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = dialect_insert(matches).on_conflict_do_nothing().returning(matches.c.id, matches.c.rule_id)
        _MATCH_INSERTS[conn.dialect.name] = stmt
    ids = {rule_id: id_ for id_, rule_id in conn.execute(stmt, rows)}
    missing = [r["rule_id"] for r in rows if r["rule_id"] not in ids]
    if missing:  # already there (ignored by the insert): read their ids
        ids.update((rule_id, id_) for id_, rule_id in conn.execute(
            select(matches.c.id, matches.c.rule_id)
            .where(matches.c.article_id == article_id, matches.c.rule_id.in_(missing))
        ))
    return ids


def build_ingestor(config, *, store: Store | None = None, ruleset=None) -> Ingestor:
    """The ingestor a crawl uses when the caller did not provide one (plain ``scrapy crawl``)."""
    from rules import load_ruleset
    from rules.gazetteer import gazetteer_for

    store = store or Store(config.database_url())
    loaded = ruleset or load_ruleset(config.rule_paths(), gazetteer=gazetteer_for(config))
    return Ingestor(store, lambda: loaded, max_age=config.crawl.max_age)
