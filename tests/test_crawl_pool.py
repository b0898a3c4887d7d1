"""The service's side of the crawl workers (``lookout.workers``, ``lookout.crawlqueue``) with
stand-in workers (``support.fakeworker``): sources handed out as they come due, at most
``capacity`` per worker, a host's crawls on one worker; a worker that dies or falls silent
noticed at once, its crawls recorded as killed and crawled again by its replacement; due times
that survive a restart; failing sources polled less often."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core.store import Store, crawl_runs, sources, utcnow
from crawler.sources import Source
from crawler.state import CrawlResult
from lookout.crawlqueue import CrawlQueue, jitter_for, mark_interrupted_runs
from lookout.metrics import Metrics
from lookout.workers import CrawlDone, WorkerPool

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _env(log: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}", "FAKE_WORKER_LOG": str(log), **extra}


def _source(name: str, host: str = "127.0.0.1", every: str = "1h", sleep: float = 0.0) -> Source:
    return Source(name=name, feed=f"http://{host}:9/{name}.xml?sleep={sleep}", every=every)


class Rig:
    """A WorkerPool of stand-in workers and the CrawlQueue feeding it, on one store."""

    def __init__(self, store: Store, tmp_path: Path, *, workers: int = 1, capacity: int = 4,
                 hang_after: float = 60.0, max_backoff: timedelta = timedelta(hours=1), **env: str):
        self.log = tmp_path / "orders.log"
        self.log.touch()
        self.done: list[CrawlDone] = []
        self.metrics = Metrics()
        self.pool = WorkerPool(workers, lambda: [sys.executable, "-m", "support.fakeworker"], capacity=capacity,
                               on_done=self._on_done, hang_after=hang_after, env=_env(self.log, **env))
        self.queue = CrawlQueue(store, self.pool, max_backoff=max_backoff, rules=lambda: None, stagger=0.01,
                                on_finished=self._finished, rng=random.Random(1))

    async def _on_done(self, done: CrawlDone) -> None:
        await self.queue.crawl_done(done)

    def _finished(self, done: CrawlDone) -> None:
        self.done.append(done)
        self.metrics.count_crawl(done.result)

    def orders(self) -> list[tuple[int, str]]:
        return [(int(pid), name) for pid, name in (line.split() for line in self.log.read_text().splitlines())]

    async def __aenter__(self) -> Rig:
        await self.pool.start()
        self.task = asyncio.create_task(self.queue.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.queue.stop()
        await self.pool.stop(grace=1)
        await self.task


async def until(predicate, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("result", [CrawlResult.OK, CrawlResult.PARTIAL, CrawlResult.EMPTY])
def test_a_finished_crawl_is_counted_by_its_own_result(sqlite_store, tmp_path, result):
    async def scenario():
        async with Rig(sqlite_store, tmp_path) as rig:
            await asyncio.to_thread(rig.queue.apply, [_source(f"{result}-feed")])
            await until(lambda: rig.done)
            return rig

    rig = asyncio.run(scenario())
    assert [d.result for d in rig.done] == [result]
    assert rig.metrics.crawls.labels(str(result))._value.get() == 1
    assert all(rig.metrics.crawls.labels(str(r))._value.get() == 0 for r in CrawlResult if r != result)


def test_at_most_capacity_crawls_per_worker_and_a_hosts_crawls_on_one_worker(sqlite_store, tmp_path):
    names = [f"ok-{i}" for i in range(6)]

    async def scenario():
        async with Rig(sqlite_store, tmp_path, workers=2, capacity=2) as rig:
            await until(lambda: sum(w.ready for w in rig.pool.workers) == 2)
            peak = 0
            # Six sources on one host (0.3 s each), two on another.
            await asyncio.to_thread(rig.queue.apply, [_source(n, sleep=0.3) for n in names]
                                    + [_source(f"ok-other-{i}", host="127.0.0.9", sleep=0.3) for i in range(2)])
            while len(rig.done) < 8:
                peak = max(peak, *(len(w.held) for w in rig.pool.workers))
                hosts = [{h for _o, _t, h in w.held.values()} for w in rig.pool.workers]
                assert not (hosts[0] & hosts[1]), "one host's crawls on two workers at once"
                await asyncio.sleep(0.01)
            return rig, peak

    rig, peak = asyncio.run(scenario())
    assert peak == 2
    assert sorted(d.source for d in rig.done) == sorted([*names, "ok-other-0", "ok-other-1"])


def test_a_killed_worker_is_replaced_and_its_crawl_recorded_and_crawled_again(sqlite_store, tmp_path, caplog):
    async def scenario():
        async with Rig(sqlite_store, tmp_path) as rig:
            await until(lambda: rig.pool.workers and rig.pool.workers[0].ready)
            first = rig.pool.workers[0].pid
            await asyncio.to_thread(rig.queue.apply, [_source("hang-feed")])
            await until(rig.orders)
            os.kill(first, 9)  # as the kernel's OOM killer would
            await until(lambda: rig.done)
            await until(lambda: len(rig.orders()) == 2)  # the replacement took the same source
            with sqlite_store.connect() as conn:  # before the shutdown records the replacement's crawl
                run = conn.execute(select(crawl_runs.c.result, crawl_runs.c.error)).one()
                row = conn.execute(select(sources.c.last_result, sources.c.last_error, sources.c.failures_in_row)).one()
            return rig, first, run, row

    caplog.set_level(logging.WARNING)
    rig, first, run, row = asyncio.run(scenario())
    assert rig.done[0].result == CrawlResult.KILLED and rig.done[0].outcome == "killed (signal 9)"
    (pid1, name1), (pid2, name2) = rig.orders()
    assert name1 == name2 == "hang-feed" and pid1 == first and pid2 != first
    assert "crawl worker 1 died" in caplog.text
    assert tuple(run) == ("killed", "killed (signal 9)")
    assert tuple(row) == ("killed", "killed (signal 9)", 1)


def test_a_retiring_worker_is_replaced_and_nothing_is_lost(sqlite_store, tmp_path, caplog):
    async def scenario():
        async with Rig(sqlite_store, tmp_path) as rig:
            await until(lambda: rig.pool.workers and rig.pool.workers[0].ready)
            await asyncio.to_thread(rig.queue.apply, [_source("retire-a")])
            await until(lambda: rig.done)
            await asyncio.to_thread(rig.queue.apply, [_source("retire-a"), _source("ok-b")])
            await until(lambda: len(rig.done) == 2)
            return rig

    caplog.set_level(logging.INFO)
    rig = asyncio.run(scenario())
    (pid1, _), (pid2, name2) = rig.orders()
    assert name2 == "ok-b" and pid2 != pid1  # crawled by the replacement
    assert [d.result for d in rig.done] == [CrawlResult.OK, CrawlResult.OK]
    assert "retiring: 1 crawls done" in caplog.text and "died" not in caplog.text


def test_a_silent_worker_is_killed_as_hung_and_replaced(sqlite_store, tmp_path):
    async def scenario():
        async with Rig(sqlite_store, tmp_path, hang_after=1.0, FAKE_WORKER_SILENT="1") as rig:
            await until(lambda: rig.pool.workers and rig.pool.workers[0].ready)
            first = rig.pool.workers[0].pid
            await asyncio.to_thread(rig.queue.apply, [_source("hang-feed")])
            await until(lambda: rig.done, within=20)
            await until(lambda: rig.pool.workers and rig.pool.workers[0].pid != first)
            return rig

    rig = asyncio.run(scenario())
    assert rig.done[0].result == CrawlResult.KILLED


def test_due_times_survive_a_restart(sqlite_store, tmp_path):
    async def first_run():
        async with Rig(sqlite_store, tmp_path) as rig:
            await asyncio.to_thread(rig.queue.apply, [_source("ok-a", every="10m"), _source("ok-b", every="10m")])
            await until(lambda: len(rig.done) == 2)
            await until(lambda: not rig.queue.running)
            return rig.queue.next_runs()

    due = asyncio.run(first_run())
    now = utcnow()
    for name in ("ok-a", "ok-b"):
        every, jitter = 600, jitter_for(timedelta(minutes=10))
        assert now + timedelta(seconds=every - jitter) <= due[name] <= now + timedelta(seconds=every + jitter)

    async def second_run():
        async with Rig(sqlite_store, tmp_path) as rig:
            await asyncio.to_thread(rig.queue.apply, [_source("ok-a", every="10m"), _source("ok-b", every="10m")])
            await asyncio.sleep(1.0)
            return rig.queue.next_runs(), rig.done

    again, crawled = asyncio.run(second_run())
    assert again == due and crawled == []  # nothing re-polled at start, nothing forgotten


def test_overdue_sources_after_downtime_are_spread_not_polled_at_once(sqlite_store, tmp_path):
    class NoRoom:
        freed = asyncio.Event()

    queue = CrawlQueue(sqlite_store, NoRoom(), max_backoff=timedelta(hours=1), rules=lambda: None, stagger=1.0)
    sources_ = [_source(f"ok-{i}", every="1m") for i in range(30)]
    queue.apply(sources_)
    first = queue.next_runs()
    long_ago = utcnow() - timedelta(hours=2)
    with sqlite_store.begin() as conn:
        conn.execute(sources.update().values(next_run_at=long_ago))
    restarted = CrawlQueue(sqlite_store, NoRoom(), max_backoff=timedelta(hours=1), rules=lambda: None, stagger=1.0)
    restarted.apply(sources_)
    due = sorted(restarted.next_runs().values())
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(due)]
    assert min(gaps) >= 1.0 - 1e-6 and (due[-1] - due[0]).total_seconds() <= 60  # within one interval
    assert len(first) == 30


def test_a_failing_source_backs_off_and_a_success_resets_it(sqlite_store, tmp_path):
    class Room:
        freed = asyncio.Event()

    queue = CrawlQueue(sqlite_store, Room(), max_backoff=timedelta(minutes=10), rules=lambda: None,
                       rng=random.Random(3))
    queue.apply([_source("failed-feed", every="1m")])
    gaps = []

    async def finish(result):
        start = utcnow()
        await queue.crawl_done(CrawlDone("failed-feed", result, str(result), start, start, recorded=True))
        gaps.append((queue.next_runs()["failed-feed"] - start).total_seconds())

    async def scenario():
        for result in [CrawlResult.FAILED] * 5 + [CrawlResult.OK]:
            await finish(result)

    asyncio.run(scenario())
    queue.flush()
    jitter = jitter_for(timedelta(minutes=1)) / 2
    expected = [120, 240, 480, 600, 600, 60]
    assert all(abs(g - e) <= jitter + 0.5 for g, e in zip(gaps, expected, strict=True)), gaps
    with sqlite_store.connect() as conn:
        assert conn.execute(select(sources.c.failures_in_row)).scalar() == 0


def test_unfinished_runs_of_a_dead_service_are_closed(sqlite_store):
    start = utcnow() - timedelta(minutes=5)
    with sqlite_store.begin() as conn:
        conn.execute(crawl_runs.insert().values(source="a", started_at=start))
    assert mark_interrupted_runs(sqlite_store, utcnow()) == 1
    with sqlite_store.connect() as conn:
        row = conn.execute(select(crawl_runs.c.result, crawl_runs.c.error)).one()
    assert row.result == "failed" and "interrupted" in row.error


def test_polls_held_back_together_go_back_to_their_own_times(sqlite_store):
    """A backlog hands ten sources out at the same moment, late; their next polls are due an
    interval after the times they were due, still spread, not an interval after that moment."""
    clock = [utcnow()]

    class TakesAll:
        freed = asyncio.Event()

        def assign(self, order, host):
            return True

    queue = CrawlQueue(sqlite_store, TakesAll(), max_backoff=timedelta(hours=1), rules=lambda: None, stagger=6.0,
                       now=lambda: clock[0], rng=random.Random(2))
    queue.apply([_source(f"ok-{i}", every="1m") for i in range(10)])
    slots = queue.next_runs()
    clock[0] += timedelta(seconds=70)  # all ten overdue: handed out together
    assert queue.hand_out() == 10

    async def finish_all():
        for name in slots:
            await queue.crawl_done(CrawlDone(name, CrawlResult.OK, "ok", clock[0], clock[0], recorded=True))

    clock[0] += timedelta(seconds=1)
    asyncio.run(finish_all())
    jitter = jitter_for(timedelta(minutes=1)) / 2
    for name, due in queue.next_runs().items():
        assert abs((due - slots[name]).total_seconds() - 60) <= jitter + 1e-6 or due == clock[0]
    spread = sorted(queue.next_runs().values())
    assert (spread[-1] - spread[0]).total_seconds() >= 40  # still spread over the minute
