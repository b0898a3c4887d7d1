"""Telegram's flood limits, kept on our side so 429s do not happen in normal operation.

Three schedules, each a GCRA token bucket (a "next free slot" clock, so a send can reserve a slot
in the future without a lock: the event loop is single-threaded):

- all chats together: ``rate_global`` per second, evenly paced 5 % under the limit (no burst),
  and a sliding one-second window over the real send moments on top;
- each private chat: ``rate_private`` per second, evenly paced (Telegram: "no more than one
  message per second" in a chat; a burst there draws 429s);
- each group or channel (negative id or "@name"): ``rate_group_per_minute``, evenly paced.

Every request that puts something in a chat counts: messages, map pins and edits alike.

``reserve`` never waits: it books a slot, or says the chat must wait (then the dispatcher
reschedules that chat's alerts and serves others). A 429 for one chat blocks only that chat until
its ``retry_after`` (int seconds or timedelta).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from alerts.config import TelegramConfig

PRIVATE_BURST = 1
GUARD_WINDOW = 1.0  # seconds: the window Telegram counts its 30 messages in


class Schedule:
    """Generic cell rate algorithm: ``rate`` per second, up to ``burst`` at once."""

    __slots__ = ("interval", "tat", "tolerance")

    def __init__(self, rate: float, burst: int = 1):
        self.interval = 1.0 / rate
        self.tolerance = self.interval * (max(burst, 1) - 1)
        self.tat = float("-inf")  # theoretical arrival time of the next conforming send

    def earliest(self, at: float) -> float:
        return max(at, self.tat - self.tolerance)

    def take(self, slot: float) -> None:
        self.tat = max(self.tat, slot) + self.interval

    def push_back(self, until: float) -> None:
        """Nothing before ``until`` (after a flood wait), and no burst right after it."""
        self.tat = max(self.tat, until + self.tolerance)


def is_group(chat_id: str) -> bool:
    return chat_id.startswith(("-", "@"))


def seconds(retry_after: int | float | timedelta) -> float:
    return retry_after.total_seconds() if isinstance(retry_after, timedelta) else float(retry_after)


class RateLimiter:
    def __init__(
        self,
        rate_global: float = 30.0,
        rate_private: float = 1.0,
        rate_group_per_minute: float = 20.0,
        *,
        private_burst: int = PRIVATE_BURST,
        margin: float = 0.95,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ):
        self.clock = clock
        self.sleep = sleep
        self.private_burst = private_burst
        self.rate_private = rate_private
        self.rate_group = rate_group_per_minute / 60.0
        # Pace a little under the global limit: our send moments reach Telegram with jitter
        # (event-loop wake-ups, connection reuse, a busy CPU), and a 429 costs far more than 5 %.
        self.global_schedule = Schedule(rate_global * margin)
        self.global_limit = max(1, int(rate_global))
        self.recent: deque[float] = deque()  # actual global send moments, last second
        self.chats: dict[str, Schedule] = {}
        self.blocked_until: dict[str, float] = {}

    @classmethod
    def from_config(cls, config: TelegramConfig, **kwargs) -> RateLimiter:
        return cls(config.rate_global, config.rate_private, config.rate_group_per_minute, **kwargs)

    def _chat(self, chat_id: str) -> Schedule:
        schedule = self.chats.get(chat_id)
        if schedule is None:
            schedule = (Schedule(self.rate_group) if is_group(chat_id)
                        else Schedule(self.rate_private, self.private_burst))
            self.chats[chat_id] = schedule
        return schedule

    def reserve(self, chat_id: str) -> float | None:
        """Book a send slot if this chat may send now; None (and nothing booked) if it must wait.

        The chat's own schedule is booked at the global slot, the time the send really happens,
        so waiting behind other chats never squeezes two of this chat's messages together."""
        now = self.clock()
        chat = self._chat(chat_id)
        if max(self.blocked_until.get(chat_id, now), chat.earliest(now)) > now:
            return None
        slot = self.global_schedule.earliest(now)
        self.global_schedule.take(slot)
        chat.take(slot)
        return slot

    def chat_ready_at(self, chat_id: str) -> float:
        now = self.clock()
        return max(self.blocked_until.get(chat_id, now), self._chat(chat_id).earliest(now))

    def interval(self, chat_id: str) -> float:
        """Seconds between two messages to this chat at its rate."""
        return self._chat(str(chat_id)).interval

    async def acquire(self, chat_id: str) -> float:
        """Wait until this chat may send, all limits considered; returns how long it waited."""
        chat_id = str(chat_id)
        start = self.clock()
        while (slot := self.reserve(chat_id)) is None:
            await self.sleep(max(self.chat_ready_at(chat_id) - self.clock(), 0.001))
        await self.wait_for(slot)
        return self.clock() - start

    async def wait_for(self, slot: float) -> None:
        """Wait for a slot ``reserve`` booked (the global pace), and keep the global window."""
        wait = slot - self.clock()
        if wait > 0:
            await self.sleep(wait)
        # Late wake-ups can bunch sends together: never more than the limit in a real second.
        while True:
            now = self.clock()
            while self.recent and self.recent[0] <= now - GUARD_WINDOW:
                self.recent.popleft()
            if len(self.recent) < self.global_limit:
                break
            await self.sleep(self.recent[0] + GUARD_WINDOW - now + 0.001)
        self.recent.append(self.clock())

    def departed(self, chat_id: str) -> None:
        """A send to this chat leaves now, maybe later than its slot (a claim was committed
        first): the chat's next slot counts from now, so a late send and the next one on time
        never come closer than the chat's interval."""
        chat = self._chat(str(chat_id))
        chat.tat = max(chat.tat, self.clock() + chat.interval - chat.tolerance)

    def block(self, chat_id: str, retry_after: int | float | timedelta) -> float:
        """Telegram said 429 for this chat: nothing to it until ``retry_after`` has passed."""
        until = self.clock() + seconds(retry_after)
        chat_id = str(chat_id)
        self.blocked_until[chat_id] = max(self.blocked_until.get(chat_id, until), until)
        self._chat(chat_id).push_back(until)
        return until

    def blocked_for(self, chat_id: str) -> float:
        return max(0.0, self.blocked_until.get(str(chat_id), 0.0) - self.clock())

    def flood_waits(self) -> dict[str, float]:
        """Chats Telegram told to wait (429), with the seconds left."""
        now = self.clock()
        for chat_id in [c for c, until in self.blocked_until.items() if until <= now]:
            del self.blocked_until[chat_id]
        return {c: until - now for c, until in self.blocked_until.items()}
