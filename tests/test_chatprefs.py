"""Chat preferences: parsing /mute, /quiet, /digest, /tz, and when held alerts are released, in the
chat's time zone and across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from alerts.chatprefs import (
    ChatPrefs,
    PrefError,
    describe,
    describe_mutes,
    describe_zone,
    format_local,
    in_quiet_hours,
    parse_digest,
    parse_digest_command,
    parse_hhmm,
    parse_mute,
    parse_quiet,
    parse_quiet_command,
    parse_tz,
    release_time,
    stored_tz,
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


# --- time zones, local times of day, daylight saving -------------------------------------------

BERLIN, ISTANBUL = "Europe/Berlin", "Europe/Istanbul"


def utc(y: int, mo: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, mo, d, hh, mm, tzinfo=UTC)


def test_parse_hhmm_takes_24_hour_bare_hours_and_am_pm():
    assert [parse_hhmm(t) for t in ("23:00", "7:05", "23", "0", "11pm", "11 PM", "7am", "7:30am", "12am",
                                    "12pm", "11p.m.")] == [
        time(23), time(7, 5), time(23), time(0), time(23), time(23), time(7), time(7, 30), time(0),
        time(12), time(23)]
    for bad in ("24", "24:00", "13pm", "0am", "7m", "7:60", "noon", "", "1:2:3"):
        with pytest.raises(PrefError, match="not a time of day"):
            parse_hhmm(bad)


def test_parse_quiet_accepts_am_pm_and_bare_hours():
    assert parse_quiet("11pm-7am") == ("23:00", "07:00")
    assert parse_quiet("23-7") == ("23:00", "07:00")
    assert parse_quiet("11 pm - 7 am") == ("23:00", "07:00")
    assert parse_quiet("10pm to 6:30am") == ("22:00", "06:30")
    assert parse_quiet("12am-6am") == ("00:00", "06:00")
    with pytest.raises(PrefError, match="different start and end"):
        parse_quiet("11pm-23")


def test_parse_quiet_command_takes_a_time_zone_after_the_span():
    assert parse_quiet_command("23:00-07:00") == (("23:00", "07:00"), None)
    assert parse_quiet_command("23:00-07:00 Europe/Istanbul") == (("23:00", "07:00"), ISTANBUL)
    assert parse_quiet_command("11pm-7am europe/berlin") == (("23:00", "07:00"), BERLIN)
    assert parse_quiet_command("23-7 UTC") == (("23:00", "07:00"), "UTC")
    assert parse_quiet_command("off") == (None, None)
    with pytest.raises(PrefError, match="Did you mean: Europe/Istanbul"):
        parse_quiet_command("23:00-07:00 Europe/Istanbull")
    with pytest.raises(PrefError, match=r"'25:00' is not a time of day.*Usage: /quiet"):
        parse_quiet_command("25:00-07:00 Europe/Istanbul")  # the span is wrong first
    with pytest.raises(PrefError, match="Usage: /quiet"):
        parse_quiet_command("23:00 07:00")


def test_parse_digest_command_takes_am_pm_and_a_time_zone():
    assert parse_digest_command(["daily", "8am"]) == ("daily", "08:00", None)
    assert parse_digest_command(["daily", "8", "am"]) == ("daily", "08:00", None)
    assert parse_digest_command(["daily", "08:00", "Europe/Berlin"]) == ("daily", "08:00", BERLIN)
    assert parse_digest_command(["hourly"]) == ("hourly", None, None)
    with pytest.raises(PrefError, match="Did you mean: Europe/Berlin"):
        parse_digest_command(["daily", "08:00", "Europe/Berlinn"])
    with pytest.raises(PrefError, match="Usage: /digest"):
        parse_digest(["daily", "08:00", "Europe/Berlin"])  # the old two-value API takes no zone


def test_parse_tz_is_case_insensitive_and_suggests_close_names():
    assert parse_tz("Europe/Istanbul") == ISTANBUL
    assert parse_tz("  europe/ISTANBUL ") == ISTANBUL
    assert parse_tz("America/New York") == "America/New_York"
    assert parse_tz("berlin") == BERLIN  # a city only one zone is named after
    for reset in ("UTC", "utc", "Etc/UTC", "GMT", "Z"):
        assert parse_tz(reset) == "UTC"
    assert stored_tz("UTC") is None and stored_tz(ISTANBUL) == ISTANBUL
    with pytest.raises(PrefError, match=r"Did you mean: Europe/Istanbul") as typo:
        parse_tz("Europe/Istanbull")
    assert "Usage: /tz" in str(typo.value)
    with pytest.raises(PrefError, match="Asia/Istanbul, Europe/Istanbul"):
        parse_tz("Istanbul")  # two zones bear the name: ask
    for offset in ("UTC+3", "+03:00", "gmt-5"):
        with pytest.raises(PrefError, match="rather than an offset"):
            parse_tz(offset)
    with pytest.raises(PrefError, match="Unknown time zone"):
        parse_tz("../../etc/passwd")
    with pytest.raises(PrefError, match=r"Unknown time zone 'x{39}…'"):
        parse_tz("x" * 5000)  # echoed back short


def test_mute_out_of_range_gets_the_usage_answer_not_an_exception():
    now = at(12)
    for huge in ("99999999999d", "9" * 30, "9" * 400 + "w", "366d"):
        with pytest.raises(PrefError, match=r"at most 365 days.*Usage: /mute"):
            parse_mute(huge, now)
    with pytest.raises(PrefError, match="Usage: /mute"):
        parse_mute("9" * 5000, now)  # more digits than int() reads
    assert parse_mute("365d", now) == now + timedelta(days=365)


def test_quiet_hours_are_the_chats_local_time():
    prefs = ChatPrefs(quiet_start="23:00", quiet_end="07:00", tz=ISTANBUL)  # UTC+3 all year
    assert in_quiet_hours(prefs, at(20, 0))  # 23:00 in Istanbul
    assert not in_quiet_hours(prefs, at(19, 59))
    assert in_quiet_hours(prefs, at(3, 59)) and not in_quiet_hours(prefs, at(4, 0))
    assert release_time(prefs, at(21)) == at(4, day=11)  # 07:00 Istanbul next morning
    assert release_time(prefs, at(1)) == at(4)
    assert release_time(prefs, at(12)) is None
    # A mapping row with a tz column does the same (the dispatcher passes Chat.prefs).
    row = {"quiet_start": "23:00", "quiet_end": "07:00", "digest": "off", "tz": ISTANBUL}
    assert ChatPrefs.from_row(row).tz == ISTANBUL and in_quiet_hours(ChatPrefs.from_row(row), at(20, 0))


def test_daily_digest_stays_at_local_time_across_spring_forward():
    prefs = ChatPrefs(digest="daily", digest_at="08:00", tz=BERLIN)  # DST from 2026-03-29 02:00
    assert release_time(prefs, utc(2026, 3, 27, 12)) == utc(2026, 3, 28, 7)  # 08:00 CET
    assert release_time(prefs, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 6)  # 08:00 CEST
    assert release_time(prefs, utc(2026, 3, 29, 6, 30)) == utc(2026, 3, 30, 6)
    assert release_time(prefs, utc(2026, 3, 29, 5, 59)) == utc(2026, 3, 29, 6)


def test_daily_digest_stays_at_local_time_across_fall_back():
    prefs = ChatPrefs(digest="daily", digest_at="08:00", tz=BERLIN)  # DST ends 2026-10-25 03:00
    assert release_time(prefs, utc(2026, 10, 24, 12)) == utc(2026, 10, 25, 7)  # 08:00 CET
    assert release_time(prefs, utc(2026, 10, 23, 12)) == utc(2026, 10, 24, 6)  # 08:00 CEST
    assert release_time(prefs, utc(2026, 10, 25, 6, 30)) == utc(2026, 10, 25, 7)  # 07:30 CET: not yet


def test_a_local_time_skipped_by_spring_forward_releases_at_the_change():
    prefs = ChatPrefs(digest="daily", digest_at="02:30", tz=BERLIN)  # 02:00-03:00 does not exist
    assert release_time(prefs, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)  # 03:00 CEST, the change
    assert release_time(prefs, utc(2026, 3, 29, 1)) == utc(2026, 3, 30, 0, 30)  # then 02:30 CEST
    quiet = ChatPrefs(quiet_start="23:00", quiet_end="02:30", tz=BERLIN)
    assert release_time(quiet, utc(2026, 3, 28, 23)) == utc(2026, 3, 29, 1)
    assert in_quiet_hours(quiet, utc(2026, 3, 29, 0, 59)) and not in_quiet_hours(quiet, utc(2026, 3, 29, 1))


def test_a_local_time_repeated_by_fall_back_releases_a_digest_once():
    prefs = ChatPrefs(digest="daily", digest_at="02:30", tz=BERLIN)  # 02:00-03:00 happens twice
    assert release_time(prefs, utc(2026, 10, 24, 12)) == utc(2026, 10, 25, 0, 30)  # first 02:30 (CEST)
    assert release_time(prefs, utc(2026, 10, 25, 0, 45)) == utc(2026, 10, 26, 1, 30)  # not the second
    # By the wall clock the repeated hour is quiet again; it ends at the second 02:30.
    quiet = ChatPrefs(quiet_start="23:00", quiet_end="02:30", tz=BERLIN)
    assert release_time(quiet, utc(2026, 10, 24, 23)) == utc(2026, 10, 25, 0, 30)
    assert release_time(quiet, utc(2026, 10, 25, 1, 5)) == utc(2026, 10, 25, 1, 30)


def test_quiet_hours_across_a_dst_night_end_at_local_morning():
    prefs = ChatPrefs(quiet_start="23:00", quiet_end="07:00", tz=BERLIN)
    assert release_time(prefs, utc(2026, 3, 28, 22, 30)) == utc(2026, 3, 29, 5)  # 07:00 CEST
    assert release_time(prefs, utc(2026, 10, 24, 21, 30)) == utc(2026, 10, 25, 6)  # 07:00 CET


def test_hourly_digest_follows_the_local_top_of_the_hour():
    kolkata = ChatPrefs(digest="hourly", tz="Asia/Kolkata")  # UTC+05:30
    assert release_time(kolkata, at(4, 17)) == at(4, 30)
    assert release_time(kolkata, at(4, 30)) == at(5, 30)
    assert release_time(ChatPrefs(digest="hourly", tz=BERLIN), at(10, 17)) == at(11)


def test_describe_shows_local_times_with_the_zone_name():
    now = utc(2026, 12, 2, 9)
    prefs = ChatPrefs(muted_until=utc(2026, 12, 2, 11), quiet_start="23:00", quiet_end="07:00",
                      digest="daily", digest_at="08:00", tz=ISTANBUL)
    assert describe(prefs, now) == [
        "Muted until 2026-12-02 14:00 Europe/Istanbul (2h left)",
        "Quiet hours 23:00-07:00 Europe/Istanbul",
        "Digest: daily at 08:00 Europe/Istanbul",
        "Time zone: Europe/Istanbul (UTC+03:00), local time now 2026-12-02 12:00",
    ]
    assert describe_mutes(prefs, {"rule-b": utc(2026, 12, 3, 21, 30), "place:azaz": utc(2026, 12, 2, 10)}) == [
        "Muted place:azaz until 2026-12-02 13:00 Europe/Istanbul",
        "Muted rule-b until 2026-12-04 00:30 Europe/Istanbul",
    ]
    assert describe_mutes(None, {"x": utc(2026, 12, 2, 10)}) == ["Muted x until 2026-12-02 10:00 UTC"]
    assert format_local(utc(2026, 7, 1, 6), {"tz": BERLIN}) == "2026-07-01 08:00 Europe/Berlin"  # CEST
    assert describe_zone(ChatPrefs(tz="Asia/Kolkata"), now) == (
        "Asia/Kolkata (UTC+05:30), local time now 2026-12-02 14:30")


def test_an_unknown_stored_zone_counts_as_utc():
    prefs = ChatPrefs(quiet_start="23:00", quiet_end="07:00", tz="Mars/Olympus_Mons")
    assert prefs.zone_name == "UTC"
    assert release_time(prefs, at(23, 30)) == at(7, day=11)
    assert describe(prefs, at(12)) == ["Quiet hours 23:00-07:00 UTC"]
