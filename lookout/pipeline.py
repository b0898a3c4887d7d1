"""The pipeline: the junction of crawler, rules and alerts. One transaction stores a cleaned
article, matches the rules on it, stores the matches and enqueues the alerts; either all of it
is committed or none of it, so an alert is never lost between matching and the outbox.

The crawler reaches it through its ``Ingestor`` protocol (the runner is handed a
``PipelineIngestor``) or, for plain ``scrapy crawl``, through the ``LOOKOUT_STANDALONE``
setting naming ``ScrapyStandalone``; no stage imports this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Insert, select
from sqlalchemy.dialects import postgresql, sqlite

from alerts.outbox import enqueue
from alerts.subscriptions import has_subscriptions, recipients_for
from core.store import Store, matches, utcnow
from crawler.extract import ExtractionPool
from crawler.runtime import CrawlRuntime
from crawler.settings import apply_config
from crawler.storage import save_article
from crawler.stories import StoryClusterer
from lookout import __version__
from lookout.config import Config, load_config
from lookout.loaders import gazetteer_for, sources_from_config
from rules.engine import match, scan
from rules.loader import load_ruleset

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, timedelta

    from scrapy.settings import BaseSettings
    from sqlalchemy.engine import Connection

    from crawler.items import Article, ArticleStatus
    from rules.index import CompiledRuleset
    from rules.types import Analysis, Match

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOutcome:
    article_id: int
    story_id: str
    status: ArticleStatus
    new_story: bool  # False: a syndicated copy of a story already stored
    alertable: bool
    matches: tuple[Match, ...] = ()
    enqueued: int = 0
    also: int = 0  # existing alerts that gained an "Also: <outlet>"


@dataclass
class IngestTotals:
    articles: int = 0
    new: int = 0
    updated: int = 0
    duplicates: int = 0
    matches: int = 0
    alerts: int = 0
    outcomes: list[IngestOutcome] = field(default_factory=list)


class PipelineIngestor:
    """The crawler's ``Ingestor``: built once per crawl; ``rules`` is a callable so hot-reloaded
    rules take effect."""

    def __init__(
        self,
        store: Store,
        rules: Callable[[], CompiledRuleset],
        *,
        max_age: timedelta | None,
        now: Callable[[], datetime] = utcnow,
        only_chats: frozenset[str] | None = None,
    ):
        self.store = store
        self.rules = rules
        self.max_age = max_age
        self.now = now
        # The demo delivers to its own chat only, never to the rules' real notify channels.
        self.only_chats = only_chats
        self.totals = IngestTotals()
        with store.connect() as conn:
            self.clusterer = StoryClusterer.load(conn)

    def ruleset(self) -> CompiledRuleset:
        return self.rules()

    def ingest(self, article: Article, analysis: Analysis | None = None) -> IngestOutcome:
        return self.ingest_many([article], [analysis])[0]

    def ingest_many(
        self, batch: list[Article], analyses: list[Analysis | None] | None = None
    ) -> list[IngestOutcome]:
        """Ingest several articles in one transaction (one commit, not one per article): each
        article's row, matches and outbox rows still commit together, or none of the batch does.
        ``analyses`` may carry each article's matches and mentions, computed elsewhere (the crawl
        matches in its extraction processes) with this ingestor's ruleset."""
        now = self.now()
        ruleset = self.rules()
        given = analyses or [None] * len(batch)
        with self.store.begin() as conn:
            subscribed = SubscriptionsExist(conn)
            outcomes = [
                self._ingest_in(conn, article, ruleset, now, analysis, subscribed)
                for article, analysis in zip(batch, given, strict=True)
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
        self, conn: Connection, article: Article, ruleset: CompiledRuleset, now: datetime,
        analysis: Analysis | None, subscribed: SubscriptionsExist,
    ) -> IngestOutcome:
        found: list[Match] = []
        enqueued = also = 0
        saved = save_article(conn, article, self.clusterer, max_age=self.max_age, now=now)
        # Only a first sighting alerts: an update at the same URL never alerts again.
        if saved.status == "new":
            found = list(analysis.matches) if analysis else match(article, ruleset)
            rows: dict[str, dict[str, Any]] = {}
            for m in found:  # one row per rule: a repeat would be ignored anyway
                if m.rule_id not in rows:
                    rows[m.rule_id] = {
                        "article_id": saved.article_id, "rule_id": m.rule_id,
                        "evidence": m.to_dict(), "created_at": now,
                    }
            match_ids = _insert_matches(conn, saved.article_id, list(rows.values()))
            # No subscriptions at all: only a rule's notify can alert (asked once per batch).
            if saved.alertable and (any(m.notify for m in found) or subscribed()):
                mentions = analysis.mentions if analysis else scan(article, ruleset)
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


class SubscriptionsExist:
    """Whether any chat subscribes to anything, asked at most once per transaction: with no
    subscriptions at all only a rule's ``notify`` can alert."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.answer: bool | None = None

    def __call__(self) -> bool:
        if self.answer is None:
            self.answer = has_subscriptions(self.conn)
        return self.answer


_MATCH_INSERTS: dict[str, Insert] = {}


def _insert_matches(conn: Connection, article_id: int, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert an article's matches in one statement; their ids by rule id."""
    if not rows:
        return {}
    stmt = _MATCH_INSERTS.get(conn.dialect.name)
    if stmt is None:
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
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


def build_ingestor(
    config: Config, store: Store, *, ruleset: CompiledRuleset | None = None
) -> PipelineIngestor:
    """The ingestor of a crawl the caller did not give rules to (``lookout crawl``, plain
    ``scrapy crawl``): the configured rules, loaded once."""
    loaded = ruleset or load_ruleset(config.rule_paths(), gazetteer=gazetteer_for(config))
    return PipelineIngestor(store, lambda: loaded, max_age=config.crawl.max_age)


class ScrapyStandalone:
    """What plain ``scrapy crawl feed -a source=NAME`` runs with (named by the crawler's
    ``LOOKOUT_STANDALONE`` setting): the configuration file's crawl section, store, rules and
    sources, found as the ``lookout`` command finds them (or ``-s LOOKOUT_CONFIG_FILE=``)."""

    def apply_settings(self, settings: BaseSettings) -> None:
        config = load_config(settings.get("LOOKOUT_CONFIG_FILE"))
        debug = config.log_level == "DEBUG"
        apply_config(settings, config.crawl, version=__version__, debug=debug, priority="spider")
        # Scrapy's own run: its INFO lines too, the stats dumped at the end among them (a managed
        # crawl keeps Scrapy at WARNING and prints Lookout's summary instead). The run itself is
        # recorded in crawl_runs by crawler.runner.StandaloneRunRecorder.
        settings.set("LOG_LEVEL", "DEBUG" if debug else "INFO", priority="spider")

    def runtime(self, settings: BaseSettings) -> CrawlRuntime:
        config = load_config(settings.get("LOOKOUT_CONFIG_FILE"))
        store = Store(config.database_url())
        ingestor = build_ingestor(config, store)
        return CrawlRuntime(
            config.crawl, store, ingestor, ExtractionPool(ruleset=ingestor.ruleset()).start(),
            sources=sources_from_config(config), owned_store=True, owned_extractor=True,
        )
