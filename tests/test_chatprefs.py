"""Chat preferences: parsing /mute, /quiet, /digest, and when held alerts are released."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.chatprefs import (
    ChatPrefs,
    PrefError,
    describe,
    in_quiet_hours,
    parse_digest,
    parse_mute,
    parse_quiet,
    release_time,
)


def at(hh: int, mm: int = 0, day: int = 10) -> datetime:
    return datetime(2024, 6, day, hh, mm, tzinfo=UTC)


def test_parse_mute_gives_end_time_and_rejects_nonsense():
    now = at(12)
    assert parse_mute("2h", now) == at(14)
    assert parse_mute("1h30m", now) == at(13, 30)
    for bad in ("soon", "", "0s", "400d"):
        with pytest.raises(PrefError):
            parse_mute(bad, now)


def test_parse_quiet_accepts_ranges_and_off():
    assert parse_quiet("23:00-07:00") == ("23:00", "07:00")
    assert parse_quiet("7:05 - 9:00") == ("07:05", "09:00")
    assert parse_quiet("off") is None
    for bad in ("23:00", "25:00-07:00", "10:00-10:00", "late-early"):
        with pytest.raises(PrefError):
            parse_quiet(bad)


def test_parse_digest_modes():
    assert parse_digest(["off"]) == ("off", None)
    assert parse_digest(["hourly"]) == ("hourly", None)
    assert parse_digest(["daily", "8:00"]) == ("daily", "08:00")
    for bad in ([], ["daily"], ["weekly"], ["daily", "24:00"], ["hourly", "08:00"]):
        with pytest.raises(PrefError):
            parse_digest(bad)


def test_no_preferences_sends_now():
    assert release_time(None, at(12)) is None
    assert release_time(ChatPrefs(), at(3)) is None


def test_quiet_hours_across_midnight():
    prefs = ChatPrefs(quiet_start="23:00", quiet_end="07:00")
    assert in_quiet_hours(prefs, at(23, 30))
    assert in_quiet_hours(prefs, at(0, 0))
    assert in_quiet_hours(prefs, at(6, 59))
    assert not in_quiet_hours(prefs, at(7, 0))
    assert not in_quiet_hours(prefs, at(22, 59))
    # Before midnight: released next morning; after midnight: the same morning.
    assert release_time(prefs, at(23, 30)) == at(7, day=11)
    assert release_time(prefs, at(2, 15)) == at(7)
    assert release_time(prefs, at(12)) is None


def test_quiet_hours_within_one_day():
    prefs = ChatPrefs(quiet_start="12:00", quiet_end="14:00")
    assert release_time(prefs, at(13)) == at(14)
    assert release_time(prefs, at(11, 59)) is None
    assert release_time(prefs, at(14)) is None


def test_mute_holds_until_it_ends_then_quiet_hours_extend_it():
    now = at(21)
    assert release_time(ChatPrefs(muted_until=at(22)), now) == at(22)
    assert release_time(ChatPrefs(muted_until=at(20)), now) is None  # expired mute
    # A mute ending inside quiet hours releases when the quiet hours end.
    prefs = ChatPrefs(muted_until=at(23, 30), quiet_start="23:00", quiet_end="07:00")
    assert release_time(prefs, now) == at(7, day=11)


def test_hourly_digest_releases_at_next_full_hour():
    prefs = ChatPrefs(digest="hourly")
    assert release_time(prefs, at(10, 17)) == at(11)
    assert release_time(prefs, at(10, 0)) == at(11)
    assert release_time(prefs, at(23, 59)) == at(0, day=11)


def test_daily_digest_releases_at_next_daily_time():
    prefs = ChatPrefs(digest="daily", digest_at="08:00")
    assert release_time(prefs, at(7, 59)) == at(8)
    assert release_time(prefs, at(8, 0)) == at(8, day=11)
    assert release_time(prefs, at(15)) == at(8, day=11)


def test_digest_time_inside_quiet_hours_waits_for_their_end():
    prefs = ChatPrefs(digest="daily", digest_at="06:00", quiet_start="23:00", quiet_end="07:00")
    assert release_time(prefs, at(12)) == at(7, day=11)
    # Hourly digest and a mute: whichever is later.
    assert release_time(ChatPrefs(digest="hourly", muted_until=at(10, 30)), at(10, 5)) == at(11)
    assert release_time(ChatPrefs(digest="hourly", muted_until=at(11, 30)), at(10, 5)) == at(11, 30)


def test_from_row_reads_store_like_rows_and_describe_lists_settings():
    row = {"muted_until": at(14), "quiet_start": "23:00", "quiet_end": "07:00", "digest": "daily",
           "digest_at": "08:00"}
    prefs = ChatPrefs.from_row(row)
    assert prefs.digest == "daily" and prefs.muted_until == at(14)
    lines = describe(row, at(12))
    assert any("Muted until 2024-06-10 14:00" in line and "2h" in line for line in lines)
    assert "Quiet hours 23:00-07:00 UTC" in lines
    assert "Digest: daily at 08:00 UTC" in lines
    assert describe(row, at(15))[0].startswith("Quiet")  # the mute is over
    assert release_time(row, at(12)) == at(14) + timedelta(hours=18)  # mute end 14:00 -> next 08:00
