"""A failing source is polled less often (``lookout.pollbackoff``): which results count as
failing, the doubling and its cap, and what operators read of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crawler.state import CrawlResult
from lookout.pollbackoff import FAILING, backing_off, failing_text, failures_after, poll_interval

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def test_failing_results_add_one_and_any_read_index_resets():
    assert {CrawlResult.FAILED, CrawlResult.TIMEOUT, CrawlResult.KILLED} == FAILING
    assert failures_after(None, CrawlResult.FAILED) == 1  # NULL in the store: none before
    assert failures_after(2, CrawlResult.TIMEOUT) == 3
    assert failures_after(3, CrawlResult.KILLED) == 4
    for result in (CrawlResult.OK, CrawlResult.PARTIAL, CrawlResult.EMPTY):
        assert failures_after(5, result) == 0, result
        assert failures_after(None, result) == 0, result
    assert failures_after(-1, CrawlResult.FAILED) == 1  # a nonsense count is taken as none


def test_the_interval_doubles_per_failure_up_to_max_backoff():
    intervals = [poll_interval(MINUTE, n, HOUR) for n in range(8)]
    assert intervals == [MINUTE * m for m in (1, 2, 4, 8, 16, 32, 60, 60)]
    assert [backing_off(MINUTE, n, HOUR) for n in (0, 1, 7)] == [False, True, True]
    assert poll_interval(timedelta(minutes=25), 1, HOUR) == timedelta(minutes=50)
    assert poll_interval(timedelta(minutes=25), 2, HOUR) == HOUR  # 100 min, capped


@pytest.mark.parametrize("every", [HOUR, timedelta(hours=6), timedelta(days=1)])
def test_a_source_polled_max_backoff_apart_or_more_is_never_polled_sooner(every):
    for n in (0, 1, 5, 100):
        assert poll_interval(every, n, HOUR) == every
        assert not backing_off(every, n, HOUR)


def test_huge_failure_counts_do_not_overflow():
    for n in (64, 1_000, 10**9, 10**18):
        assert poll_interval(MINUTE, n, HOUR) == HOUR
        assert poll_interval(timedelta(days=30), n, timedelta(days=365)) == timedelta(days=365)
    assert poll_interval(timedelta(microseconds=1), 10**6, timedelta(days=999_999)) == timedelta(days=999_999)


def test_what_operators_read():
    now = datetime(2026, 5, 1, 14, 0, tzinfo=UTC)
    soon = datetime(2026, 5, 1, 14, 5, tzinfo=UTC)
    assert failing_text(MINUTE, 0, HOUR, soon, now) is None
    assert failing_text(MINUTE, None, HOUR, soon, now) is None
    assert failing_text(MINUTE, 3, HOUR, soon, now) == (
        "backing off: 3 failures in a row, next poll 14:05 UTC (every 8m instead of 1m)")
    assert failing_text(MINUTE, 1, HOUR) == "backing off: 1 failure in a row (every 2m instead of 1m)"
    tomorrow = datetime(2026, 5, 2, 0, 30, tzinfo=UTC)
    assert "next poll 2026-05-02 00:30 UTC" in failing_text(MINUTE, 3, HOUR, tomorrow, now)
    naive = datetime(2026, 5, 1, 14, 5)  # taken as UTC, never as local time
    assert "next poll 14:05 UTC" in failing_text(MINUTE, 3, HOUR, naive, now)
    assert failing_text(HOUR, 2, HOUR, soon, now) == (
        "failing: 2 failures in a row, next poll 14:05 UTC (every 1h: not backed off, crawl.max_backoff is 1h)")
