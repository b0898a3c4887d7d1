"""Virtual time for asyncio code: rate-limit and retry waits that take no real time.

``FakeClock`` is a monotonic clock (call it, or ``monotonic()``) with an async ``sleep``; hand
both to what takes them (``RateLimiter(clock=clock, sleep=clock.sleep)``,
``FakeBotAPI(clock=clock)``), and ``utcnow`` to what wants datetimes (``Dispatcher(clock=...)``).

It is a discrete-event clock: a driver task advances the time to the earliest pending wake-up
and wakes exactly the sleepers due then, in deadline order, once the tasks it woke last have run
up to their next wait. So every sleeper wakes at its deadline, and the times code reads are the
times it computed, with no scheduler jitter: a test asserts on them exactly.

Real I/O should take no virtual time either: while it runs the clock must stand still, or it
would jump ahead for a task stuck in a database commit or an HTTP request. ``hold()`` does that,
``holding(sender, clock)`` holds it around each coroutine method of an object (a Sender: the fake
Bot API then stamps a send with the very moment the rate limiter let it go), and
``VirtualAsyncio`` stands in for the ``asyncio`` module of code that calls ``asyncio.sleep`` or
``asyncio.to_thread`` itself (monkeypatch it over that module's ``asyncio`` name).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
import itertools
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


SETTLE_TURNS = 4  # event-loop turns the driver lets pass before it moves the clock: a woken
# task resumes in one, a task it starts (asyncio.gather) takes its first step in the next


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


class FakeClock:
    """A monotonic clock in seconds (from ``start``) whose ``sleep`` takes no real time."""

    def __init__(self, start: float = 1_000.0, *, epoch: datetime | None = None):
        self.start = start
        self.now = start
        # What ``utcnow`` answers at ``start``: by default the real time of its first call, so
        # rows a test queued before (stamped with the real time) are due at once.
        self.epoch = epoch
        self.slept: list[float] = []  # every sleep asked for, in seconds, in call order
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._holds = 0
        self._holds_ended = 0  # how many holds have ended: one that came and went while the
        # driver let turns pass still has its continuation to run
        self._released: asyncio.Future[None] | None = None
        self._driver: asyncio.Task[None] | None = None

    # -- reading the time -------------------------------------------------------------------
    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def elapsed(self) -> float:
        return self.now - self.start

    def utcnow(self) -> datetime:
        if self.epoch is None:
            self.epoch = datetime.now(UTC)
        return self.epoch + timedelta(seconds=self.now - self.start)

    # -- moving it ----------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the clock by hand (outside a running sleep; sleepers wake on the next turn)."""
        assert seconds >= 0, "time does not go back"
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` in virtual time."""
        self.slept.append(seconds)
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._order), wake))
        if self._driver is None or self._driver.done() or self._driver.get_loop() is not loop:
            self._driver = loop.create_task(self._drive(), name="fake-clock")
        await wake  # cancelled: the driver skips it

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """The clock stands still inside (sleepers wait for the way out)."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            self._holds_ended += 1
            if self._holds == 0 and self._released is not None and not self._released.done():
                self._released.set_result(None)

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Let the tasks woken last (and the tasks they start) run up to their next wait; the
            # I/O they start holds the clock until it is done, and what follows a hold gets its
            # turns too, even when the hold began and ended while the turns passed (a thread's
            # millisecond is many idle turns).
            ended = -1
            while ended != self._holds_ended:
                ended = self._holds_ended
                await _turns(SETTLE_TURNS)
                while self._holds:
                    self._released = loop.create_future()
                    await self._released
                    await _turns(SETTLE_TURNS)
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)  # a cancelled sleep
            if not self._sleepers:
                return
            self.now = max(self.now, self._sleepers[0][0])
            while self._sleepers and self._sleepers[0][0] <= self.now:
                _, _, wake = heapq.heappop(self._sleepers)
                if not wake.done():
                    wake.set_result(None)


def holding(target: Any, clock: FakeClock) -> Any:
    """``target`` with the clock held while any of its coroutine methods runs (e.g. a Sender:
    the fake Bot API then stamps each request with the moment the rate limiter let it go)."""
    return _Holding(target, clock)


class _Holding:
    def __init__(self, target: Any, clock: FakeClock):
        self._target = target
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def held(*args: Any, **kwargs: Any) -> Any:
            with self._clock.hold():
                return await attr(*args, **kwargs)

        return held


class VirtualAsyncio:
    """The ``asyncio`` module in virtual time, for code that calls ``asyncio.sleep`` and
    ``asyncio.to_thread`` itself (it takes no ``sleep=``): ``sleep`` is the clock's, and a call in
    a worker thread holds the clock while it runs. Everything else is asyncio's own."""

    def __init__(self, clock: FakeClock):
        self._clock = clock
        self.sleep = clock.sleep

    async def to_thread(self, func: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self._clock.hold():
            return await asyncio.to_thread(func, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)
