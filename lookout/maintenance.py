"""Daily maintenance: retention (``keep_articles``) and, on SQLite, VACUUM.

Articles older than ``keep_articles`` (by first sight) go, with their matches and outbox rows
(cascading keys), except those with an alert still pending or in flight: retention never
loses an alert. Crawl runs and failures older than the same horizon go too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, text

from alerts.outbox import OutboxState
from core.store import Store, articles, crawl_failures, crawl_runs, matches, outbox, utcnow

if TYPE_CHECKING:
    from datetime import datetime, timedelta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintenanceReport:
    articles: int
    crawl_runs: int
    crawl_failures: int
    vacuumed: bool


def run_maintenance(store: Store, keep: timedelta | None, *, now: datetime | None = None,
                    vacuum: bool = True) -> MaintenanceReport:
    now = now or utcnow()
    removed_articles = removed_runs = removed_failures = 0
    if keep is not None:
        cutoff = now - keep
        with store.begin() as conn:
            in_flight = select(outbox.c.article_id).where(
                outbox.c.state.in_((OutboxState.PENDING, OutboxState.SENDING)))
            old = select(articles.c.id).where(articles.c.first_seen < cutoff, articles.c.id.not_in(in_flight))
            # Explicit deletes of dependants: SQLite enforces cascades only with foreign_keys on,
            # and an explicit order is clear on every backend.
            conn.execute(delete(outbox).where(outbox.c.article_id.in_(old)))
            conn.execute(delete(matches).where(matches.c.article_id.in_(old)))
            removed_articles = conn.execute(delete(articles).where(articles.c.id.in_(old))).rowcount or 0
            removed_runs = conn.execute(
                delete(crawl_runs).where(crawl_runs.c.started_at < cutoff)).rowcount or 0
            removed_failures = conn.execute(
                delete(crawl_failures).where(crawl_failures.c.at < cutoff)).rowcount or 0
    vacuumed = False
    if vacuum and store.dialect == "sqlite":
        # VACUUM cannot run inside a transaction.
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM"))
        vacuumed = True
    report = MaintenanceReport(removed_articles, removed_runs, removed_failures, vacuumed)
    log.info("maintenance articles_removed=%d crawl_runs_removed=%d crawl_failures_removed=%d vacuum=%s",
             report.articles, report.crawl_runs, report.crawl_failures, report.vacuumed)
    return report
