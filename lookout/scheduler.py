"""The crawl schedule: one APScheduler job per source, rebuilt from the sources file.

Each source's job fires at its ``every`` with a small jitter (so sources with the same interval do
not hit the network in lock-step), ``coalesce`` (missed runs collapse into one), ``max_instances=1``
(a slow crawl is never overlapped by its next run) and a misfire grace. Every source is crawled
soon after start, staggered, so a restarted service catches up at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.triggers.interval import IntervalTrigger

from core.store import utcnow

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from apscheduler.schedulers.base import BaseScheduler

    from crawler.sources import Source

log = logging.getLogger(__name__)

CRAWL_JOB_PREFIX = "crawl:"
MAX_JITTER = 30.0  # seconds


def jitter_for(every: timedelta) -> float:
    """Up to 5 % of the interval, at most 30 s: spreads load without hurting latency."""
    return min(every.total_seconds() * 0.05, MAX_JITTER)


def misfire_grace_for(every: timedelta) -> int:
    """A run delayed (busy loop, suspended host) by less than this still happens."""
    return max(1, int(min(every.total_seconds(), 300)))


def job_id(source_name: str) -> str:
    return CRAWL_JOB_PREFIX + source_name


@dataclass
class ScheduleChange:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


class CrawlSchedule:
    """Keeps the scheduler's crawl jobs equal to a list of sources."""

    def __init__(
        self,
        scheduler: BaseScheduler,
        crawl: Callable[[str], Awaitable[object]],
        *,
        stagger: float = 1.0,
        now: Callable[[], datetime] = utcnow,
    ):
        self.scheduler = scheduler
        self.crawl = crawl
        self.stagger = stagger
        self.now = now
        self.sources: dict[str, Source] = {}

    def apply(self, new_sources: Sequence[Source]) -> ScheduleChange:
        change = ScheduleChange()
        wanted = {s.name: s for s in new_sources}
        for name in list(self.sources):
            if name not in wanted:
                self._remove(name)
                change.removed.append(name)
        start = self.now()
        for name, source in wanted.items():
            old = self.sources.get(name)
            if old == source:
                continue
            if old is None:
                # A new source (or the first build): crawl soon, staggered.
                first = start + timedelta(seconds=self.stagger * len(change.added))
                change.added.append(name)
            else:
                # Changed interval or URL: keep the rhythm, starting from now.
                first = start + source.every
                change.changed.append(name)
            self.scheduler.add_job(
                self.crawl,
                trigger=IntervalTrigger(seconds=source.every.total_seconds(), jitter=jitter_for(source.every),
                                        timezone="UTC"),
                args=[name],
                id=job_id(name),
                name=f"crawl {name}",
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=misfire_grace_for(source.every),
                next_run_time=first,
            )
            self.sources[name] = source
        if change:
            log.info("schedule rebuilt added=%s removed=%s changed=%s", ",".join(change.added) or "-",
                     ",".join(change.removed) or "-", ",".join(change.changed) or "-")
        return change

    def _remove(self, name: str) -> None:
        job = self.scheduler.get_job(job_id(name))
        if job is not None:
            job.remove()
        self.sources.pop(name, None)

    def run_now(self, name: str) -> bool:
        """Bring a source's next crawl forward to now (the admin's /crawl)."""
        job = self.scheduler.get_job(job_id(name))
        if job is None:
            return False
        job.modify(next_run_time=self.now())
        return True

    def next_runs(self) -> dict[str, datetime | None]:
        out: dict[str, datetime | None] = {}
        for name in self.sources:
            job = self.scheduler.get_job(job_id(name))
            out[name] = job.next_run_time if job is not None else None
        return out
