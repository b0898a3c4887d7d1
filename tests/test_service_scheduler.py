"""The crawl schedule built from the sources file: one job per source with its interval, jitter,
coalescing and single instance; rebuilt when the file changes; jobs actually fire on the loop."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from crawler.sources import Source
from lookout.scheduler import CrawlSchedule, jitter_for, job_id


def _src(name: str, every: str, url: str | None = None) -> Source:
    return Source(name=name, feed=url or f"http://127.0.0.1/{name}.xml", every=every)


def test_jobs_follow_the_sources_and_their_rebuilds():
    async def scenario():
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.start(paused=True)

        async def crawl(name):
            return name

        schedule = CrawlSchedule(scheduler, crawl)
        first = schedule.apply([_src("a", "10m"), _src("b", "15m")])
        job = scheduler.get_job(job_id("a"))
        facts = {
            "first": (sorted(first.added), first.removed, first.changed),
            "interval": job.trigger.interval,
            "jitter": job.trigger.jitter,
            "coalesce": job.coalesce,
            "max_instances": job.max_instances,
            "misfire": job.misfire_grace_time,
            "args": job.args,
        }
        unchanged = schedule.apply([_src("a", "10m"), _src("b", "15m")])
        second = schedule.apply([_src("a", "5m"), _src("c", "1h")])
        facts["unchanged"] = bool(unchanged)
        facts["second"] = (second.added, second.removed, second.changed)
        facts["ids"] = sorted(j.id for j in scheduler.get_jobs())
        facts["a_interval"] = scheduler.get_job(job_id("a")).trigger.interval
        facts["next"] = sorted(schedule.next_runs())
        scheduler.shutdown(wait=False)
        return facts

    facts = asyncio.run(scenario())
    assert facts["first"] == (["a", "b"], [], [])
    assert facts["interval"] == timedelta(minutes=10)
    assert facts["jitter"] == jitter_for(timedelta(minutes=10)) == 30.0
    assert facts["coalesce"] is True and facts["max_instances"] == 1
    assert facts["misfire"] == 300
    assert facts["args"] == ("a",)
    assert facts["unchanged"] is False
    assert facts["second"] == (["c"], ["b"], ["a"])
    assert facts["ids"] == ["crawl:a", "crawl:c"]
    assert facts["a_interval"] == timedelta(minutes=5)
    assert facts["next"] == ["a", "c"]


# The firing test runs on a scaled-down clock: intervals, the slow crawl and the observation window
# are all SCALE x what they stand for (1 s interval, 1.5 s slow crawl, 3.4 s window).
SCALE = 0.4


def test_jobs_fire_at_start_and_every_interval_without_overlap():
    async def scenario():
        scheduler = AsyncIOScheduler(timezone="UTC")
        calls: list[str] = []
        running = {"now": 0, "peak": 0}

        async def crawl(name):
            calls.append(name)
            running["now"] += 1
            running["peak"] = max(running["peak"], running["now"])
            await asyncio.sleep(1.5 * SCALE if name == "slow" else 0.01)  # slower than its interval
            running["now"] -= 1

        schedule = CrawlSchedule(scheduler, crawl, stagger=0.1)
        scheduler.start()
        # Source validation refuses intervals under 1 s: the scaled one is set on valid sources.
        every = {"every": timedelta(seconds=SCALE)}
        schedule.apply([_src("fast", "1s").model_copy(update=every), _src("slow", "1s").model_copy(update=every)])
        await asyncio.sleep(3.4 * SCALE)
        scheduler.shutdown(wait=False)
        return calls, running

    calls, running = asyncio.run(scenario())
    assert calls[:2] == ["fast", "slow"], "every source is crawled right after start"
    assert calls.count("fast") >= 3
    # "slow" takes 1.5 intervals: max_instances=1 skips the overlapping runs.
    assert 1 <= calls.count("slow") <= 2
    assert running["peak"] <= 2
