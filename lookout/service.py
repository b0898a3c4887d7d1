"""The service (``lookout run``): one process, one asyncio loop, holding the database lock.

On that loop run python-telegram-bot's Application (the bot), an APScheduler 3 AsyncIOScheduler
and the dispatcher. Scheduled jobs: each source's crawl (a subprocess, see ``lookout.crawljobs``),
the rule-file watcher (a broken edit is refused, admins are told, the old rules stay), the
sources-file watcher (the schedule is rebuilt when it changes), metrics refresh, and daily
maintenance. After each crawl the dispatcher is poked so new alerts go out within seconds.

Crawl subprocesses read the rules and sources from snapshots of the files the service last
accepted, never from the files on disk directly: a broken edit must not reach a crawl while the old
rules and schedule stay.

SIGTERM / SIGINT: no new crawls start; running ones get a short grace then are killed; the
dispatcher finishes the message in flight (the outbox ledger covers a hard kill); the bot stops
polling; the lock is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import logging
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import update

from core.store import Store, sources, utcnow
from crawler.state import upsert_source
from lookout.crawljobs import CrawlJobs, CrawlOutcome, crawl_command, mark_interrupted_runs
from lookout.lock import ServiceLock
from lookout.metrics import HttpEndpoint, Metrics
from lookout.scheduler import CrawlSchedule

if TYPE_CHECKING:
    from collections.abc import Callable

    from lookout.config import Config

log = logging.getLogger(__name__)

SHUTDOWN_CRAWL_GRACE = 10.0  # seconds a running crawl gets to finish on SIGTERM
DISPATCHER_STOP_TIMEOUT = 30.0
TELEGRAM_TEXT_LIMIT = 4000


@dataclass
class ServiceOptions:
    http: tuple[str, int] | None = None
    rules_poll: float = 3.0  # seconds between rule-file checks
    sources_poll: float = 5.0
    metrics_every: float = 5.0
    stagger: float = 1.0  # seconds between first crawls at start
    maintenance_cron: str = "30 3 * * *"  # daily, UTC
    dispatch_idle: float = 2.0  # dispatcher re-checks the outbox at least this often
    state_dir: Path | None = None  # rule snapshots; default: next to the database / config


class Service:
    def __init__(self, config: Config, options: ServiceOptions | None = None, *,
                 command: Callable[[str], list[str]] | None = None):
        self.config = config
        self.options = options or ServiceOptions()
        self._command_override = command
        self.store: Store | None = None
        self.lock: ServiceLock | None = None
        self.metrics = Metrics()
        self.stop_event: asyncio.Event | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.schedule: CrawlSchedule | None = None
        self.crawls: CrawlJobs | None = None
        self.watcher: Any = None  # rules.reload.RuleWatcher
        self.app: Any = None  # telegram.ext.Application when a token is set
        self.dispatcher: Any = None
        self.dispatch_task: asyncio.Task | None = None
        self.http: HttpEndpoint | None = None
        self.rule_snapshot: list[str] = []
        self.sources_snapshot: str | None = None
        self.rule_errors: list[str] = []
        self._sources_fingerprint: str | None = None
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
                     len(self.schedule.sources) if self.schedule else 0,
                     "on" if self.app is not None else "off")
            await self.stop_event.wait()
            log.info("service stopping")
        finally:
            await self._stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("service stopped")
        return 0

    def _on_signal(self, sig: int) -> None:
        log.info("signal received signal=%s", signal.Signals(sig).name)
        assert self.stop_event is not None
        self.stop_event.set()

    async def _start(self) -> None:
        from lookout.loaders import sources_from_config
        from rules.reload import RuleWatcher

        config, store = self.config, self.store
        assert store is not None
        # APScheduler logs every job run at INFO: our own lines already say what happened.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        closed = await asyncio.to_thread(mark_interrupted_runs, store, utcnow())
        if closed:
            log.warning("closed %d crawl run(s) left unfinished by a previous service", closed)
        # Errors in the rule or sources files at start are fatal (LocatedErrors): nothing to keep.
        from lookout.loaders import gazetteer_for

        gazetteer = await asyncio.to_thread(gazetteer_for, config)
        self.watcher = await asyncio.to_thread(lambda: RuleWatcher(config.rule_paths(), gazetteer=gazetteer))
        self._snapshot_rules()
        data = self._read_sources()
        initial_sources = sources_from_config(config)
        self._sources_fingerprint = _sha(data)
        self._snapshot_sources(data, initial_sources)

        self.crawls = CrawlJobs(
            store, command=self._command, parallel=config.crawl.parallel, timeout=config.crawl.timeout,
            on_finished=self._crawl_finished, source_info=self._source_info,
        )
        self.scheduler = AsyncIOScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        self.schedule = CrawlSchedule(self.scheduler, self.crawls.run, stagger=self.options.stagger)
        opts = self.options
        self.scheduler.add_job(self._poll_rules, IntervalTrigger(seconds=opts.rules_poll), id="rules-watch",
                               replace_existing=True, misfire_grace_time=30)
        if isinstance(config.sources, str):
            self.scheduler.add_job(self._poll_sources, IntervalTrigger(seconds=opts.sources_poll),
                                   id="sources-watch", replace_existing=True, misfire_grace_time=30)
        self.scheduler.add_job(self._refresh, IntervalTrigger(seconds=opts.metrics_every), id="metrics",
                               replace_existing=True, misfire_grace_time=30)
        daily = CronTrigger.from_crontab(opts.maintenance_cron, timezone="UTC")
        self.scheduler.add_job(self._maintenance, daily, id="maintenance", replace_existing=True,
                               misfire_grace_time=3600)
        self.scheduler.start()
        self.schedule.apply(initial_sources)
        await asyncio.to_thread(self._sync_sources_table)

        await self._start_telegram()
        if opts.http is not None:
            self.http = HttpEndpoint(self.metrics, self.health, *opts.http)
            await self.http.start()
        await self._refresh()

    async def _stop(self) -> None:
        # Pause, not shut down, first: shutting down the scheduler cancels the running job tasks
        # (the crawls) at once, which would deny them their grace.
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()
        if self.crawls is not None:
            await self.crawls.stop(SHUTDOWN_CRAWL_GRACE)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.dispatch_task is not None:
            self._stop_dispatcher()
            try:
                await asyncio.wait_for(self.dispatch_task, timeout=DISPATCHER_STOP_TIMEOUT)
            except (TimeoutError, asyncio.CancelledError):
                # In-flight rows stay in "sending": the next start resends them (at most one duplicate).
                log.warning("dispatcher did not stop in %.0fs; cancelled", DISPATCHER_STOP_TIMEOUT)
            except Exception:
                log.exception("dispatcher failed while stopping")
        if self.sender is not None:
            with contextlib.suppress(Exception):
                await self.sender.close()
        if self.app is not None:
            from alerts.bot import stop_bot

            try:
                await stop_bot(self.app)
            except Exception:
                log.exception("bot did not stop cleanly")
        if self.http is not None:
            await self.http.stop()
        if self.lock is not None:
            self.lock.release()
        if self.store is not None:
            self.store.dispose()

    # -- telegram --------------------------------------------------------------------------------

    sender: Any = None
    _dispatch_stop: asyncio.Event | None = None

    async def _start_telegram(self) -> None:
        config = self.config
        if config.telegram.token is None:
            log.warning(
                "telegram delivery disabled: no telegram.token (set TELEGRAM_BOT_TOKEN); crawling and "
                "matching go on and alerts wait in the outbox until the service runs with a token")
            return
        from alerts.bot import build_application, start_bot
        from alerts.dispatcher import Dispatcher
        from alerts.telegram import PTBSender

        assert self.store is not None
        self.app = build_application(config.telegram, self.store, lambda: self.watcher.current,
                                     on_crawl=self._on_crawl_command, on_reload=self._on_reload_command)
        await start_bot(self.app, config.telegram)
        self.sender = PTBSender(config.telegram.token.get_secret_value(), config.telegram.api_url)
        self.dispatcher = Dispatcher(self.store, self.sender, config.telegram)
        self._dispatch_stop = asyncio.Event()
        # Woken at once by a finished crawl (poke_dispatcher), else when the next held or retried
        # row is due, else every dispatch_idle seconds.
        self.dispatch_task = asyncio.create_task(
            self.dispatcher.run_forever(self._dispatch_stop, poll=self.options.dispatch_idle,
                                        on_pass=self._after_dispatch),
            name="dispatcher",
        )

    async def _after_dispatch(self, summary) -> None:
        if summary.sent or summary.failed:
            log.info("dispatch pass %s", _fields(summary))
            await self._refresh()

    def _stop_dispatcher(self) -> None:
        if self._dispatch_stop is not None:
            self._dispatch_stop.set()

    def poke_dispatcher(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    async def tell_admins(self, text: str) -> None:
        if self.app is None or not self.config.telegram.admins:
            return
        body = text
        if len(body) > TELEGRAM_TEXT_LIMIT:
            # Cut at a line end: each line is whole HTML, a cut inside a tag or entity makes
            # Telegram refuse the message and the admins would hear nothing.
            cut = body.rfind("\n", 0, TELEGRAM_TEXT_LIMIT - 2)
            body = body[: cut if cut > 0 else 0] + "\n…"
        for admin in self.config.telegram.admins:
            try:
                await self.app.bot.send_message(chat_id=admin, text=body)
            except Exception as exc:
                log.warning("could not tell admin chat=%s: %s", admin, exc)

    # -- jobs ------------------------------------------------------------------------------------

    def _command(self, source: str) -> list[str]:
        if self._command_override is not None:
            return self._command_override(source)
        origin = str(Path(self.config.origin).resolve()) if self.config.origin else None
        return crawl_command(origin, self.rule_snapshot, source, self.sources_snapshot)

    def _source_info(self, name: str) -> tuple[str, str] | None:
        src = self.schedule.sources.get(name) if self.schedule else None
        return (src.kind, src.url) if src is not None else None

    async def _crawl_finished(self, outcome: CrawlOutcome) -> None:
        self.metrics.count_crawl(outcome.result)
        self.poke_dispatcher()
        await self._refresh()

    async def _poll_rules(self) -> None:
        self._last_tick = time.monotonic()
        result = await asyncio.to_thread(self.watcher.poll)
        if not result.changed:
            return
        if result.reloaded:
            self.rule_errors = []
            self._snapshot_rules()
            return
        self.metrics.rule_reload_errors.inc()
        self.rule_errors = [str(e) for e in result.errors]
        await self.tell_admins(
            "⚠️ Rule edit refused; the previous rules (version "
            f"{html.escape(result.version)}) stay in force:\n"
            + "\n".join(f"<code>{html.escape(e)}</code>" for e in self.rule_errors[:20])
        )

    def _read_sources(self) -> bytes | None:
        if not isinstance(self.config.sources, str):
            return None
        try:
            return self.config.resolve(self.config.sources).read_bytes()
        except OSError:
            return None

    def _snapshot_sources(self, data: bytes | None, accepted: list[Any]) -> None:
        """Keep the accepted sources file where crawl children read it: a child reading the file
        on disk would fail on a refused edit while the schedule carries on with the old one."""
        from crawler.sources import load_sources

        if data is None:
            return
        path = self._state_dir() / "sources" / f"{_sha(data)}.yaml"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if list(load_sources(path)) != list(accepted):
                return  # the file changed while being read: the next poll takes it
        except Exception as exc:
            log.info("sources snapshot deferred: %s", exc)
            return
        previous, self.sources_snapshot = self.sources_snapshot, str(path)
        if previous and previous != self.sources_snapshot:
            with contextlib.suppress(OSError):
                Path(previous).unlink()

    async def _poll_sources(self) -> None:
        from core.located import LocatedErrors
        from lookout.loaders import sources_from_config

        data = self._read_sources()
        fingerprint = _sha(data)
        if fingerprint == self._sources_fingerprint:
            return
        self._sources_fingerprint = fingerprint
        try:
            fresh = sources_from_config(self.config)
        except LocatedErrors as exc:
            errors = [str(e) for e in exc.errors]
            for e in errors:
                log.error("sources not reloaded: %s", e)
            await self.tell_admins("⚠️ Sources edit refused; the schedule stays as it was:\n"
                                   + "\n".join(f"<code>{html.escape(e)}</code>" for e in errors[:20]))
            return
        assert self.schedule is not None
        self._snapshot_sources(data, fresh)
        change = self.schedule.apply(fresh)
        for name in change.removed:
            self.metrics.drop_source(name)
        await asyncio.to_thread(self._sync_sources_table)

    async def _refresh(self) -> None:
        self._last_tick = time.monotonic()
        try:
            names = list(self.schedule.sources) if self.schedule else []
            await asyncio.to_thread(self.metrics.refresh, self.store, names)
            await asyncio.to_thread(self._sync_sources_table)
        except Exception:
            log.exception("metrics refresh failed")

    async def _maintenance(self) -> None:
        from lookout.maintenance import run_maintenance

        try:
            await asyncio.to_thread(run_maintenance, self.store, self.config.keep_articles)
        except Exception:
            log.exception("maintenance failed")

    def _sync_sources_table(self) -> None:
        """Scheduled next runs into ``sources.next_run_at``, for ``lookout status`` (another process)."""
        if self.schedule is None or self.store is None:
            return
        next_runs = self.schedule.next_runs()
        with self.store.begin() as conn:
            for name, at in next_runs.items():
                src = self.schedule.sources[name]
                upsert_source(conn, name, src.kind, src.url)
                conn.execute(update(sources).where(sources.c.name == name).values(next_run_at=at))

    # -- rule snapshots for crawl children ------------------------------------------------------

    def _state_dir(self) -> Path:
        if self.options.state_dir is not None:
            return self.options.state_dir
        url = self.config.database_url()
        if url.startswith("sqlite:///") and ":memory:" not in url:
            return Path(url.removeprefix("sqlite:///")).parent / "service-state"
        return self.config.base_dir / "var" / "service-state"

    def _snapshot_rules(self) -> None:
        """Copy the accepted rule files where crawl children read them. Only written when the files
        on disk still hold exactly the accepted version (else the next poll sees the change)."""
        from rules.loader import load_ruleset_texts

        ruleset = self.watcher.current
        try:
            texts = {str(f): Path(f).read_text(encoding="utf-8") for f in ruleset.files}
            if load_ruleset_texts(texts).version != ruleset.version:
                return
        except Exception as exc:
            log.info("rule snapshot deferred: %s", exc)
            return
        root = self._state_dir() / "rules" / ruleset.version
        paths = []
        for f in ruleset.files:
            src = Path(f).resolve()
            dest = root / src.relative_to(src.anchor)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(texts[str(f)], encoding="utf-8")
            _copy_side_files(src.parent, dest.parent)
            paths.append(str(dest))
        self.rule_snapshot = paths
        log.info("rules in force version=%s files=%d", ruleset.version, len(paths))
        # Older snapshots are no longer read by new crawls; keep the newest few for running ones.
        snapshots = sorted((root.parent).iterdir(), key=lambda p: p.stat().st_mtime)
        for old in snapshots[:-3]:
            shutil.rmtree(old, ignore_errors=True)

    # -- bot callbacks ---------------------------------------------------------------------------

    async def _on_crawl_command(self, name: str) -> str:
        assert self.schedule is not None
        if self.schedule.run_now(name):
            return f"Crawl of {name} starts now."
        known = ", ".join(sorted(self.schedule.sources)) or "none"
        return f"Unknown source {name!r}; known: {known}."

    async def _on_reload_command(self) -> str:
        result = await asyncio.to_thread(self.watcher.poll)
        if result.reloaded:
            self.rule_errors = []
            self._snapshot_rules()
            return f"Rules reloaded: version {result.version}."
        if result.errors:
            self.rule_errors = [str(e) for e in result.errors]
            return ("Rule edit refused; version " + result.version + " stays in force:\n"
                    + "\n".join(self.rule_errors[:20]))
        return f"Rules unchanged (version {result.version})."

    # -- health ----------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        scheduler_ok = self.scheduler is not None and self.scheduler.running
        if self.app is None:
            dispatcher = "disabled (no telegram token)"
            dispatcher_ok = True
        else:
            alive = self.dispatch_task is not None and not self.dispatch_task.done()
            dispatcher, dispatcher_ok = ("running" if alive else "stopped"), alive
        lag = time.monotonic() - self._last_tick
        loop_ok = lag < max(60.0, 5 * self.options.metrics_every)
        ok = scheduler_ok and dispatcher_ok and loop_ok
        return ok, {
            "status": "ok" if ok else "unhealthy",
            "scheduler": "running" if scheduler_ok else "stopped",
            "dispatcher": dispatcher,
            "seconds_since_tick": round(lag, 1),
            "rules_version": self.watcher.current.version if self.watcher else None,
            "rule_errors": len(self.rule_errors),
            "crawls_running": sorted(self.crawls.running) if self.crawls else [],
        }


def _copy_side_files(src_dir: Path, dest_dir: Path) -> None:
    """GeoJSON fences referenced relative to a rule file travel with the snapshot."""
    for pattern in ("*.geojson", "*/*.geojson", "*.json", "*/*.json"):
        for f in src_dir.glob(pattern):
            target = dest_dir / f.relative_to(src_dir)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)


def _sha(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


def _fields(obj: Any) -> str:
    values = getattr(obj, "__dict__", {})
    return " ".join(f"{k}={v}" for k, v in values.items() if not k.startswith("_"))
