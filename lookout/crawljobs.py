"""Crawl subprocesses for the service.

Twisted's reactor cannot restart, so every crawl runs in its own process: at most
``crawl.parallel`` at once, each killed (with its whole process group: Scrapy's extraction pool
included) when it outlives ``crawl.timeout``. A crawl that hangs, crashes or is killed by the
kernel is recorded as failed with its reason in ``crawl_runs`` and ``sources.last_error``; the
service itself never fails because of a crawl.

Run as a module (``python -m lookout.crawljobs --config FILE [--rules PATH]... [--sources PATH]
SOURCE``) it is the child side: the ``lookout crawl`` command, with the rule and sources files the
service has accepted (a broken edit on disk must not reach a crawl while the service keeps the old
ones). A child whose service dies (SIGKILL, OOM) kills itself and its workers: no orphan crawls on
alongside the next service.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from sqlalchemy import and_, select, update

from core.located import LocatedErrors
from core.store import Store, crawl_runs, sources, utcnow
from crawler.state import CrawlResult, upsert_source
from lookout.cli import build_parser, run_command
from lookout.config import load_config

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from datetime import datetime, timedelta

    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 20
# A crawl cut short by the service's shutdown: recorded beside the crawler's own results.
STOPPED: Final = "stopped"


@dataclass(frozen=True)
class CrawlOutcome:
    source: str
    # A child that exits 0 crawled: its own run row says ok, partial or empty, and the outcome
    # takes that result once recorded (``CrawlJobs._record``).
    result: CrawlResult | Literal["stopped"]
    started_at: datetime
    finished_at: datetime
    returncode: int | None
    reason: str | None = None

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def ok(self) -> bool:
        """The crawl ran to its end (whatever it found: ok, partial or empty)."""
        return self.result in (CrawlResult.OK, CrawlResult.PARTIAL, CrawlResult.EMPTY)


def crawl_command(config_file: str | None, rule_paths: Sequence[str], source: str,
                  sources_file: str | None = None) -> list[str]:
    """The child command line for one source."""
    cmd = [sys.executable, "-m", "lookout.crawljobs"]
    if config_file:
        cmd += ["--config", config_file]
    for path in rule_paths:
        cmd += ["--rules", path]
    if sources_file:
        cmd += ["--sources", sources_file]
    return [*cmd, source]


class CrawlJobs:
    """Runs crawl subprocesses with a concurrency cap and a timeout, and records failures."""

    def __init__(
        self,
        store: Store,
        *,
        command: Callable[[str], list[str]],
        parallel: int,
        timeout: timedelta,
        kill_grace: float = 5.0,
        env: dict[str, str] | None = None,
        on_finished: Callable[[CrawlOutcome], Awaitable[None] | None] | None = None,
        source_info: Callable[[str], tuple[str, str] | None] | None = None,
    ):
        self.store = store
        self.command = command
        self.semaphore = asyncio.Semaphore(parallel)
        self.timeout = timeout.total_seconds()
        self.kill_grace = kill_grace
        self.env = env
        self.on_finished = on_finished
        self.source_info = source_info  # name -> (kind, url), to create a missing sources row
        self.running: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False

    async def run(self, source: str) -> CrawlOutcome:
        """Crawl one source; never raises for a failing crawl."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        async with self.semaphore:
            if self._stopping:
                now = utcnow()
                return CrawlOutcome(source, STOPPED, now, now, None, "service shutting down")
            outcome = await self._run_child(source)
        try:
            outcome = await asyncio.to_thread(self._record, outcome)
        except Exception:
            log.exception("crawl record failed source=%s", source)
        level = logging.INFO if outcome.result == CrawlResult.OK else logging.WARNING
        log.log(level, "crawl finished source=%s result=%s seconds=%.1f reason=%s",
                source, outcome.result, outcome.seconds, outcome.reason or "-")
        if self.on_finished is not None:
            try:
                maybe = self.on_finished(outcome)
                if asyncio.iscoroutine(maybe):
                    await maybe
            except Exception:
                log.exception("crawl callback failed source=%s", source)
        return outcome

    async def _run_child(self, source: str) -> CrawlOutcome:
        started = utcnow()
        t0 = time.monotonic()
        argv = self.command(source)
        log.info("crawl started source=%s", source)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: we kill workers with it
                env=self.env,
            )
        except OSError as exc:
            return CrawlOutcome(source, CrawlResult.FAILED, started, utcnow(), None, f"could not start: {exc}")
        self.running[source] = proc
        tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        reader = asyncio.create_task(_read_lines(proc.stderr, tail))
        timed_out = stopped = False
        try:
            await asyncio.wait_for(proc.wait(), timeout=self.timeout)
        except TimeoutError:
            timed_out = True
            await self._kill(proc)
        except asyncio.CancelledError:
            stopped = True
            await self._kill(proc)
            raise
        finally:
            self.running.pop(source, None)
            try:
                await asyncio.wait_for(reader, timeout=2)
            except (TimeoutError, asyncio.CancelledError):
                reader.cancel()
            if stopped:
                # Recorded even when the awaiting task is cancelled (shutdown).
                outcome = CrawlOutcome(source, STOPPED, started, utcnow(), proc.returncode,
                                       "stopped by service shutdown")
                await asyncio.shield(asyncio.to_thread(self._record, outcome))
        finished = utcnow()
        rc = proc.returncode
        if timed_out:
            reason = f"timed out after {time.monotonic() - t0:.0f}s (limit {self.timeout:g}s); killed"
            return CrawlOutcome(source, CrawlResult.TIMEOUT, started, finished, rc, reason)
        if self._stopping and rc != 0:
            return CrawlOutcome(source, STOPPED, started, finished, rc, "stopped by service shutdown")
        if rc == 0:
            return CrawlOutcome(source, CrawlResult.OK, started, finished, rc)
        return CrawlOutcome(source, CrawlResult.FAILED, started, finished, rc, _failure_reason(rc, tail))

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM to the group, then SIGKILL after the grace period."""
        for sig, wait in ((signal.SIGTERM, self.kill_grace), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=wait)
            except TimeoutError:
                continue
            # The leader is gone; make sure no worker of its group lingers.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return

    async def stop(self, grace: float) -> None:
        """Shutdown: no new crawl starts; running ones get ``grace`` seconds, then are killed."""
        self._stopping = True
        tasks = {t for t in self._tasks if t is not asyncio.current_task()}
        if not tasks:
            return
        log.info("waiting for %d running crawl(s) up to %.0fs", len(self.running), grace)
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            procs = [p for p in self.running.values() if p.returncode is None]
            await asyncio.gather(*(self._kill(p) for p in procs))
            # Each crawl's own task records its outcome ("stopped") once its process is gone.
            await asyncio.wait(pending, timeout=15)

    # -- recording -------------------------------------------------------------------------

    def _record(self, outcome: CrawlOutcome) -> CrawlOutcome:
        """Successful children record their own run (the outcome takes its result: ok, partial
        or empty); failures are written here, over any run row the child left unfinished."""
        with self.store.begin() as conn:
            if outcome.ok:
                own = conn.execute(
                    select(crawl_runs.c.id, crawl_runs.c.result).where(
                        crawl_runs.c.source == outcome.source,
                        crawl_runs.c.started_at >= outcome.started_at,
                    ).order_by(crawl_runs.c.id.desc())
                ).first()
                if own is None:
                    conn.execute(crawl_runs.insert().values(
                        source=outcome.source, started_at=outcome.started_at,
                        finished_at=outcome.finished_at, result=CrawlResult.OK))
                self._ensure_source_row(conn, outcome.source)
                if own is not None and own.result in (CrawlResult.PARTIAL, CrawlResult.EMPTY):
                    return dataclasses.replace(outcome, result=CrawlResult(own.result))
                return outcome
            left = conn.execute(
                select(crawl_runs.c.id).where(
                    crawl_runs.c.source == outcome.source,
                    crawl_runs.c.started_at >= outcome.started_at,
                    crawl_runs.c.finished_at.is_(None),
                )
            ).scalars().all()
            values = {"finished_at": outcome.finished_at, "result": outcome.result, "error": outcome.reason}
            if left:
                conn.execute(update(crawl_runs).where(crawl_runs.c.id.in_(left)).values(**values))
            else:
                conn.execute(crawl_runs.insert().values(
                    source=outcome.source, started_at=outcome.started_at, **values))
            self._ensure_source_row(conn, outcome.source)
            conn.execute(
                update(sources).where(sources.c.name == outcome.source).values(
                    last_crawl_at=outcome.finished_at, last_result=outcome.result,
                    last_error=outcome.reason,
                )
            )
        return outcome

    def _ensure_source_row(self, conn: Connection, name: str) -> None:
        info = self.source_info(name) if self.source_info else None
        if info is not None:
            kind, url = info
            upsert_source(conn, name, kind, url)


def _failure_reason(rc: int | None, tail: collections.deque[str]) -> str:
    last = next((line for line in reversed(tail) if line.strip()), "")
    if rc is not None and rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        why = f"killed by {name}"
        if -rc == signal.SIGKILL:
            why += " (out of memory?)"
    else:
        why = f"exit code {rc}"
    return f"{why}: {last.strip()[:300]}" if last else why


async def _read_lines(stream: asyncio.StreamReader | None, tail: collections.deque[str]) -> None:
    if stream is None:
        return
    while True:
        line = await stream.readline()
        if not line:
            return
        text = line.decode("utf-8", "replace").rstrip()
        tail.append(text)
        log.debug("crawl child: %s", text)


def mark_interrupted_runs(store: Store, before: datetime) -> int:
    """At start: runs a previous service left unfinished (it was killed) are closed as failed."""
    with store.begin() as conn:
        result = conn.execute(
            update(crawl_runs)
            .where(and_(crawl_runs.c.finished_at.is_(None), crawl_runs.c.started_at < before))
            .values(finished_at=before, result=CrawlResult.FAILED, error="interrupted: the service stopped")
        )
        return result.rowcount or 0


# -- child side ------------------------------------------------------------------------------


def exit_with_parent(poll: float = 1.0) -> threading.Thread:
    """Kill this crawl (its whole process group when it leads one) once its parent is gone.

    The service starts each child in its own session so it can kill the child's workers; the
    same isolation means a SIGKILLed service would leave the crawl running, orphaned, next to
    the crawls of the service that replaces it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def child_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lookout.crawljobs")
    parser.add_argument("--config")
    parser.add_argument("--rules", action="append", default=[])
    parser.add_argument("--sources")
    parser.add_argument("source", nargs="+")
    args = parser.parse_args(argv)
    exit_with_parent()
    try:
        config = load_config(args.config)
    except LocatedErrors as exc:
        print(str(exc), file=sys.stderr)
        return 1
    # The rule and sources files the service accepted, not whatever is on disk now.
    if args.rules:
        config = config.model_copy(update={"rules": list(args.rules)})
    if args.sources:
        config = config.model_copy(update={"sources": args.sources})
    command = ["crawl", *args.source]
    return run_command(build_parser(command).parse_args(command), config)


if __name__ == "__main__":
    sys.exit(child_main())
