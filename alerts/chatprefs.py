"""A chat's delivery preferences: mute, quiet hours, digest and time zone, and when held alerts
are released.

Pure logic over ``ChatPrefs`` (``alerts.subscriptions.Chat.prefs``, or a mapping with the
``chats`` columns): parsing the arguments of ``/mute``, ``/quiet``, ``/digest`` and ``/tz``, and
``release_time`` which tells the dispatcher whether an alert goes out now or is held until a
digest. Alerts are never dropped: whatever a preference holds back is released later as one
digest message.

Quiet hours and digest times are wall-clock times in the chat's IANA time zone (``ChatPrefs.tz``,
None: UTC), and every time shown is local with the zone's name. Release times are worked out in
local time and converted to UTC, so a daily digest at 08:00 stays at 08:00 across a daylight-
saving change. A local time skipped by a change (02:30 on a spring-forward night) happens at the
change itself; one that happens twice (02:30 on a fall-back night) releases a digest at its first
occurrence, and quiet hours end at whichever occurrence follows.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from zoneinfo import ZoneInfo, available_timezones

from core.durations import format_duration, parse_duration

if TYPE_CHECKING:
    from collections.abc import Mapping

DigestMode = Literal["off", "hourly", "daily"]
MAX_MUTE = timedelta(days=365)
UTC_NAME = "UTC"
_TIME = re.compile(r"^(\d{1,2})(?:[:.h]([0-5]\d))?\s*(?:([ap])\.?m\.?)?$")
_OFFSET = re.compile(r"^(?:utc|gmt)?[+-]\d{1,2}(?::?\d\d)?$")
_UTC_ALIASES = {"utc", "gmt", "z", "zulu", "etc/utc", "etc/gmt", "universal", "etc/universal", "etc/zulu",
                "uct", "etc/uct", "gmt0", "etc/gmt0", "gmt+0", "gmt-0", "etc/gmt+0", "etc/gmt-0", "greenwich",
                "etc/greenwich"}

MUTE_USAGE = ("Usage: /mute <duration>, e.g. /mute 2h or /mute 1d, at most 365d "
              "(until then alerts are held for a digest)")
QUIET_USAGE = ("Usage: /quiet <from>-<to> [time zone] in the chat's local time, e.g. /quiet 23:00-07:00, "
               "/quiet 11pm-7am, /quiet 23-7 Europe/Istanbul; /quiet off")
DIGEST_USAGE = ("Usage: /digest off | hourly | daily HH:MM [time zone] in the chat's local time, "
                "e.g. /digest daily 08:00 (see /tz)")
TZ_USAGE = "Usage: /tz <time zone>, e.g. /tz Europe/Istanbul or /tz America/New_York; /tz UTC resets"


class PrefError(ValueError):
    """Bad input to a preference command; the message is the usage reply."""


@dataclass(frozen=True)
class ChatPrefs:
    muted_until: datetime | None = None
    quiet_start: str | None = None  # "23:00", local
    quiet_end: str | None = None
    digest: DigestMode = "off"
    digest_at: str | None = None  # "08:00" local, when digest == "daily"
    tz: str | None = None  # IANA name, e.g. "Europe/Istanbul"; None: UTC

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
            tz=row.get("tz"),
        )

    @property
    def zone(self) -> tzinfo:
        """The chat's time zone; UTC when none is set or the stored name is no longer known."""
        return _zone(self.tz) or UTC

    @property
    def zone_name(self) -> str:
        return self.tz if self.tz and _zone(self.tz) is not None else UTC_NAME


PrefsSource: TypeAlias = "ChatPrefs | Mapping[str, Any] | None"


# --- time zones --------------------------------------------------------------------------------


@cache
def _zone(name: str | None) -> ZoneInfo | None:
    if not name or name == UTC_NAME:
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError; odd paths ValueError
        return None


@cache
def _zone_names() -> dict[str, str]:
    """Lower-cased IANA name -> its proper spelling."""
    return {name.lower(): name for name in available_timezones()}


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_tz(text: str) -> str:
    """A time zone as typed (any case, spaces for underscores) -> its IANA name; "UTC" for UTC.

    Raises PrefError with the closest names (did you mean) for an unknown one."""
    cleaned = "_".join(text.strip().split())
    key = cleaned.lower()
    if not key:
        raise PrefError(TZ_USAGE)
    if key in _UTC_ALIASES:
        return UTC_NAME
    if _OFFSET.match("".join(key.split("_"))):
        raise PrefError(f"Use a place's time zone rather than an offset ('{_short(text)}'): it follows "
                        f"daylight saving. {TZ_USAGE}")
    names = _zone_names()
    if key in names:
        return names[key]
    city = key.rsplit("/", 1)[-1]
    same_city = [name for k, name in sorted(names.items()) if k.rsplit("/", 1)[-1] == city]
    if "/" not in key and len(same_city) == 1:  # "berlin" -> Europe/Berlin
        return same_city[0]
    if not names and len(key) <= 64 and _zone(cleaned) is not None:  # no zone list: ask zoneinfo itself
        return cleaned
    guesses = [names[k] for k in difflib.get_close_matches(key, list(names), n=3, cutoff=0.6)]
    guesses += same_city
    unique = list(dict.fromkeys(guesses))[:4]
    hint = f" Did you mean: {', '.join(unique)}?" if unique else ""
    raise PrefError(f"Unknown time zone '{_short(text)}'.{hint} {TZ_USAGE}")


def stored_tz(name: str) -> str | None:
    """What the ``tz`` column holds for a zone from ``parse_tz``: None for UTC."""
    return None if name == UTC_NAME else name


def _local(at: datetime, prefs: ChatPrefs) -> datetime:
    return at.astimezone(prefs.zone)


def format_local(at: datetime, prefs: PrefsSource) -> str:
    """``2026-12-02 14:00 Europe/Istanbul``: an instant as the chat reads it."""
    p = ChatPrefs.from_row(prefs)
    return f"{_local(at, p):%Y-%m-%d %H:%M} {p.zone_name}"


def describe_zone(prefs: PrefsSource, now: datetime) -> str:
    """``Europe/Istanbul (UTC+03:00), local time now 2026-12-02 14:05``."""
    p = ChatPrefs.from_row(prefs)
    local = _local(now, p)
    offset = local.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}" if offset and offset != "+0000" else "UTC"
    name = p.zone_name if p.zone_name == UTC_NAME else f"{p.zone_name} ({offset})"
    return f"{name}, local time now {local:%Y-%m-%d %H:%M}"


# --- parsing -----------------------------------------------------------------------------------


def parse_hhmm(text: str) -> time:
    """A time of day: ``23:00``, ``7:05``, ``23``, ``11pm``, ``7:30am``, ``12am`` (midnight)."""
    m = _TIME.match(text.strip().lower())
    if m:
        hour, minute, half = int(m.group(1)), int(m.group(2) or 0), m.group(3)
        if half is not None and 1 <= hour <= 12:
            return time(hour % 12 + (12 if half == "p" else 0), minute)
        if half is None and hour <= 23:
            return time(hour, minute)
    raise PrefError(f"'{_short(text)}' is not a time of day (use HH:MM, 24-hour, or e.g. 11pm)")


def _fmt(t: time) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


def parse_mute(arg: str, now: datetime) -> datetime:
    """``/mute 2h`` -> the UTC time the mute ends."""
    try:
        duration = parse_duration(arg)
    except OverflowError as exc:  # 99999999999d: more days than a timedelta holds
        raise PrefError(f"A mute lasts at most 365 days. {MUTE_USAGE}") from exc
    except ValueError as exc:
        raise PrefError(MUTE_USAGE) from exc
    if duration <= timedelta(0):
        raise PrefError(MUTE_USAGE)
    if duration > MAX_MUTE:
        raise PrefError(f"A mute lasts at most 365 days; use /stop to stop alerts altogether. {MUTE_USAGE}")
    return now + duration


def parse_quiet(arg: str) -> tuple[str, str] | None:
    """``23:00-07:00`` (or ``11pm-7am``, ``23-7``) -> ("23:00", "07:00"); ``off`` -> None."""
    arg = arg.strip().lower()
    if arg in ("off", "none", "no"):
        return None
    parts = re.split(r"\s*(?:[-–—]|\bto\b)\s*", arg)
    if len(parts) != 2 or not all(parts):
        raise PrefError(QUIET_USAGE)
    try:
        start, end = parse_hhmm(parts[0]), parse_hhmm(parts[1])
    except PrefError as exc:
        raise PrefError(f"{exc}. {QUIET_USAGE}") from exc
    if start == end:
        raise PrefError("Quiet hours need different start and end times. " + QUIET_USAGE)
    return _fmt(start), _fmt(end)


def parse_quiet_command(arg: str) -> tuple[tuple[str, str] | None, str | None]:
    """``/quiet``'s arguments: the span (None: off) and a time zone given after it (None: none
    given, "UTC" for UTC), e.g. ``23:00-07:00 Europe/Istanbul``."""
    try:
        return parse_quiet(arg), None
    except PrefError:
        head, _, last = arg.strip().rpartition(" ")
        if not head or not _looks_like_zone(last):
            raise
    return parse_quiet(head), parse_tz(last)  # the span's usage answer first, then did-you-mean


def _looks_like_zone(word: str) -> bool:
    """A last word that is no part of a time (``7am``, ``-``) but a time zone, right or wrong."""
    return bool(re.search(r"[a-z]", word, re.I)) and not re.fullmatch(r"[\d:.\-–—apm]+|to", word, re.I)


def parse_digest(args: list[str]) -> tuple[DigestMode, str | None]:
    """``["daily", "08:00"]`` -> ("daily", "08:00"); ``["hourly"]``; ``["off"]``."""
    mode, at, _ = parse_digest_command(args, allow_zone=False)
    return mode, at


def parse_digest_command(
    args: list[str], *, allow_zone: bool = True,
) -> tuple[DigestMode, str | None, str | None]:
    """``/digest``'s arguments: mode, daily time, and a time zone given last (None: none given,
    "UTC" for UTC), e.g. ``daily 8am Europe/Berlin``."""
    if not args:
        raise PrefError(DIGEST_USAGE)
    mode = args[0].lower()
    if mode in ("off", "hourly") and len(args) == 1:
        return mode, None, None  # type: ignore[return-value]
    if mode == "daily" and len(args) >= 2:
        when, zone = args[1:], None
        if len(when) >= 2 and _looks_like_zone(when[-1]):
            if not allow_zone:
                raise PrefError(DIGEST_USAGE)
            when, zone = when[:-1], when[-1]
        try:
            at = _fmt(parse_hhmm(" ".join(when)))
        except PrefError as exc:
            raise PrefError(f"{exc}. {DIGEST_USAGE}") from exc
        return "daily", at, parse_tz(zone) if zone is not None else None
    raise PrefError(DIGEST_USAGE)


# --- when held alerts go out -------------------------------------------------------------------


def in_quiet_hours(prefs: ChatPrefs, at: datetime) -> bool:
    """Whether ``at`` (aware) falls in the quiet hours, by the chat's wall clock."""
    prefs = ChatPrefs.from_row(prefs)
    if not (prefs.quiet_start and prefs.quiet_end):
        return False
    start, end = parse_hhmm(prefs.quiet_start), parse_hhmm(prefs.quiet_end)
    now = _local(at, prefs).time().replace(tzinfo=None)
    if start < end:
        return start <= now < end
    return now >= start or now < end  # wraps midnight


def _instants(day: date, hhmm: time, zone: tzinfo) -> list[datetime]:
    """The UTC instants at which the wall clock in ``zone`` shows ``hhmm`` on ``day``: one,
    two when a fall-back repeats it, or the change itself when a spring-forward skips it."""
    naive = datetime.combine(day, hhmm)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:  # the wall time exists
        return sorted({first, second})
    # Skipped: the first instant whose wall time is past ``hhmm`` is the change itself, between
    # the two readings (fold=1 reads the wall time with the offset after the change: earlier).
    lo, hi = min(first, second), max(first, second)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return [hi.replace(microsecond=0)]


def _next_at(at: datetime, hhmm: time, zone: tzinfo, *, every_occurrence: bool = False) -> datetime:
    """The first instant after ``at`` at which the wall clock in ``zone`` shows ``hhmm``.

    A time repeated by a fall-back counts once (its first occurrence) unless ``every_occurrence``."""
    day = at.astimezone(zone).date() - timedelta(days=1)
    for offset in range(4):
        instants = _instants(day + timedelta(days=offset), hhmm, zone)
        for instant in instants if every_occurrence else instants[:1]:
            if instant > at:
                return instant
    raise AssertionError("a time of day recurs within a few days")  # pragma: no cover


def _next_hour(at: datetime, zone: tzinfo) -> datetime:
    """The next top of the hour on the chat's wall clock (xx:30 UTC in a +05:30 zone)."""
    local = at.astimezone(zone)
    top = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return top + timedelta(hours=1)


def release_time(chat: PrefsSource, now: datetime) -> datetime | None:
    """None: send now. Otherwise when (UTC) alerts held for this chat are released as one digest.

    Digest period first (next full hour / next daily time), then mute and quiet hours push
    that later if it falls inside them; the quiet hours end wins over a digest time inside them.
    """
    prefs = ChatPrefs.from_row(chat)
    zone = prefs.zone
    now = now.astimezone(UTC)
    at = now
    if prefs.digest == "hourly":
        at = _next_hour(now, zone)
    elif prefs.digest == "daily" and prefs.digest_at:
        at = _next_at(now, parse_hhmm(prefs.digest_at), zone)
    for _ in range(6):  # mute end and quiet end settle within a few steps
        moved = at
        if prefs.muted_until and prefs.muted_until > moved:
            moved = prefs.muted_until.astimezone(UTC)
        if in_quiet_hours(prefs, moved):
            moved = _next_at(moved, parse_hhmm(prefs.quiet_end or "00:00"), zone, every_occurrence=True)
        if moved == at:
            break
        at = moved
    return None if at <= now else at


# --- what /list and /help show -----------------------------------------------------------------


def describe_mutes(chat: PrefsSource, mutes: Mapping[str, datetime]) -> list[str]:
    """Plain-text lines for the chat's muted alert keys (for /list), in the chat's time."""
    prefs = ChatPrefs.from_row(chat)
    return [f"Muted {key} until {format_local(until, prefs)}" for key, until in sorted(mutes.items())]


def describe(chat: PrefsSource, now: datetime) -> list[str]:
    """Plain-text lines describing the chat's preferences (for /help, /list), in its time."""
    prefs = ChatPrefs.from_row(chat)
    zone = prefs.zone_name
    lines = []
    if prefs.muted_until and prefs.muted_until > now:
        left = format_duration(timedelta(seconds=int((prefs.muted_until - now).total_seconds())))
        lines.append(f"Muted until {format_local(prefs.muted_until, prefs)} ({left} left)")
    if prefs.quiet_start and prefs.quiet_end:
        lines.append(f"Quiet hours {prefs.quiet_start}-{prefs.quiet_end} {zone}")
    if prefs.digest == "hourly":
        lines.append("Digest: hourly")
    elif prefs.digest == "daily":
        lines.append(f"Digest: daily at {prefs.digest_at} {zone}")
    if zone != UTC_NAME:
        lines.append(f"Time zone: {describe_zone(prefs, now)}")
    return lines
