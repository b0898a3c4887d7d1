"""The service (``lookout run``): one process, one asyncio loop, holding the database lock.

On that loop run an APScheduler 3 AsyncIOScheduler and, with a token, the Telegram bot and the
dispatcher (``lookout.delivery``), which connect in the background and retry while the Bot API is
unreachable: Telegram's faults never stop the crawls. A token Telegram rejects is a configuration
error: the service stops and ``run`` raises ``TokenRejected``. Crawls: ``lookout.crawlqueue``
hands each source to the long-lived crawl workers (``lookout.workers`` starts and watches them)
when it is due. Scheduled jobs: the rule-file watcher (a broken edit is refused, admins are told,
the old rules stay), the sources-file watcher (the schedule is rebuilt when it changes; a broken
edit is refused the same way), the metrics refresh, and daily maintenance. Workers crawl with the
accepted rules (their snapshot, ``lookout.snapshots``) and the accepted sources (each order
carries its source); the rules in force are recorded for ``lookout status``
(``lookout.status.write_rules_in_force``). A crawl that stored new articles wakes the
dispatcher, so new alerts go out within seconds.

SIGTERM / SIGINT: no new crawls start; running ones get a short grace, then the workers are killed; the
dispatcher finishes the message in flight (the outbox ledger covers a hard kill); the bot stops
polling; the lock is released.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from alerts.format import esc
from core.store import Store, utcnow
from crawler.state import CrawlResult
from lookout.botreports import StatusReports
from lookout.crawlqueue import CrawlQueue, mark_interrupted_runs
from lookout.delivery import RETRY_INITIAL, RETRY_MAX, DeliveryState, TelegramDelivery, TokenRejected
from lookout.loaders import example_rules_warning, gazetteer_for
from lookout.lock import ServiceLock
from lookout.maintenance import run_maintenance
from lookout.metrics import HttpEndpoint, Metrics
from lookout.snapshots import AcceptedRules, AcceptedSources, state_dir_for
from lookout.status import RulesInForce, write_rules_in_force
from lookout.worker import worker_command
from lookout.workerproto import RulesRef
from lookout.workers import CrawlDone, WorkerPool
from rules.reload import RuleWatcher

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from alerts.dispatcher import DispatchSummary
    from lookout.config import Config
    from rules.reload import ReloadResult

log = logging.getLogger(__name__)

SHUTDOWN_CRAWL_GRACE = 10.0  # seconds the running crawls get to finish on SIGTERM
SHOWN_ERRORS = 20  # errors of a refused edit quoted to the admins


@dataclass
class ServiceOptions:
    http: tuple[str, int] | None = None
    rules_poll: float = 3.0  # seconds between rule-file checks
    sources_poll: float = 5.0
    metrics_every: float = 5.0
    stagger: float = 1.0  # seconds between first crawls at start
    maintenance_cron: str = "30 3 * * *"  # daily, UTC
    dispatch_idle: float = 2.0  # dispatcher re-checks the outbox at least this often
    state_dir: Path | None = None  # rule and sources snapshots; default: ``snapshots.state_dir_for``
    telegram_retry: float = RETRY_INITIAL  # seconds before reconnecting to the Bot API; doubles ...
    telegram_retry_max: float = RETRY_MAX  # ... up to this
    telegram_first_wait: float = 5.0  # at most this long for the first connection before crawls start


@dataclass(frozen=True)
class Health:
    """How the service is, as ``/healthz`` shows it (``ok``: answered 200, else 503)."""

    ok: bool  # the scheduler runs and delivery runs (the bot connected, the dispatcher sending)
    scheduler: str  # running | stopped
    dispatcher: str  # running | stopped | retrying | connecting | rejected | disabled (no telegram token)
    delivery: str  # lookout.delivery.DeliveryState: running | retrying | connecting | rejected | disabled | stopped
    delivery_error: str | None  # why the last connection attempt failed (redacted), while not running
    seconds_since_tick: float  # since a watcher or refresh job last ran: a stuck loop shows here
    rules_version: str | None
    rule_errors: int  # errors of the last refused rule edit
    crawls_running: list[str]
    workers: list[dict[str, object]]  # each crawl worker: pid, crawls held, crawls done, RSS, retiring
    oldest_pending_seconds: float | None  # the oldest alert on its way (held ones left out); None: none
    chats_in_flood_wait: int  # chats Telegram told to wait (429) ...
    longest_flood_wait_seconds: float  # ... and the longest wait left

    def details(self) -> dict[str, object]:
        return {
            "status": "ok" if self.ok else "unhealthy",
            "scheduler": self.scheduler,
            "dispatcher": self.dispatcher,
            "delivery": self.delivery,
            "delivery_error": self.delivery_error,
            "seconds_since_tick": self.seconds_since_tick,
            "rules_version": self.rules_version,
            "rule_errors": self.rule_errors,
            "crawls_running": self.crawls_running,
            "workers": self.workers,
            "oldest_pending_seconds": self.oldest_pending_seconds,
            "chats_in_flood_wait": self.chats_in_flood_wait,
            "longest_flood_wait_seconds": self.longest_flood_wait_seconds,
        }


class Service:
    def __init__(self, config: Config, options: ServiceOptions | None = None, *,
                 command: Callable[[], list[str]] | None = None):
        self.config = config
        self.options = options or ServiceOptions()
        self._command_override = command
        self.store: Store | None = None
        self.lock: ServiceLock | None = None
        self.metrics = Metrics(max_backoff=config.crawl.max_backoff)
        self.stop_event: asyncio.Event | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.schedule: CrawlQueue | None = None
        self.workers: WorkerPool | None = None
        self._queue_task: asyncio.Task[None] | None = None
        self.state_dir = self.options.state_dir or state_dir_for(config)
        self.accepted_rules: AcceptedRules | None = None  # loaded at start
        self.accepted_sources = AcceptedSources(config, self.state_dir)
        self.delivery = TelegramDelivery(config.telegram, dispatch_idle=self.options.dispatch_idle,
                                         retry_initial=self.options.telegram_retry,
                                         retry_max=self.options.telegram_retry_max)
        self.http: HttpEndpoint | None = None
        self.failure: TokenRejected | None = None  # why the service stopped by itself
        self._rules_accepted_at: datetime | None = None
        self._last_tick = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------------

    def acquire_lock(self) -> None:
        """Take the database lock; raises ``LockHeld`` naming the holder. Call before ``run``."""
        self.store = Store(self.config.database_url())
        self.lock = ServiceLock(self.store)
        holder = self.lock.acquire()
        log.info("service lock taken pid=%d host=%s", holder.pid, holder.host)

    async def run(self) -> int:
        if self.lock is None:
            self.acquire_lock()
        assert self.store is not None
        loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self._start()
            log.info("service running sources=%d telegram=%s",
                     len(self.schedule.sources) if self.schedule else 0, self.delivery.state)
            if (warning := example_rules_warning(self.config)) is not None:
                log.warning(warning)
            if self.config.crawl.workers == 0:
                log.warning("crawl.workers is 0: this service crawls nothing; sources are scheduled but not polled")
            await self.stop_event.wait()
            log.info("service stopping")
        finally:
            await self._stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("service stopped")
        if self.failure is not None:
            raise self.failure
        return 0

    def _token_rejected(self, exc: TokenRejected) -> None:
        """Telegram refused the token while the service ran: a configuration error, stop."""
        log.error("%s: stopping the service", exc)
        self.failure = exc
        if self.stop_event is not None:
            self.stop_event.set()

    def _on_signal(self, sig: int) -> None:
        log.info("signal received signal=%s", signal.Signals(sig).name)
        assert self.stop_event is not None
        self.stop_event.set()

    async def _start(self) -> None:
        config, store = self.config, self.store
        assert store is not None
        # APScheduler logs every job run at INFO: our own lines already say what happened.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        closed = await asyncio.to_thread(mark_interrupted_runs, store, utcnow())
        if closed:
            log.warning("closed %d crawl run(s) left unfinished by a previous service", closed)
        # Errors in the rule or sources files at start are fatal (LocatedErrors): nothing to keep.
        gazetteer = await asyncio.to_thread(gazetteer_for, config)
        watcher = await asyncio.to_thread(RuleWatcher, config.rule_paths(), gazetteer=gazetteer)
        self.accepted_rules = rules = AcceptedRules(watcher, self.state_dir)
        await asyncio.to_thread(self._record_rules)
        initial_sources = self.accepted_sources.load()

        self.workers = WorkerPool(config.crawl.workers, self._worker_command, capacity=config.crawl.parallel,
                                  on_done=self._crawl_done,
                                  hang_after=max(60.0, 2 * config.crawl.download_timeout.total_seconds()))
        self.schedule = CrawlQueue(store, self.workers, max_backoff=config.crawl.max_backoff, rules=self._rules_ref,
                                   stagger=self.options.stagger, on_finished=self._crawl_finished)
        self.scheduler = AsyncIOScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        opts = self.options
        self.scheduler.add_job(self._watch_rules, IntervalTrigger(seconds=opts.rules_poll), id="rules-watch",
                               replace_existing=True, misfire_grace_time=30)
        if self.accepted_sources.from_file:
            self.scheduler.add_job(self._watch_sources, IntervalTrigger(seconds=opts.sources_poll),
                                   id="sources-watch", replace_existing=True, misfire_grace_time=30)
        self.scheduler.add_job(self._refresh_metrics_and_next_runs, IntervalTrigger(seconds=opts.metrics_every),
                               id="metrics", replace_existing=True, misfire_grace_time=30)
        daily = CronTrigger.from_crontab(opts.maintenance_cron, timezone="UTC")
        self.scheduler.add_job(self._maintenance, daily, id="maintenance", replace_existing=True,
                               misfire_grace_time=3600)
        # Read when scraped: a chat's flood wait starts and ends between two refreshes.
        self.metrics.flood_waits.set_function(lambda: len(self.delivery.flood_waits()))
        if opts.http is not None:  # before delivery starts: /healthz answers while it connects
            self.http = HttpEndpoint(self.metrics, self._healthz, *opts.http)
            await self.http.start()
        # Telegram first, in the background: a token rejected at once stops the start before any
        # crawl; an unreachable Bot API is retried while the crawls go on.
        await self.delivery.start(store, rules=lambda: rules.current, on_crawl=self._on_crawl_command,
                                  on_reload=self._on_reload_command, after_pass=self._after_dispatch,
                                  reports=StatusReports(self.config, store), on_rejected=self._token_rejected,
                                  first_wait=opts.telegram_first_wait)
        if self.delivery.rejected is not None:
            raise self.delivery.rejected
        self.scheduler.start()
        await asyncio.to_thread(self.schedule.apply, initial_sources)
        if initial_sources:  # no worker for a service with nothing to crawl (yet: see _watch_sources)
            await self.workers.start()
        self._queue_task = asyncio.create_task(self.schedule.run())
        await self._refresh_metrics_and_next_runs()

    async def _stop(self) -> None:
        # Pause, not shut down, first: shutting down the scheduler cancels the running job tasks
        # (the crawls) at once, which would deny them their grace.
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()
        if self.schedule is not None:
            self.schedule.stop()
        if self.workers is not None:
            await self.workers.stop(SHUTDOWN_CRAWL_GRACE)
        if self._queue_task is not None:
            await asyncio.gather(self._queue_task, return_exceptions=True)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.delivery.stop()
        if self.http is not None:
            await self.http.stop()
        if self.lock is not None:
            self.lock.release()
        if self.store is not None:
            self.store.dispose()

    # -- jobs ------------------------------------------------------------------------------------

    def _worker_command(self) -> list[str]:
        """A crawl worker's command line, on the accepted rules."""
        if self._command_override is not None:
            return self._command_override()
        origin = str(Path(self.config.origin).resolve()) if self.config.origin else None
        return worker_command(origin, self._rules_ref())

    def _rules_ref(self) -> RulesRef | None:
        """The accepted rules as workers load them (None before a snapshot exists)."""
        rules = self.accepted_rules
        if rules is None or not rules.paths:
            return None
        return RulesRef(version=rules.current.version, paths=tuple(rules.paths))

    async def _crawl_done(self, done: CrawlDone) -> None:
        assert self.schedule is not None
        await self.schedule.crawl_done(done)

    async def _crawl_finished(self, done: CrawlDone) -> None:
        # Thousands of unchanged polls an hour: those at DEBUG; what found something, or failed, at INFO and up.
        level = (logging.WARNING if done.result != CrawlResult.OK else logging.INFO if done.new else logging.DEBUG)
        log.log(level, "crawl finished source=%s result=%s seconds=%.1f outcome=%s", done.source, done.result,
                (done.finished_at - done.started_at).total_seconds(), done.outcome)
        self.metrics.count_crawl(done.result)
        if done.new or not done.recorded:
            self.delivery.wake()

    async def _after_dispatch(self, summary: DispatchSummary) -> None:
        if summary.sent or summary.failed:
            log.info("dispatch pass %s", " ".join(f"{f.name}={getattr(summary, f.name)}" for f in fields(summary)))
            await self._refresh_metrics_and_next_runs()

    async def _reload_rules(self) -> ReloadResult:
        """Every rule reload (the rule-file watcher, the bot's /reload): changed files are re-read,
        an accepted set is snapshotted for crawls, a refused one is counted and its errors kept."""
        assert self.accepted_rules is not None
        result = await asyncio.to_thread(self.accepted_rules.reload)
        if result.changed and not result.reloaded:
            self.metrics.rule_reloads_refused.inc()
        if result.changed:
            await asyncio.to_thread(self._record_rules, refused=not result.reloaded)
        return result

    def _record_rules(self, *, refused: bool = False) -> None:
        """The rules in force (and a refused edit's errors) where ``lookout status`` reads them."""
        rules = self.accepted_rules
        if rules is None:
            return
        now = utcnow()
        if not refused or self._rules_accepted_at is None:
            self._rules_accepted_at = now
        ruleset = rules.current
        record = RulesInForce(
            version=ruleset.version, rules=len(ruleset.rules), files=[str(f) for f in ruleset.files],
            accepted_at=self._rules_accepted_at, refused_at=now if refused else None,
            errors=list(rules.errors) if refused else [],
        )
        try:
            write_rules_in_force(self.state_dir, record)
        except OSError as exc:
            log.warning("could not record the rules in force for `lookout status`: %s", exc)

    async def _watch_rules(self) -> None:
        self._last_tick = time.monotonic()
        result = await self._reload_rules()
        if result.changed and not result.reloaded:
            assert self.accepted_rules is not None
            await self.delivery.tell_admins(
                "⚠️ Rule edit refused; the previous rules (version "
                f"{esc(result.version)}) stay in force:\n" + _quoted(self.accepted_rules.errors))

    async def _watch_sources(self) -> None:
        found = await asyncio.to_thread(self.accepted_sources.poll)
        if found.errors:
            await self.delivery.tell_admins("⚠️ Sources edit refused; the schedule stays as it was:\n"
                                            + _quoted(found.errors))
            return
        if found.accepted is None:
            return
        assert self.schedule is not None
        change = await asyncio.to_thread(self.schedule.apply, found.accepted)
        for name in change.removed:
            self.metrics.drop_source(name)
        if found.accepted and self.workers is not None:
            await self.workers.start()

    async def _refresh_metrics_and_next_runs(self) -> None:
        """The metrics job, also run after each dispatch pass that sent or failed something: the
        store-derived metrics brought up to date."""
        self._last_tick = time.monotonic()
        try:
            assert self.store is not None
            current = self.schedule.sources if self.schedule else {}
            intervals = {name: source.every for name, source in current.items()}
            await asyncio.to_thread(self.metrics.refresh, self.store, list(current), intervals=intervals)
        except Exception:
            log.exception("metrics refresh failed")

    async def _maintenance(self) -> None:
        try:
            assert self.store is not None
            await asyncio.to_thread(run_maintenance, self.store, self.config.keep_articles)
        except Exception:
            log.exception("maintenance failed")

    # -- bot callbacks ---------------------------------------------------------------------------

    async def _on_crawl_command(self, name: str) -> str:
        assert self.schedule is not None
        if self.schedule.run_now(name):
            return f"Crawl of {name} starts now."
        known = ", ".join(sorted(self.schedule.sources)) or "none"
        return f"Unknown source {name!r}; known: {known}."

    async def _on_reload_command(self) -> str:
        result = await self._reload_rules()
        if result.reloaded:
            return f"Rules reloaded: version {result.version}."
        if result.errors:
            assert self.accepted_rules is not None
            return ("Rule edit refused; version " + result.version + " stays in force:\n"
                    + "\n".join(self.accepted_rules.errors[:SHOWN_ERRORS]))
        return f"Rules unchanged (version {result.version})."

    # -- health ----------------------------------------------------------------------------------

    def health(self) -> Health:
        scheduler_ok = self.scheduler is not None and self.scheduler.running
        dispatcher, dispatcher_ok = self.delivery.dispatcher_state()
        delivery = self.delivery.state
        lag = time.monotonic() - self._last_tick
        loop_ok = lag < max(60.0, 5 * self.options.metrics_every)
        rules = self.accepted_rules
        floods = self.delivery.flood_waits()
        oldest = self.metrics.oldest_pending_seconds
        return Health(
            ok=scheduler_ok and dispatcher_ok and delivery is DeliveryState.RUNNING and loop_ok,
            scheduler="running" if scheduler_ok else "stopped",
            dispatcher=dispatcher,
            delivery=str(delivery),
            delivery_error=self.delivery.last_error if delivery is not DeliveryState.RUNNING else None,
            seconds_since_tick=round(lag, 1),
            rules_version=rules.current.version if rules is not None else None,
            rule_errors=len(rules.errors) if rules is not None else 0,
            crawls_running=self.schedule.running if self.schedule else [],
            workers=self.workers.describe() if self.workers else [],
            oldest_pending_seconds=None if oldest is None else round(oldest, 1),
            chats_in_flood_wait=len(floods),
            longest_flood_wait_seconds=round(max(floods.values(), default=0.0), 1),
        )

    def _healthz(self) -> tuple[bool, dict[str, object]]:
        health = self.health()
        return health.ok, health.details()


def _quoted(errors: Sequence[str]) -> str:
    """The first errors of a refused edit, one ``<code>`` line each, for the admins."""
    return "\n".join(f"<code>{esc(e)}</code>" for e in errors[:SHOWN_ERRORS])
