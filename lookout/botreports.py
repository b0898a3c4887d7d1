"""The bot's ``/status`` and ``/sources`` (``alerts.admincommands.AdminReports``): the status
report of ``lookout status`` (``lookout.status.gather_status``) as Telegram HTML for the admin
chats, every piece escaped and the whole within ``alerts.format.REPLY_BUDGET``.

The status report does not list crawl failures by URL: the last few are read here from
``crawl_failures`` (until ``lookout.status`` reports them), failed alerts through
``alerts.outbox.list_rows``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from alerts import outbox as ob
from alerts.format import clip_reply, esc
from alerts.outbox import OutboxState
from core.store import crawl_failures
from crawler.state import CrawlResult
from lookout.status import gather_status

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from core.store import Store
    from lookout.config import Config
    from lookout.status import SourceStatus, StatusReport

PROBLEM_RESULTS = (CrawlResult.FAILED, CrawlResult.TIMEOUT, CrawlResult.PARTIAL)
SHOWN_PROBLEMS = 10  # failing sources listed by name
SHOWN_FAILURES = 5  # crawl failures by URL
SHOWN_FAILED_ALERTS = 3


@dataclass(frozen=True)
class CrawlFailure:
    """One page a crawl could not store (a ``crawl_failures`` row)."""

    at: datetime
    source: str
    reason: str  # http-404, timeout, too-large, robots, ...
    url: str


@dataclass(frozen=True)
class FailedAlert:
    chat_id: str
    error: str


class StatusReports:
    """``AdminReports`` for the service's bot: each call gathers a fresh status report."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store

    def status_html(self) -> str:
        report = gather_status(self.config, self.store, load_rules=False)
        with self.store.connect() as conn:
            rows = conn.execute(
                select(crawl_failures.c.at, crawl_failures.c.source, crawl_failures.c.reason, crawl_failures.c.url)
                .order_by(crawl_failures.c.at.desc()).limit(SHOWN_FAILURES)
            ).all()
            failed = ob.list_rows(conn, states=[OutboxState.FAILED], limit=SHOWN_FAILED_ALERTS)
        failures = [CrawlFailure(r.at, r.source, r.reason, r.url) for r in rows]
        return render_status(report, failures, [FailedAlert(r.chat_id, r.last_error or "") for r in failed])

    def sources_html(self) -> str:
        return render_sources(gather_status(self.config, self.store, load_rules=False))


def has_problem(source: SourceStatus) -> bool:
    return source.stale or source.last_result in PROBLEM_RESULTS


def render_status(
    report: StatusReport, failures: Sequence[CrawlFailure] = (), failed_alerts: Sequence[FailedAlert] = (),
) -> str:
    lines = ["<b>Lookout status</b>"]
    o = report.outbox
    if o is not None:
        lines.append(f"Queue: {o.pending} pending ({o.held} held), {o.sending} sending, {o.failed} failed, "
                     f"{o.cancelled} cancelled, {o.sent_total} sent ({o.sent_24h} in 24 h)")
    problems = [s for s in report.sources if has_problem(s)]
    lines.append(f"Sources: {len(report.sources)}, {len(problems)} with problems")
    lines.extend(f"⚠️ {esc(error)}" for error in report.sources_errors)
    for s in problems[:SHOWN_PROBLEMS]:
        stale = " (stale)" if s.stale else ""
        lines.append(f"• {esc(s.name)}: {esc(s.last_result or 'never crawled')} "
                     f"{esc((s.last_error or '')[:200])}{stale}")
    sub = report.subscribers
    if sub is not None:
        lines.append(f"Subscribers: {sub.chats} chats ({sub.paused_chats} paused), "
                     f"{sub.subscriptions} subscriptions")
    lat = report.latency
    if lat is not None and lat.samples:
        lines.append(f"Latency, first seen → sent: p50 {lat.p50:.1f} s, p95 {lat.p95:.1f} s "
                     f"({lat.samples} alerts in 24 h)")
    if failures:
        lines.append("<b>Last errors</b>")
        lines.extend(f"• {f.at:%m-%d %H:%M} {esc(f.source)} {esc(f.reason)} {esc(f.url[:120])}" for f in failures)
    lines.extend(f"• alert to {esc(a.chat_id)}: {esc(a.error[:200])}" for a in failed_alerts)
    return clip_reply("\n".join(lines))


def render_sources(report: StatusReport) -> str:
    if not report.sources and not report.sources_errors:
        return "No sources configured or crawled yet."
    lines = ["<b>Sources</b>"]
    lines.extend(f"⚠️ {esc(error)}" for error in report.sources_errors)
    for s in report.sources:
        last = f"{s.last_run:%m-%d %H:%M}" if s.last_run else "never"
        stale = " · stale" if s.stale else ""
        lines.append(f"• <code>{esc(s.name)}</code> {esc(s.kind or '-')} · last {last} · "
                     f"{esc(s.last_result or '-')}{stale}")
    return clip_reply("\n".join(lines))
