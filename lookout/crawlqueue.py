"""The crawl schedule: when each source is due, kept in the database, and handing due sources to
the workers (``CrawlQueue``).

Each source's next poll is ``sources.next_run_at``: a restarted service picks up each source's
rhythm where it was, neither polling everything at once nor forgetting what was due. Sources
never polled, and those that came due while the service was down, are spread out (at most
``stagger`` seconds apart, all within one interval). After a poll the next one is due an interval
(``every``, longer while the source keeps failing: ``lookout.pollbackoff``) after the last was,
moved by a jitter of up to 5 % of the interval (at most 30 s), so sources with the same interval
drift apart; counted from the time the poll was due, so polls held back together (a backlog) go
back to their own times. A source is handed to one worker at a time; a host's crawls go to the
worker already crawling that host (``WorkerPool.assign``). A crawl cut short by its worker's death is due again
at once, the first time.

Why not one APScheduler job per source, as before: due times here change with every poll
(backoff, jitter, a restart's catch-up) and a due source waits for a worker with room and its
host's worker; that is a queue ordered by due time, a heap, not a set of fixed triggers.
APScheduler still runs the service's periodic jobs (watchers, metrics, maintenance).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import and_, bindparam, select, update

from core.store import Store, crawl_runs, sources, utcnow
from crawler.state import CrawlResult, upsert_source
from lookout.pollbackoff import failures_after, poll_interval
from lookout.workerproto import CrawlOrder, RulesRef

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from crawler.sources import Source
    from lookout.workers import CrawlDone, WorkerPool

log = logging.getLogger(__name__)

MAX_JITTER = 30.0  # seconds
SAVE_EVERY = 1.0  # seconds between saves of the finished crawls' due times
_SAVE_DUE = update(sources).where(sources.c.name == bindparam("row_name"))


def jitter_for(every: timedelta) -> float:
    """Up to 5 % of the interval, at most 30 s: spreads load without hurting freshness."""
    return min(every.total_seconds() * 0.05, MAX_JITTER)


def host_of(source: Source) -> str:
    return (urlsplit(source.url).hostname or "").lower()


@dataclass
class ScheduleChange:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass
class _State:
    source: Source
    due: datetime
    failures: int = 0
    running: bool = False
    slot: datetime | None = None  # the due time of the crawl handed out last


class CrawlQueue:
    """Sources by due time; ``run`` hands the due ones to the ``WorkerPool``."""

    def __init__(
        self,
        store: Store,
        pool: WorkerPool,
        *,
        max_backoff: timedelta,
        rules: Callable[[], RulesRef | None],
        stagger: float = 1.0,
        now: Callable[[], datetime] = utcnow,
        on_finished: Callable[[CrawlDone], Awaitable[None] | None] | None = None,
        rng: random.Random | None = None,
    ):
        self.store = store
        self.pool = pool
        self.max_backoff = max_backoff
        self.rules = rules
        self.stagger = stagger
        self.now = now
        self.on_finished = on_finished
        self.rng = rng or random.Random()
        self.states: dict[str, _State] = {}
        self._heap: list[tuple[datetime, int, str]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._wake = asyncio.Event()
        self._stopping = False
        self._dirty: dict[str, tuple[datetime, int]] = {}  # due times not saved yet, by source

    @property
    def sources(self) -> dict[str, Source]:
        return {name: state.source for name, state in self.states.items()}

    @property
    def running(self) -> list[str]:
        return sorted(name for name, state in self.states.items() if state.running)

    # -- the schedule --------------------------------------------------------------------------
    def apply(self, new_sources: Sequence[Source]) -> ScheduleChange:
        """Make the schedule the sources given (blocking: reads and writes the store)."""
        change = ScheduleChange()
        wanted = {s.name: s for s in new_sources}
        for name in list(self.states):
            if name not in wanted:
                del self.states[name]
                change.removed.append(name)
        stored = self._stored_due([n for n in wanted if n not in self.states])
        now = self.now()
        catch_up: list[str] = []
        never: set[str] = set()
        for name, source in wanted.items():
            state = self.states.get(name)
            if state is None:
                due, failures = stored.get(name, (None, 0))
                self.states[name] = _State(source, due or now, failures)
                if due is None or due < now:
                    catch_up.append(name)
                if due is None:
                    never.add(name)
                    change.added.append(name)
                else:
                    self._push(name)
            elif state.source != source:
                if source.every < state.source.every:  # a shorter interval: not later than that from now
                    state.due = min(state.due, now + source.every)
                state.source = source
                change.changed.append(name)
                self._push(name)
        self._spread(catch_up, never, now)
        self._save_due([*change.added, *change.changed, *catch_up])
        if change:
            log.info("schedule rebuilt added=%d removed=%d changed=%d", len(change.added), len(change.removed),
                     len(change.changed))
        self._wake.set()
        return change

    def _spread(self, names: list[str], never: set[str], now: datetime) -> None:
        """First polls (and overdue ones) ``stagger`` seconds apart at most, within one interval:
        in the order they were due, those never polled after them."""
        names.sort(key=lambda n: (n in never, self.states[n].due, n))
        count = len(names)
        for i, name in enumerate(names):
            state = self.states[name]
            spacing = min(self.stagger, state.source.every.total_seconds() / max(count, 1))
            state.due = now + timedelta(seconds=spacing * i)
            self._push(name)

    def run_now(self, name: str) -> bool:
        """Bring a source's next crawl forward to now (the admin's /crawl)."""
        state = self.states.get(name)
        if state is None:
            return False
        state.due = self.now()
        self._push(name)
        self._wake.set()
        return True

    def next_runs(self) -> dict[str, datetime | None]:
        return {name: (None if state.running else state.due) for name, state in self.states.items()}

    def _push(self, name: str) -> None:
        heapq.heappush(self._heap, (self.states[name].due, next(self._seq), name))

    # -- handing out -----------------------------------------------------------------------------
    def hand_out(self) -> int:
        """Give every due source a worker while workers have room; how many were handed out."""
        now = self.now()
        given = 0
        while self._heap and self._heap[0][0] <= now:
            due, _seq, name = self._heap[0]
            state = self.states.get(name)
            if state is None or state.running or state.due != due:
                heapq.heappop(self._heap)  # removed, running (pushed again when done) or moved
                continue
            order = CrawlOrder(id=next(self._ids), source=state.source, rules=self.rules())
            if not self.pool.assign(order, host_of(state.source)):
                break  # no room: the pool's ``freed`` wakes the loop
            heapq.heappop(self._heap)
            state.running = True
            state.slot = due
            given += 1
        return given

    def seconds_to_next(self) -> float | None:
        while self._heap:
            due, _seq, name = self._heap[0]
            state = self.states.get(name)
            if state is None or state.running or state.due != due:
                heapq.heappop(self._heap)
                continue
            return max(0.0, (due - self.now()).total_seconds())
        return None

    async def run(self) -> None:
        """Hand out due sources until stopped: waits for the next due time, a change of the
        schedule (``_wake``) or, when what is due found no room, a crawl's end (``pool.freed``).
        The due times of finished crawls are saved every ``SAVE_EVERY`` seconds meanwhile."""
        saver = asyncio.create_task(self._save_periodically())
        try:
            await self._hand_out_until_stopped()
        finally:
            saver.cancel()
            await asyncio.gather(saver, return_exceptions=True)
            await asyncio.to_thread(self.flush)

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY)
            if self._dirty:
                try:
                    await asyncio.to_thread(self.flush)
                except Exception as exc:
                    log.warning("saving due times failed (%s); they are saved at the next save", exc)

    def flush(self) -> None:
        """Save the due times and failure counts of the crawls finished since the last save."""
        dirty, self._dirty = self._dirty, {}
        if not dirty:
            return
        try:
            with self.store.begin() as conn:
                conn.execute(_SAVE_DUE, [{"row_name": name, "next_run_at": due, "failures_in_row": failures}
                                         for name, (due, failures) in dirty.items()])
        except Exception:
            self._dirty = {**dirty, **self._dirty}  # not lost: the next save writes them
            raise

    async def _hand_out_until_stopped(self) -> None:
        while not self._stopping:
            self.pool.freed.clear()
            self._wake.clear()
            self.hand_out()
            wait = self.seconds_to_next()
            if wait == 0.0:  # due, but no worker has room for it: until one has
                wait = None
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(self.pool.freed.wait())]
            try:
                await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def crawl_done(self, done: CrawlDone) -> None:
        """The pool's ``on_done``: the next poll scheduled (and saved), the run recorded when the
        worker could not record it, then ``on_finished``."""
        state = self.states.get(done.source)
        if done.returned:  # handed to a worker that retired before taking it
            if state is not None:
                state.running = False
                state.due = self.now()
                self._push(done.source)
                self._wake.set()
            return
        if state is not None:
            state.running = False
            previous = state.failures
            state.failures = failures_after(previous, done.result)
            if done.result == CrawlResult.KILLED and previous == 0 and not self._stopping:
                state.due = self.now()  # cut short by its worker's death: back to the queue, once
            else:
                # From the slot it was due in, not from when it was handed out: sources held back
                # together (a backlog, a busy start) go back to their own slots instead of staying
                # bunched, poll after poll.
                interval = poll_interval(state.source.every, state.failures, self.max_backoff)
                jitter = jitter_for(state.source.every)
                offset = interval.total_seconds() + self.rng.uniform(-jitter / 2, jitter / 2)
                base = state.slot or done.started_at
                state.due = max(self.now(), base + timedelta(seconds=offset))
            self._push(done.source)
            self._wake.set()
        if done.recorded and state is not None:  # batched: thousands of polls an hour
            self._dirty[done.source] = (state.due, state.failures)
        else:
            await asyncio.to_thread(self._save_done, done, state)
        if self.on_finished is not None:
            maybe = self.on_finished(done)
            if maybe is not None:
                await maybe

    # -- the store -----------------------------------------------------------------------------
    def _stored_due(self, names: list[str]) -> dict[str, tuple[datetime | None, int]]:
        if not names:
            return {}
        found: dict[str, tuple[datetime | None, int]] = {}
        with self.store.connect() as conn:
            for i in range(0, len(names), 500):
                chunk = names[i : i + 500]
                rows = conn.execute(select(sources.c.name, sources.c.next_run_at, sources.c.failures_in_row)
                                    .where(sources.c.name.in_(chunk)))
                for name, due, failures in rows:
                    found[name] = (due, failures or 0)
        return found

    def _save_due(self, names: Sequence[str]) -> None:
        if not names:
            return
        with self.store.begin() as conn:
            for name in dict.fromkeys(names):
                state = self.states.get(name)
                if state is None:
                    continue
                upsert_source(conn, name, state.source.kind, state.source.url)
                conn.execute(update(sources).where(sources.c.name == name).values(next_run_at=state.due))

    def _save_done(self, done: CrawlDone, state: _State | None) -> None:
        with self.store.begin() as conn:
            if state is not None:
                upsert_source(conn, done.source, state.source.kind, state.source.url)
            values: dict[str, object] = {}
            if state is not None:
                values |= {"next_run_at": state.due, "failures_in_row": state.failures}
            if not done.recorded:  # its worker died: the run is recorded here
                conn.execute(crawl_runs.insert().values(
                    source=done.source, started_at=done.started_at, finished_at=done.finished_at,
                    result=done.result, error=done.outcome))
                values |= {"last_crawl_at": done.finished_at, "last_result": done.result,
                           "last_error": done.outcome}
            if values:
                conn.execute(update(sources).where(sources.c.name == done.source).values(**values))


def mark_interrupted_runs(store: Store, before: datetime) -> int:
    """At start: runs a previous service left unfinished (it was killed) are closed as failed."""
    with store.begin() as conn:
        result = conn.execute(
            update(crawl_runs)
            .where(and_(crawl_runs.c.finished_at.is_(None), crawl_runs.c.started_at < before))
            .values(finished_at=before, result=CrawlResult.FAILED, error="interrupted: the service stopped")
        )
        return result.rowcount or 0
