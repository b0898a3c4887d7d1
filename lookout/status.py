"""What ``lookout status`` reports: sources (a failing one's backoff too: ``lookout.pollbackoff``),
outbox, subscribers, rules, latency, and whether a service holds the database. Read-only
queries over the store plus the rule and sources files; typed dataclasses, rendered as text or
JSON. The bot token never appears: only whether delivery is configured. Nothing is created:
without a database the counts are empty.

The rules shown are the ones in force: while a service runs, those it accepted (it records them
in its state directory, ``write_rules_in_force``), with a refused edit on disk shown apart with
its errors; without a service, the files on disk.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from sqlalchemy import Integer, case, func, select

from alerts.outbox import OutboxState
from core.durations import format_duration
from core.located import LocatedErrors
from core.store import Store, articles, chats, crawl_runs, outbox, redact_url, sources, subscriptions, utcnow
from crawler.state import CrawlResult
from lookout.loaders import sources_from_config
from lookout.lock import service_holder
from lookout.pollbackoff import backing_off, failing_text, poll_interval
from lookout.snapshots import state_dir_for
from rules import load_ruleset

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from sqlalchemy import ColumnElement, Row
    from sqlalchemy.engine import Connection

    from crawler.sources import Source
    from lookout.config import Config

DAY = timedelta(hours=24)
NO_DATABASE = "no database yet"  # what ``database`` says when there is none
RULES_IN_FORCE_FILE = "rules-in-force.json"  # in the service's state directory


@dataclass
class SourceStatus:
    name: str
    kind: str | None
    url: str | None
    every_seconds: float | None  # None: in the store but no longer in the sources file
    last_run: datetime | None
    last_result: str | None
    last_success: datetime | None
    next_run: datetime | None
    articles_24h: int
    last_error: str | None
    staleness_seconds: float | None  # since the last successful crawl
    stale: bool  # no success for two intervals and a crawl timeout; or empty for crawl.stale_after
    empty_since: datetime | None = None  # the index has listed nothing in every crawl since
    failures_in_row: int = 0  # failed crawls since the last that read the index (lookout.pollbackoff)
    poll_every_seconds: float | None = None  # polled this far apart now: every, or longer while backing off
    backing_off: bool = False  # polled less often than every because it keeps failing
    failing: str | None = None  # "backing off: 3 failures in a row, next poll 14:05 UTC (every 8m instead of 1m)"


@dataclass
class OutboxStatus:
    pending: int
    held: int  # pending, waiting for quiet hours or a digest
    sending: int
    failed: int
    cancelled: int
    sent_24h: int
    sent_total: int


@dataclass
class SubscriberStatus:
    chats: int  # chats with at least one subscription
    paused_chats: int
    subscriptions: int


@dataclass
class RulesStatus:
    """The rules in force: the running service's (``in_force``), else the files on disk."""

    files: list[str]
    version: str | None
    rules: int
    errors: list[str]  # the rule files on disk do not load: a refused edit while a service runs
    in_force: bool = False  # version, rules and files are what the running service uses
    accepted_at: datetime | None = None  # when the service accepted them
    refused_at: datetime | None = None  # when the service refused the edit on disk
    on_disk_version: str | None = None  # valid files on disk the service has not taken up yet


@dataclass
class LatencyStatus:
    """Seconds from the crawler first seeing an article to its Telegram message (alerts sent in
    the last 24 h), and from the article's own publication time where it has a usable one."""

    samples: int
    p50: float | None
    p95: float | None
    max: float | None
    published_samples: int = 0
    published_p50: float | None = None
    published_p95: float | None = None


@dataclass
class StatusReport:
    generated_at: datetime
    service: str | None  # who runs the service now, or None
    telegram: bool  # a token is configured (never the token itself)
    database: str
    sources: list[SourceStatus] = field(default_factory=list)
    sources_errors: list[str] = field(default_factory=list)
    outbox: OutboxStatus | None = None
    subscribers: SubscriberStatus | None = None
    rules: RulesStatus | None = None
    latency: LatencyStatus | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence, else None."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def stale_after(every: timedelta, timeout: timedelta) -> timedelta:
    """A source is stale when it has not succeeded for two intervals plus a crawl's timeout."""
    return 2 * every + timeout


def gather_status(
    config: Config,
    store: Store | None,
    *,
    now: datetime | None = None,
    configured_sources: Sequence[Source] | None = None,
    load_rules: bool = True,
    service: str | None = None,
) -> StatusReport:
    """The report. ``store`` None: there is no database yet (no service ever ran): the sources
    and rules are shown with empty counts, and nothing is created."""
    now = now or utcnow()
    database = redact_url(config.database_url())
    report = StatusReport(
        generated_at=now,
        service=service if service is not None else (service_holder(store) if store is not None else None),
        telegram=config.telegram.token is not None,
        database=database if store is not None else f"{database} ({NO_DATABASE})",
    )
    if configured_sources is None:
        configured_sources, report.sources_errors = _configured_sources(config)
    # Without a database the same queries run over empty tables in memory.
    queried = store if store is not None else Store("sqlite:///:memory:")
    try:
        with queried.connect() as conn:
            report.sources = _sources(conn, configured_sources, config, now)
            report.outbox = _outbox(conn, now)
            report.subscribers = _subscribers(conn)
            report.latency = _latency(conn, now)
    finally:
        if queried is not store:
            queried.dispose()
    if load_rules:
        report.rules = rules_status(config, service_running=report.service is not None)
    return report


def _configured_sources(config: Config) -> tuple[list[Source], list[str]]:
    try:
        return list(sources_from_config(config)), []
    except LocatedErrors as exc:
        return [], [str(e) for e in exc.errors]


def _sources(conn: Connection, configured: Sequence[Source], config: Config, now: datetime) -> list[SourceStatus]:
    rows = {r.name: r for r in conn.execute(select(sources))}
    since = now - DAY
    counts: dict[str, int] = dict(
        conn.execute(
            select(articles.c.source, func.count()).where(articles.c.first_seen >= since)
            .group_by(articles.c.source)
        ).all()
    )
    # The newest finished run per source: its result is what the operator wants to see.
    latest_runs: dict[str, Row[Any]] = {}
    empty_since: dict[str, datetime] = {}  # the first run of each source's current streak of empty runs
    for r in conn.execute(
        select(crawl_runs).where(crawl_runs.c.finished_at.is_not(None)).order_by(crawl_runs.c.id)
    ):
        latest_runs[r.source] = r
        if r.result == CrawlResult.EMPTY:
            empty_since.setdefault(r.source, _aware(r.started_at))
        else:
            empty_since.pop(r.source, None)
    successes = dict(
        conn.execute(
            select(crawl_runs.c.source, func.max(crawl_runs.c.finished_at))
            .where(crawl_runs.c.result.in_((CrawlResult.OK, CrawlResult.PARTIAL))).group_by(crawl_runs.c.source)
        ).all()
    )
    out: list[SourceStatus] = []
    names = [s.name for s in configured] + sorted(set(rows) - {s.name for s in configured})
    by_name = {s.name: s for s in configured}
    for name in names:
        src = by_name.get(name)
        row = rows.get(name)
        run = latest_runs.get(name)
        last_success = _latest(getattr(row, "last_success_at", None), _aware(successes.get(name)))
        last_run = _latest(getattr(row, "last_crawl_at", None), _aware(run.finished_at) if run else None)
        row_run_at = getattr(row, "last_crawl_at", None)
        if run is not None and (row_run_at is None or _aware(run.finished_at) >= row_run_at):
            last_result, last_error = run.result, run.error
        else:
            last_result = getattr(row, "last_result", None)
            last_error = getattr(row, "last_error", None)
        if last_error is None and row is not None and last_result not in (CrawlResult.OK, None):
            last_error = row.last_error
        staleness = (now - last_success).total_seconds() if last_success else None
        stale = False
        empty_from = (empty_since.get(name) or last_run) if last_result == CrawlResult.EMPTY else None
        if src is not None and empty_from is not None:  # read, but listing nothing: stale after a while
            stale = now - empty_from > config.crawl.stale_after
        elif src is not None:
            limit = stale_after(src.every, config.crawl.timeout)
            stale = (staleness is None and last_run is not None) or (
                staleness is not None and staleness > limit.total_seconds())
        failures = getattr(row, "failures_in_row", None) or 0  # NULL: none
        max_backoff = config.crawl.max_backoff
        next_run = getattr(row, "next_run_at", None) if src is not None else None
        out.append(SourceStatus(
            name=name,
            kind=src.kind if src is not None else getattr(row, "kind", None),
            url=src.url if src is not None else getattr(row, "url", None),
            every_seconds=src.every.total_seconds() if src is not None else None,
            last_run=last_run,
            last_result=last_result,
            last_success=last_success,
            next_run=next_run,
            articles_24h=int(counts.get(name, 0)),
            last_error=last_error,
            staleness_seconds=round(staleness, 1) if staleness is not None else None,
            stale=stale,
            empty_since=empty_from,
            failures_in_row=failures,
            poll_every_seconds=(
                poll_interval(src.every, failures, max_backoff).total_seconds() if src is not None else None),
            backing_off=src is not None and backing_off(src.every, failures, max_backoff),
            failing=failing_text(src.every, failures, max_backoff, next_run, now) if src is not None else None,
        ))
    return out


@overload
def _aware(value: datetime) -> datetime: ...
@overload
def _aware(value: datetime | None) -> datetime | None: ...
def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _latest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _outbox(conn: Connection, now: datetime) -> OutboxStatus:
    by_state: dict[str, int] = {}
    held = 0
    has_held = "held" in outbox.c
    cols = [outbox.c.state, func.count()]
    if has_held:
        cols.append(func.sum(_as_int(outbox.c.held)))
    for row in conn.execute(select(*cols).group_by(outbox.c.state)):
        by_state[row[0]] = int(row[1])
        if has_held and row[0] == OutboxState.PENDING:
            held = int(row[2] or 0)
    sent_24h = conn.execute(
        select(func.count()).where(outbox.c.state == OutboxState.SENT, outbox.c.sent_at >= now - DAY)
    ).scalar_one()
    return OutboxStatus(
        pending=by_state.get(OutboxState.PENDING, 0), held=held, sending=by_state.get(OutboxState.SENDING, 0),
        failed=by_state.get(OutboxState.FAILED, 0), cancelled=by_state.get(OutboxState.CANCELLED, 0),
        sent_24h=int(sent_24h), sent_total=by_state.get(OutboxState.SENT, 0),
    )


def _as_int(column: ColumnElement[bool]) -> ColumnElement[int]:
    return case((column.is_(True), 1), else_=0).cast(Integer)


def _subscribers(conn: Connection) -> SubscriberStatus:
    with_subs = conn.execute(select(func.count(func.distinct(subscriptions.c.chat_id)))).scalar_one()
    paused = conn.execute(select(func.count()).where(chats.c.paused.is_(True))).scalar_one()
    total = conn.execute(select(func.count()).select_from(subscriptions)).scalar_one()
    return SubscriberStatus(chats=int(with_subs), paused_chats=int(paused), subscriptions=int(total))


def latency_samples(conn: Connection, since: datetime) -> tuple[list[float], list[float]]:
    """(first seen → sent, published → sent) in seconds for alerts sent since ``since``.

    Published times are used only when plausible (not after first sight, at most a day before):
    feeds that stamp old or future dates would otherwise swamp the figure."""
    rows = conn.execute(
        select(outbox.c.first_seen_at, outbox.c.sent_at, articles.c.published)
        .select_from(outbox.join(articles, articles.c.id == outbox.c.article_id))
        .where(outbox.c.state == OutboxState.SENT, outbox.c.sent_at >= since, outbox.c.first_seen_at.is_not(None))
    ).all()
    seen: list[float] = []
    published: list[float] = []
    for first_seen, sent, pub in rows:
        first_seen, sent, pub = _aware(first_seen), _aware(sent), _aware(pub)
        seen.append(max(0.0, (sent - first_seen).total_seconds()))
        if pub is not None and pub <= first_seen and first_seen - pub <= DAY:
            published.append((sent - pub).total_seconds())
    return seen, published


def _latency(conn: Connection, now: datetime) -> LatencyStatus:
    seen, published = latency_samples(conn, now - DAY)
    return LatencyStatus(
        samples=len(seen),
        p50=_round(percentile(seen, 50)), p95=_round(percentile(seen, 95)),
        max=_round(max(seen) if seen else None),
        published_samples=len(published),
        published_p50=_round(percentile(published, 50)), published_p95=_round(percentile(published, 95)),
    )


def _round(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


def rules_status(config: Config, *, service_running: bool = False) -> RulesStatus:
    """The rules in force. While a service runs: the rules it accepted (its record in the state
    directory), and the files on disk apart when they differ (their errors: an edit it refused).
    Otherwise the rules on disk as a service would load them: files, version, or every error."""
    on_disk = _rules_on_disk(config)
    record = read_rules_in_force(state_dir_for(config)) if service_running else None
    if record is None:
        return on_disk
    return RulesStatus(
        files=record.files, version=record.version, rules=record.rules, errors=on_disk.errors,
        in_force=True, accepted_at=record.accepted_at,
        refused_at=record.refused_at if on_disk.errors else None,
        on_disk_version=on_disk.version if on_disk.version != record.version else None,
    )


def _rules_on_disk(config: Config) -> RulesStatus:
    paths = [str(p) for p in config.rule_paths()]
    try:
        ruleset = load_ruleset(config.rule_paths())
    except LocatedErrors as exc:
        return RulesStatus(files=paths, version=None, rules=0, errors=[str(e) for e in exc.errors])
    except Exception as exc:  # a bug in a loader must not hide the rest of the status
        return RulesStatus(files=paths, version=None, rules=0, errors=[f"{type(exc).__name__}: {exc}"])
    return RulesStatus(
        files=[str(f) for f in ruleset.files], version=ruleset.version,
        rules=len(ruleset.rules), errors=[],
    )


# -- the rules in force: the service's record ---------------------------------------------------


@dataclass(frozen=True)
class RulesInForce:
    """What the service runs, written by it on every accepted or refused rule edit."""

    version: str
    rules: int
    files: list[str]
    accepted_at: datetime
    refused_at: datetime | None = None  # the last refused edit, since the accepted one
    errors: list[str] = field(default_factory=list)  # why it was refused


def write_rules_in_force(state_dir: Path, record: RulesInForce) -> None:
    """Replace the record atomically: a ``lookout status`` reading it never sees half a file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / RULES_IN_FORCE_FILE
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_jsonable(asdict(record)), indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def read_rules_in_force(state_dir: Path) -> RulesInForce | None:
    """The service's record, or None (none yet, or unreadable)."""
    try:
        data = json.loads((state_dir / RULES_IN_FORCE_FILE).read_text(encoding="utf-8"))
        refused = data.get("refused_at")
        return RulesInForce(
            version=str(data["version"]), rules=int(data["rules"]), files=[str(f) for f in data["files"]],
            accepted_at=datetime.fromisoformat(data["accepted_at"]),
            refused_at=datetime.fromisoformat(refused) if refused else None,
            errors=[str(e) for e in data.get("errors") or []],
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


# -- text ------------------------------------------------------------------------------------


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    delta = now - value
    if delta.total_seconds() < 0:
        return "in " + format_duration(-delta)
    return format_duration(delta) + " ago"


def _rules_lines(r: RulesStatus, now: datetime) -> list[str]:
    version = (r.version or "-")[:12]
    if not r.in_force:  # no service runs: what one would load
        return [f"rules:     on disk: {r.rules} rules, version {version}, {len(r.files)} file(s)",
                *(f"  ! {e}" for e in r.errors)]
    lines = [f"rules:     in force: {r.rules} rules, version {version}, {len(r.files)} file(s), "
             f"accepted {_ago(r.accepted_at, now)}"]
    if r.errors:
        refused = f", refused {_ago(r.refused_at, now)}" if r.refused_at else ""
        lines.append(f"           refused edit on disk{refused}: {len(r.errors)} error(s); "
                     "the rules above stay in force")
        lines += [f"  ! {e}" for e in r.errors]
    elif r.on_disk_version:
        lines.append(f"           on disk: version {r.on_disk_version[:12]}, not taken up yet")
    return lines


def render_text(report: StatusReport) -> str:
    now = report.generated_at
    lines = [
        f"service:   {report.service or 'not running'}",
        f"database:  {report.database}",
        f"telegram:  {'configured' if report.telegram else 'no token: delivery disabled'}",
        "",
        "sources:",
    ]
    if report.sources_errors:
        lines += [f"  ! {e}" for e in report.sources_errors]
    if not report.sources:
        lines.append("  (none)")
    for s in report.sources:
        flag = " STALE" if s.stale else ""
        if s.stale and s.empty_since is not None:
            flag += f" (empty for {format_duration(now - s.empty_since)})"
        every = format_duration(timedelta(seconds=s.every_seconds)) if s.every_seconds else "not configured"
        lines.append(
            f"  {s.name:<20} every {every:<6} last {_ago(s.last_run, now):<10} "
            f"{s.last_result or '-':<8} next {_ago(s.next_run, now) if s.next_run else '-':<10} "
            f"24h {s.articles_24h:>4} articles{flag}"
        )
        if s.last_error and s.last_result != CrawlResult.OK:
            lines.append(f"  {'':<20} last error: {s.last_error}")
        if s.failing:
            lines.append(f"  {'':<20} {s.failing}")
    o = report.outbox
    if o is not None:
        lines += ["", f"outbox:    {o.pending} pending ({o.held} held), {o.sending} sending, "
                      f"{o.failed} failed, {o.cancelled} cancelled, {o.sent_24h} sent in 24h"]
    sub = report.subscribers
    if sub is not None:
        lines.append(f"subscribers: {sub.chats} chats ({sub.paused_chats} paused), "
                     f"{sub.subscriptions} subscriptions")
    r = report.rules
    if r is not None:
        lines += _rules_lines(r, now)
    lat = report.latency
    if lat is not None:
        if lat.samples:
            text = f"latency:   first seen → sent p50 {lat.p50:.1f}s p95 {lat.p95:.1f}s max {lat.max:.1f}s " \
                   f"({lat.samples} alerts, 24h)"
            if lat.published_samples:
                text += f"; published → sent p50 {lat.published_p50:.1f}s p95 {lat.published_p95:.1f}s"
            lines.append(text)
        else:
            lines.append("latency:   no alerts sent in 24h")
    return "\n".join(lines)
