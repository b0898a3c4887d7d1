"""How often a failing source is polled: the backoff policy, and how operators are told of it
(``lookout sources list``, ``lookout status``, ``/metrics``). Pure: no I/O, no clock; the
scheduler keeps ``sources.failures_in_row`` and ``sources.next_run_at`` in the store.

The policy: a crawl that failed (``failed``, ``timeout``, ``killed``: the index itself could not
be read, or the crawl did not end) adds one to the source's failures in a row; any other result
(``ok``, ``partial``, ``empty``: the index was read) sets them back to 0. A source with no
failures in a row is polled every ``every``, as configured. After n failures in a row it is
polled every ``every * 2**n``, but never further apart than ``crawl.max_backoff`` (1 h by
default), and never more often than ``every``: a source polled ``max_backoff`` apart or more (an
hourly one, by default) is not backed off at all, rather than polled sooner because of the cap.
The first crawl that reads its index again polls it at its own interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.durations import format_duration
from crawler.state import CrawlResult

# The results that count as the source failing. ``partial`` and ``empty`` read the index: the
# source answers, so there is nothing to spare it from.
FAILING: frozenset[CrawlResult] = frozenset({CrawlResult.FAILED, CrawlResult.TIMEOUT, CrawlResult.KILLED})

_MICROSECOND = timedelta(microseconds=1)


def failures_after(previous: int | None, result: CrawlResult) -> int:
    """The source's failures in a row once a crawl ended with ``result`` (``previous``: the
    store's ``sources.failures_in_row``, NULL meaning none)."""
    if result in FAILING:
        return max(previous or 0, 0) + 1
    return 0


def poll_interval(every: timedelta, failures_in_row: int, max_backoff: timedelta) -> timedelta:
    """How far apart the source is polled now: ``every`` while it is not failing, else
    ``every * 2**failures_in_row`` capped at ``max(max_backoff, every)``."""
    if failures_in_row <= 0 or every <= timedelta(0):
        return every
    cap = max(max_backoff, every)
    # In whole microseconds (what a timedelta holds), as Python integers: ``every * 2**n``
    # overflows a timedelta long before n is large, and any n of at least the cap's bit length
    # is past the cap whatever ``every`` is (at least 1 µs), so the shift stays small.
    every_us = every // _MICROSECOND
    cap_us = cap // _MICROSECOND
    if failures_in_row >= cap_us.bit_length():
        return cap
    return timedelta(microseconds=min(every_us << failures_in_row, cap_us))


def backing_off(every: timedelta, failures_in_row: int, max_backoff: timedelta) -> bool:
    """The source is polled less often than ``every`` because it keeps failing."""
    return poll_interval(every, failures_in_row, max_backoff) > every


def failing_text(
    every: timedelta,
    failures_in_row: int | None,
    max_backoff: timedelta,
    next_poll: datetime | None = None,
    now: datetime | None = None,
) -> str | None:
    """What operators read of a failing source, or None while it is not failing:
    ``backing off: 3 failures in a row, next poll 14:05 UTC (every 8m instead of 1m)``; a source
    already polled ``max_backoff`` apart or more says ``failing:`` and that it is not backed off.
    ``next_poll`` shows as a time of day when it falls on ``now``'s day (UTC), else with its date."""
    failures = failures_in_row or 0
    if failures <= 0:
        return None
    count = f"{failures} failure{'s' if failures != 1 else ''} in a row"
    when = f", next poll {_clock(next_poll, now)}" if next_poll is not None else ""
    interval = poll_interval(every, failures, max_backoff)
    if interval > every:
        return f"backing off: {count}{when} (every {format_duration(interval)} instead of {format_duration(every)})"
    return (f"failing: {count}{when} (every {format_duration(every)}: "
            f"not backed off, crawl.max_backoff is {format_duration(max_backoff)})")


def _clock(at: datetime, now: datetime | None) -> str:
    at = _as_utc(at)
    if now is not None and at.date() == _as_utc(now).date():
        return f"{at:%H:%M} UTC"
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _as_utc(value: datetime) -> datetime:
    # The store gives aware datetimes; a naive one is taken as UTC, never as local time.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
