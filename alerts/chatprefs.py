"""A chat's delivery preferences: mute, quiet hours and digest, and when held alerts are released.

Pure logic over ``ChatPrefs`` (``alerts.subscriptions.Chat.prefs``, or a mapping with the
``chats`` columns): parsing the arguments of ``/mute``, ``/quiet`` and ``/digest``, and
``release_time`` which tells the dispatcher whether an alert goes out now or is held until a
digest. Alerts are never dropped: whatever a preference holds back is released later as one
digest message. Times are UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from core.durations import format_duration, parse_duration

if TYPE_CHECKING:
    from collections.abc import Mapping

DigestMode = Literal["off", "hourly", "daily"]
MAX_MUTE = timedelta(days=365)
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")

MUTE_USAGE = "Usage: /mute <duration>, e.g. /mute 2h or /mute 1d (until then alerts are held for a digest)"
QUIET_USAGE = "Usage: /quiet HH:MM-HH:MM (UTC, e.g. /quiet 23:00-07:00) or /quiet off"
DIGEST_USAGE = "Usage: /digest off | hourly | daily HH:MM (UTC, e.g. /digest daily 08:00)"


class PrefError(ValueError):
    """Bad input to a preference command; the message is the usage reply."""


@dataclass(frozen=True)
class ChatPrefs:
    muted_until: datetime | None = None
    quiet_start: str | None = None  # "23:00"
    quiet_end: str | None = None
    digest: DigestMode = "off"
    digest_at: str | None = None  # "08:00" when digest == "daily"

    @classmethod
    def from_row(cls, row: PrefsSource) -> ChatPrefs:
        """The preferences of a ``chats``-like mapping; None (no chat row) has none."""
        if row is None:
            return cls()
        if isinstance(row, ChatPrefs):
            return row
        return cls(
            muted_until=row.get("muted_until"),
            quiet_start=row.get("quiet_start"),
            quiet_end=row.get("quiet_end"),
            digest=row.get("digest") or "off",
            digest_at=row.get("digest_at"),
        )


PrefsSource: TypeAlias = "ChatPrefs | Mapping[str, Any] | None"


def parse_hhmm(text: str) -> time:
    m = _HHMM.match(text.strip())
    if not m:
        raise PrefError(f"'{text}' is not a time of day (use HH:MM, 24-hour)")
    return time(int(m.group(1)), int(m.group(2)))


def _fmt(t: time) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


def parse_mute(arg: str, now: datetime) -> datetime:
    """``/mute 2h`` -> the UTC time the mute ends."""
    try:
        duration = parse_duration(arg)
    except ValueError as exc:
        raise PrefError(MUTE_USAGE) from exc
    if duration <= timedelta(0):
        raise PrefError(MUTE_USAGE)
    if duration > MAX_MUTE:
        raise PrefError("A mute lasts at most 365 days; use /stop to stop alerts altogether.")
    return now + duration


def parse_quiet(arg: str) -> tuple[str, str] | None:
    """``23:00-07:00`` -> ("23:00", "07:00"); ``off`` -> None."""
    arg = arg.strip().lower()
    if arg in ("off", "none", "no"):
        return None
    parts = re.split(r"\s*[-–]\s*", arg)
    if len(parts) != 2:
        raise PrefError(QUIET_USAGE)
    try:
        start, end = parse_hhmm(parts[0]), parse_hhmm(parts[1])
    except PrefError as exc:
        raise PrefError(f"{exc}. {QUIET_USAGE}") from exc
    if start == end:
        raise PrefError("Quiet hours need different start and end times. " + QUIET_USAGE)
    return _fmt(start), _fmt(end)


def parse_digest(args: list[str]) -> tuple[DigestMode, str | None]:
    """``["daily", "08:00"]`` -> ("daily", "08:00"); ``["hourly"]``; ``["off"]``."""
    if not args:
        raise PrefError(DIGEST_USAGE)
    mode = args[0].lower()
    if mode in ("off", "hourly") and len(args) == 1:
        return mode, None  # type: ignore[return-value]
    if mode == "daily" and len(args) == 2:
        try:
            return "daily", _fmt(parse_hhmm(args[1]))
        except PrefError as exc:
            raise PrefError(f"{exc}. {DIGEST_USAGE}") from exc
    raise PrefError(DIGEST_USAGE)


def in_quiet_hours(prefs: ChatPrefs, at: datetime) -> bool:
    if not (prefs.quiet_start and prefs.quiet_end):
        return False
    start, end, now = parse_hhmm(prefs.quiet_start), parse_hhmm(prefs.quiet_end), at.astimezone(UTC).time()
    if start < end:
        return start <= now < end
    return now >= start or now < end  # wraps midnight


def _next_at(at: datetime, hhmm: time, *, inclusive: bool) -> datetime:
    """The first UTC time of day ``hhmm`` at or after (``inclusive``) / after ``at``."""
    at = at.astimezone(UTC)
    candidate = datetime.combine(at.date(), hhmm, tzinfo=UTC)
    if candidate < at or (candidate == at and not inclusive):
        candidate += timedelta(days=1)
    return candidate


def _next_hour(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def release_time(chat: PrefsSource, now: datetime) -> datetime | None:
    """None: send now. Otherwise when alerts held for this chat are released as one digest.

    Digest period first (next full hour / next daily time), then mute and quiet hours push
    that later if it falls inside them; the quiet hours end wins over a digest time inside them.
    """
    prefs = ChatPrefs.from_row(chat)
    at = now
    if prefs.digest == "hourly":
        at = _next_hour(now)
    elif prefs.digest == "daily" and prefs.digest_at:
        at = _next_at(now, parse_hhmm(prefs.digest_at), inclusive=False)
    for _ in range(4):  # mute end and quiet end settle within a few steps
        moved = at
        if prefs.muted_until and prefs.muted_until > moved:
            moved = prefs.muted_until
        if in_quiet_hours(prefs, moved):
            moved = _next_at(moved, parse_hhmm(prefs.quiet_end or "00:00"), inclusive=False)
        if moved == at:
            break
        at = moved
    return None if at <= now else at


def describe_mutes(chat: PrefsSource, mutes: Mapping[str, datetime]) -> list[str]:
    """Plain-text lines for the chat's muted alert keys (for /list), in the chat's time."""
    _ = ChatPrefs.from_row(chat)  # the chat's zone, once it has one
    return [f"Muted {key} until {until:%Y-%m-%d %H:%M} UTC" for key, until in sorted(mutes.items())]


def describe(chat: PrefsSource, now: datetime) -> list[str]:
    """Plain-text lines describing the chat's preferences (for /help, /list)."""
    prefs = ChatPrefs.from_row(chat)
    lines = []
    if prefs.muted_until and prefs.muted_until > now:
        left = format_duration(timedelta(seconds=int((prefs.muted_until - now).total_seconds())))
        lines.append(f"Muted until {prefs.muted_until:%Y-%m-%d %H:%M} UTC ({left} left)")
    if prefs.quiet_start and prefs.quiet_end:
        lines.append(f"Quiet hours {prefs.quiet_start}-{prefs.quiet_end} UTC")
    if prefs.digest == "hourly":
        lines.append("Digest: hourly")
    elif prefs.digest == "daily":
        lines.append(f"Digest: daily at {prefs.digest_at} UTC")
    return lines
