"""The service's crawl workers: started, fed, watched and replaced (``WorkerPool``).

Each worker is a ``lookout.worker`` process in a process group of its own (its extraction
processes with it), spoken to over its stdin and stdout. A worker takes up to ``crawl.parallel``
crawls at once; all the running crawls of one host go to the same worker, so the host's
politeness slot in that worker's engine is the host's only one. A worker that exits, is killed
(the kernel's OOM killer, kill -9) or falls silent (no report for ``hang_after`` seconds: killed
then) is noticed at once: each crawl it held ends as ``killed (signal 9)`` (or ``failed: exit
code N``) and a replacement starts, later each time when workers keep dying. A worker retiring
(``crawl.max_crawls_per_worker``, ``crawl.max_worker_rss``) takes no new crawl; its replacement
starts at once, and the crawls it holds end there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import ValidationError

from core.store import utcnow
from crawler.state import CrawlResult
from lookout.workerproto import FROM_WORKER, Alive, CrawlDoneReport, CrawlOrder, Ready, Retiring, StopOrder

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 20
START_GRACE = 120.0  # seconds a starting worker has to say it is ready
RESTART_DELAYS = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # after 0, 1, 2, ... deaths in a row


@dataclass(frozen=True)
class CrawlDone:
    """How one crawl handed to a worker ended, as the scheduler learns it."""

    source: str
    result: CrawlResult
    outcome: str  # the result with its reason, as logs and the bot show it
    started_at: datetime
    finished_at: datetime
    recorded: bool  # the worker recorded its run; False: the service must (the worker died)
    new: int = 0  # articles stored new
    returned: bool = False  # never crawled: its worker retired first; due again at once, nothing recorded


@dataclass(eq=False)
class Worker:
    number: int
    proc: asyncio.subprocess.Process
    held: dict[int, tuple[CrawlOrder, datetime, str]] = field(default_factory=dict)  # id -> order, start, host
    hosts: collections.Counter[str] = field(default_factory=collections.Counter)
    ready: bool = False
    retiring: bool = False
    last_heard: float = field(default_factory=time.monotonic)
    rss: int = 0
    crawls_done: int = 0
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=STDERR_TAIL_LINES))
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid


class WorkerPool:
    """``count`` workers, started with ``command()``, each taking up to ``capacity`` crawls."""

    def __init__(
        self,
        count: int,
        command: Callable[[], list[str]],
        *,
        capacity: int,
        on_done: Callable[[CrawlDone], Awaitable[None]],
        hang_after: float = 60.0,
        env: dict[str, str] | None = None,
    ):
        self.count = count
        self.command = command
        self.capacity = capacity
        self.on_done = on_done
        self.hang_after = hang_after
        self.env = env
        self.workers: list[Worker] = []
        self.freed = asyncio.Event()  # a crawl ended or a worker became ready: capacity may be free
        self._numbers = iter(range(1, 1 << 30))
        self._deaths_in_row = 0
        self._stopping = False
        self._watchdog: asyncio.Task[None] | None = None
        self._starting = 0
        self.started = False

    # -- life ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the workers (once: later calls do nothing)."""
        if self.started:
            return
        self.started = True
        for _ in range(self.count):
            await self._spawn()
        self._watchdog = asyncio.create_task(self._watch())

    async def _spawn(self, delay: float = 0.0) -> None:
        self._starting += 1
        try:
            if delay:
                await asyncio.sleep(delay)
            if self._stopping:
                return
            proc = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: killed with its extraction processes
                env=self.env,
                limit=1 << 22,
            )
        except OSError as exc:
            log.error("crawl worker could not start: %s", exc)
            self._deaths_in_row += 1
            asyncio.get_running_loop().create_task(self._spawn(self._restart_delay()))
            return
        finally:
            self._starting -= 1
        worker = Worker(next(self._numbers), proc)
        self.workers.append(worker)
        worker.tasks = [asyncio.create_task(self._read_reports(worker)),
                        asyncio.create_task(self._read_stderr(worker)),
                        asyncio.create_task(self._await_exit(worker))]
        log.info("crawl worker %d started pid=%d", worker.number, worker.pid)

    def _restart_delay(self) -> float:
        return RESTART_DELAYS[min(self._deaths_in_row, len(RESTART_DELAYS) - 1)]

    async def stop(self, grace: float) -> None:
        """No new crawl; the running ones get ``grace`` seconds, then the workers are killed."""
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for worker in self.workers:
            self._send(worker, StopOrder(grace=grace).line())
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
        waits = [asyncio.shield(w.proc.wait()) for w in self.workers]
        if waits:
            _done, pending = await asyncio.wait(waits, timeout=grace + 5)
            if pending:
                for worker in self.workers:
                    if worker.proc.returncode is None:
                        _kill_group(worker.pid)
                await asyncio.wait(pending, timeout=10)
        for worker in list(self.workers):
            await asyncio.gather(*worker.tasks, return_exceptions=True)

    # -- crawls --------------------------------------------------------------------------------
    @property
    def running(self) -> list[str]:
        return sorted(order.source.name for w in self.workers for order, _at, _host in w.held.values())

    def describe(self) -> list[dict[str, object]]:
        """Each worker as ``/healthz`` shows it."""
        return [{"pid": w.pid, "ready": w.ready, "crawls_held": len(w.held), "crawls_done": w.crawls_done,
                 "rss_mb": round(w.rss / 2**20, 1), "retiring": w.retiring} for w in self.workers]

    def assign(self, order: CrawlOrder, host: str) -> bool:
        """Hand ``order`` to a worker: the one crawling ``host`` already, else the least busy.
        False: no worker can take it now (``freed`` is set when one may)."""
        # A host's running crawls stay on one worker: while one crawls it, only that one may.
        crawling_host = [w for w in self.workers if w.hosts[host] and not w.retiring]
        candidates = [w for w in crawling_host or self.workers if self._takes(w)]
        if not candidates:
            return False
        worker = min(candidates, key=lambda w: len(w.held))
        worker.held[order.id] = (order, utcnow(), host)
        worker.hosts[host] += 1
        self._send(worker, order.line())
        return True

    def _takes(self, worker: Worker) -> bool:
        return worker.ready and not worker.retiring and worker.proc.returncode is None and \
            len(worker.held) < self.capacity

    def _send(self, worker: Worker, line: bytes) -> None:
        stdin = worker.proc.stdin
        if stdin is None or stdin.is_closing():
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            stdin.write(line)

    # -- what workers say ------------------------------------------------------------------------
    async def _read_reports(self, worker: Worker) -> None:
        assert worker.proc.stdout is not None
        while line := await worker.proc.stdout.readline():
            worker.last_heard = time.monotonic()
            try:
                report = FROM_WORKER.validate_json(line)
            except ValidationError:
                log.warning("crawl worker %d said something unreadable: %.200r", worker.number, line)
                continue
            if isinstance(report, CrawlDoneReport):
                await self._crawl_done(worker, report)
            elif isinstance(report, Alive):
                worker.rss, worker.crawls_done = report.rss, report.crawls_done
            elif isinstance(report, Ready):
                worker.ready = True
                self._deaths_in_row = 0
                self.freed.set()
            elif isinstance(report, Retiring):
                log.info("crawl worker %d retiring: %s", worker.number, report.reason)
                worker.retiring = True
                if not self._stopping:
                    await self._spawn()

    async def _crawl_done(self, worker: Worker, report: CrawlDoneReport) -> None:
        held = worker.held.pop(report.id, None)
        if held is None:
            return
        _order, started, host = held
        self._release_host(worker, host)
        self.freed.set()
        await self._tell(CrawlDone(report.source, report.result, report.outcome, started, utcnow(), recorded=True,
                                   new=report.new))

    def _release_host(self, worker: Worker, host: str) -> None:
        worker.hosts[host] -= 1
        if worker.hosts[host] <= 0:
            del worker.hosts[host]

    async def _tell(self, done: CrawlDone) -> None:
        try:
            await self.on_done(done)
        except Exception:
            log.exception("crawl record failed source=%s", done.source)

    async def _read_stderr(self, worker: Worker) -> None:
        """The worker's log lines, passed on to the service's own stderr."""
        assert worker.proc.stderr is not None
        while line := await worker.proc.stderr.readline():
            text = line.decode("utf-8", "replace").rstrip()
            worker.tail.append(text)
            sys.stderr.write(text + "\n")

    async def _await_exit(self, worker: Worker) -> None:
        rc = await worker.proc.wait()
        _kill_group(worker.pid)  # nothing of its group lingers (its extraction processes die with it anyway)
        await asyncio.gather(*worker.tasks[:2], return_exceptions=True)  # its last reports read first
        self.workers.remove(worker)
        reason = _death_reason(rc, worker.tail)
        expected = self._stopping or (worker.retiring and rc == 0)
        if worker.held and expected and not self._stopping:  # sent as it retired: crawled by another
            for order, started, host in worker.held.values():
                self._release_host(worker, host)
                await self._tell(CrawlDone(order.source.name, CrawlResult.OK, "returned", started, utcnow(),
                                           recorded=True, returned=True))
            worker.held.clear()
        if worker.held:
            result = CrawlResult.KILLED if rc is not None and rc < 0 else CrawlResult.FAILED
            if self._stopping:
                reason = "stopped by service shutdown"
            for order, started, host in worker.held.values():
                self._release_host(worker, host)
                await self._tell(CrawlDone(order.source.name, result, f"{result} ({reason})" if result ==
                                           CrawlResult.KILLED else f"{result}: {reason}", started, utcnow(),
                                           recorded=False))
            worker.held.clear()
        self.freed.set()
        if expected:
            log.info("crawl worker %d ended pid=%d", worker.number, worker.pid)
            return
        log.warning("crawl worker %d died pid=%d: %s", worker.number, worker.pid, reason)
        self._deaths_in_row += 1
        if not self._stopping and len(self.workers) + self._starting < self.count:
            await self._spawn(self._restart_delay())

    async def _watch(self) -> None:
        """Kill a worker silent for ``hang_after`` seconds (its reports stopped: hung)."""
        while True:
            await asyncio.sleep(min(5.0, self.hang_after / 4))
            now = time.monotonic()
            for worker in list(self.workers):
                # A worker still starting (imports, rules, its extraction processes) is not hung.
                limit = self.hang_after if worker.ready else max(self.hang_after, START_GRACE)
                if worker.proc.returncode is None and now - worker.last_heard > limit:
                    log.warning("crawl worker %d silent for %.0f s: killing it", worker.number,
                                now - worker.last_heard)
                    worker.tail.append(f"silent for {now - worker.last_heard:.0f}s: killed as hung")
                    _kill_group(worker.pid)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _death_reason(rc: int | None, tail: collections.deque[str]) -> str:
    if rc is not None and rc < 0:
        return f"signal {-rc}"
    last = next((line for line in reversed(tail) if line.strip()), "")
    return f"exit code {rc}" + (f": {last.strip()[:300]}" if last else "")
