"""Subscriptions in the store, routing an article's matches to chats, and the CLI commands."""

from __future__ import annotations

import importlib
import itertools
import sys
import tempfile
import types
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from tests_support import example_rules_notifying

from alerts import subscriptions as subs
from alerts.keys import alert_key, parse_alert_key
from core.store import chats, rule_mutes
from rules.geo import haversine_km
from rules.types import Match, Mentions, PlaceRef

NOW = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)

# Real coordinates; Kafrah is ~9 km east of Azaz, Manbij ~80 km east.
AZAZ = (36.5864, 37.0441)
KAFRAH = (36.5553, 37.1383)
MANBIJ = (36.5281, 37.9549)


TINY_RULES = f"""
places:
  azaz: {{name: Azaz, aliases: [Aazaz, "A'zaz"], at: [{AZAZ[0]}, {AZAZ[1]}]}}
  kafrah: {{name: Kafrah, at: [{KAFRAH[0]}, {KAFRAH[1]}]}}
  manbij: {{name: Manbij, at: [{MANBIJ[0]}, {MANBIJ[1]}]}}
groups:
  isis: {{name: Islamic State, aliases: [ISIS, Daesh]}}
rules:
  - id: is-near-azaz
    title: Islamic State near the Azaz corridor
    severity: high
    all: [{{group: isis}}, {{place: azaz}}]
  - id: manbij-clashes
    title: Clashes in Manbij
    severity: medium
    all: [{{place: manbij}}, {{keyword: clashes}}]
    notify: ["@lookout_manbij"]
"""


def make_ruleset():
    """A tiny ruleset, loaded from YAML like the real ones."""
    from rules import load_ruleset

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny.yaml"
        path.write_text(TINY_RULES, encoding="utf-8")
        return load_ruleset([path])


@pytest.fixture
def ruleset():
    return make_ruleset()


@pytest.fixture(autouse=True)
def recipient_type(monkeypatch):
    """``alerts.outbox.Recipient`` when the delivery half is in place, else a test stand-in."""
    try:
        return importlib.import_module("alerts.outbox").Recipient
    except ImportError:
        @dataclass(frozen=True)
        class Recipient:
            chat_id: str
            alert_key: str
            match: Match | None
            label: str | None

        stand_in = types.ModuleType("alerts.outbox")
        stand_in.Recipient = Recipient  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "alerts.outbox", stand_in)
        return Recipient


def place(pid: str, lat_lon: tuple[float, float]) -> PlaceRef:
    return PlaceRef(pid, pid.title(), lat_lon[0], lat_lon[1], watched=True)


def match(rule_id: str, severity: str = "high", places=(), notify=()) -> Match:
    return Match(rule_id=rule_id, title=rule_id, severity=severity, hits=(), places=tuple(places),
                 notify=tuple(notify))


# --- store CRUD ------------------------------------------------------------------------------


def test_add_list_remove(store):
    with store.begin() as conn:
        assert subs.add(conn, "100", "place", "azaz", now=NOW)
        assert not subs.add(conn, "100", "place", "azaz", now=NOW)  # no duplicate
        assert subs.add(conn, "100", "group", "isis", now=NOW)
        assert subs.add(conn, "100", "rule", "is-near-azaz", now=NOW)
        assert subs.add(conn, "100", "near", "azaz", 10, now=NOW)
        assert not subs.add(conn, "100", "near", "azaz", 25, now=NOW)  # updates the distance
        assert subs.add(conn, "-200", "place", "azaz", now=NOW)
    with store.connect() as conn:
        mine = subs.list_for_chat(conn, "100")
        assert [(s.kind, s.target, s.km) for s in mine] == [
            ("group", "isis", None), ("near", "azaz", 25.0), ("place", "azaz", None),
            ("rule", "is-near-azaz", None),
        ]
        assert {s.alert_key for s in mine} == {"group:isis", "near:azaz", "place:azaz", "is-near-azaz"}
        kinds = dict(conn.execute(select(chats.c.chat_id, chats.c.kind)).all())
        assert kinds == {"100": "private", "-200": "group"}
    with store.begin() as conn:
        assert subs.remove(conn, "100", "group", "isis")
        assert not subs.remove(conn, "100", "group", "isis")
        assert subs.remove_key(conn, "100", "near:azaz")
        assert subs.remove_key(conn, "100", "is-near-azaz")
        assert subs.remove_all(conn, "100") == 1
    with store.connect() as conn:
        assert subs.list_for_chat(conn, "100") == []
        assert [s.chat_id for s in subs.list_for_chat(conn, "-200")] == ["-200"]


def test_add_rejects_bad_kinds_and_distances(store):
    with store.begin() as conn:
        with pytest.raises(ValueError):
            subs.add(conn, "1", "town", "azaz")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            subs.add(conn, "1", "near", "azaz", 0)


def test_pause_unpause_and_mutes(store):
    with store.begin() as conn:
        subs.add(conn, "100", "place", "azaz", now=NOW)
        subs.set_paused(conn, "100", True, "403 blocked by the user")
    with store.connect() as conn:
        row = subs.get_chat(conn, "100")
        assert row.paused and row.paused_reason == "403 blocked by the user"
        assert subs.list_all(conn)[0].paused
    with store.begin() as conn:
        subs.ensure_chat(conn, "100", unpause=True, title="Tester")
        subs.mute_rule(conn, "100", "is-near-azaz", NOW + timedelta(hours=1))
        subs.mute_rule(conn, "100", "is-near-azaz", NOW + timedelta(hours=24))  # extends, no duplicate
        subs.mute_rule(conn, "100", "place:azaz", NOW - timedelta(hours=1))  # already over
    with store.connect() as conn:
        row = subs.get_chat(conn, "100")
        assert not row.paused and row.paused_reason is None and row.title == "Tester"
        assert subs.active_mutes(conn, "100", NOW) == {"is-near-azaz": NOW + timedelta(hours=24)}
        assert len(conn.execute(select(rule_mutes)).all()) == 2
    with store.begin() as conn:
        assert subs.unmute_rules(conn, "100") == 2


def test_alert_keys_round_trip():
    for kind, target in (("place", "azaz"), ("group", "isis"), ("near", "azaz"), ("rule", "is-near-azaz")):
        assert parse_alert_key(alert_key(kind, target)) == (kind, target)
    assert alert_key("rule", "x") == "x"
    assert parse_alert_key("odd:rule") == ("rule", "odd:rule")


def test_haversine():
    assert haversine_km(36.0, 37.0, 37.0, 37.0) == pytest.approx(111.2, abs=0.1)
    assert 8 < subs.haversine_km(*AZAZ, *KAFRAH) < 10
    assert 75 < subs.haversine_km(*AZAZ, *MANBIJ) < 85


# --- routing ---------------------------------------------------------------------------------


def route(store, ruleset, matches, mentions, now=NOW):
    with store.connect() as conn:
        return {r.chat_id: r for r in subs.recipients_for(conn, matches, mentions, ruleset, now)}


def test_place_and_group_subscriptions_get_every_mention(store, ruleset, recipient_type):
    with store.begin() as conn:
        subs.add(conn, "1", "place", "azaz", now=NOW)
        subs.add(conn, "2", "group", "isis", now=NOW)
        subs.add(conn, "3", "place", "manbij", now=NOW)
    got = route(store, ruleset, [], Mentions(places=(place("azaz", AZAZ),), groups=("isis",)))
    assert set(got) == {"1", "2"}
    assert isinstance(got["1"], recipient_type)
    assert (got["1"].alert_key, got["1"].match, got["1"].label) == ("place:azaz", None, "Azaz")
    assert (got["2"].alert_key, got["2"].label) == ("group:isis", "Islamic State")
    assert route(store, ruleset, [], Mentions()) == {}


def test_rule_near_and_notify_routing(store, ruleset):
    m_azaz = match("is-near-azaz", places=[place("kafrah", KAFRAH)])
    m_manbij = match("manbij-clashes", "medium", places=[place("manbij", MANBIJ)], notify=["@lookout_manbij"])
    with store.begin() as conn:
        subs.add(conn, "10", "rule", "is-near-azaz", now=NOW)
        subs.add(conn, "11", "rule", "manbij-clashes", now=NOW)
        subs.add(conn, "12", "near", "azaz", 10, now=NOW)  # Kafrah is ~9 km away
        subs.add(conn, "13", "near", "azaz", 5, now=NOW)  # too close for Kafrah
        subs.add(conn, "14", "near", "manbij", 1, now=NOW)
    got = route(store, ruleset, [m_azaz, m_manbij], Mentions())
    assert set(got) == {"10", "11", "12", "14", "@lookout_manbij"}
    assert got["10"].alert_key == "is-near-azaz" and got["10"].match is m_azaz
    assert got["11"].match is m_manbij
    assert got["12"].alert_key == "near:azaz" and got["12"].match is m_azaz
    assert "10 km of Azaz" in got["12"].label
    assert got["14"].match is m_manbij
    assert got["@lookout_manbij"].alert_key == "manbij-clashes"
    # Only the rule that matched reaches its subscribers.
    assert set(route(store, ruleset, [m_manbij], Mentions())) == {"11", "14", "@lookout_manbij"}


def test_paused_chats_and_muted_rules_are_skipped(store, ruleset):
    m = match("is-near-azaz", places=[place("azaz", AZAZ)])
    mentions = Mentions(places=(place("azaz", AZAZ),))
    with store.begin() as conn:
        for chat in ("1", "2", "3", "4"):
            subs.add(conn, chat, "rule", "is-near-azaz", now=NOW)
        subs.add(conn, "4", "place", "azaz", now=NOW)
        subs.set_paused(conn, "1", True, "blocked")
        subs.mute_rule(conn, "2", "is-near-azaz", NOW + timedelta(hours=24))
        subs.mute_rule(conn, "3", "is-near-azaz", NOW - timedelta(minutes=1))  # expired
        subs.mute_rule(conn, "4", "is-near-azaz", NOW + timedelta(hours=24))
    got = route(store, ruleset, [m], mentions)
    assert set(got) == {"3", "4"}
    # Chat 4 muted the rule, but still watches Azaz: it gets the article for that.
    assert got["4"].alert_key == "place:azaz" and got["4"].match is None
    assert set(route(store, ruleset, [m], mentions, now=NOW + timedelta(days=2))) == {"2", "3", "4"}


def test_one_alert_per_chat_prefers_the_richest_subscription(store, ruleset):
    high = match("is-near-azaz", "high", places=[place("azaz", AZAZ)])
    medium = match("manbij-clashes", "medium", places=[place("manbij", MANBIJ)])
    with store.begin() as conn:
        subs.add(conn, "1", "place", "azaz", now=NOW)
        subs.add(conn, "1", "group", "isis", now=NOW)
        subs.add(conn, "1", "rule", "manbij-clashes", now=NOW)
        subs.add(conn, "1", "rule", "is-near-azaz", now=NOW)
    with store.connect() as conn:
        recipients = subs.recipients_for(
            conn, [medium, high], Mentions(places=(place("azaz", AZAZ),), groups=("isis",)), ruleset, NOW
        )
    assert len(recipients) == 1
    assert recipients[0].alert_key == "is-near-azaz" and recipients[0].match is high


def test_equal_severity_goes_to_the_rule_written_first(store, tmp_path):
    from rules import load_ruleset

    # "azaz-shelling" sorts before "is-near-azaz" but is written after it: the file order wins,
    # whatever the ids' alphabetical order or the order the engine returned the matches in.
    path = tmp_path / "order.yaml"
    path.write_text(TINY_RULES + """
  - id: azaz-shelling
    title: Shelling in Azaz
    severity: high
    all: [{place: azaz}, {keyword: shelling}]
""", encoding="utf-8")
    ordered = load_ruleset([path])
    first = match("is-near-azaz", "high", places=[place("azaz", AZAZ)])
    later = match("azaz-shelling", "high", places=[place("azaz", AZAZ)])
    with store.begin() as conn:
        subs.add(conn, "1", "rule", "azaz-shelling", now=NOW)
        subs.add(conn, "1", "rule", "is-near-azaz", now=NOW)
    with store.connect() as conn:
        recipients = subs.recipients_for(conn, [later, first], Mentions(), ordered, NOW)
    assert [(r.chat_id, r.alert_key) for r in recipients] == [("1", "is-near-azaz")]


def test_near_subscription_of_a_place_gone_from_the_rules_is_ignored(store, ruleset):
    with store.begin() as conn:
        subs.add(conn, "1", "near", "vanished", 50, now=NOW)
    assert route(store, ruleset, [match("is-near-azaz", places=[place("azaz", AZAZ)])], Mentions()) == {}


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli(sqlite_store, ruleset):
    from lookout.cli import build_parser
    from lookout.config import Config
    from lookout.context import AppContext

    ctx = AppContext(Config(database=sqlite_store.url))
    ctx.__dict__["store"] = sqlite_store
    ctx.__dict__["ruleset"] = ruleset
    parser = build_parser()

    def run(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        return args.func(args, ctx)

    return run


def test_cli_subscribe_list_unsubscribe(cli, sqlite_store, capsys):
    assert cli("subscribe", "--chat", "123", "--place", "A'zaz") == 0
    assert "subscribed to place azaz" in capsys.readouterr().out
    assert cli("subscribe", "--chat", "@lookout_channel", "--group", "daesh") == 0
    assert cli("subscribe", "--chat", "-1001", "--rule", "is-near-azaz") == 0
    assert cli("subscribe", "--chat", "123", "--near", "Kafrah", "--km", "15") == 0
    capsys.readouterr()
    with sqlite_store.begin() as conn:
        subs.set_paused(conn, "-1001", True, "chat not found")
    assert cli("subscribers", "list") == 0
    out = capsys.readouterr().out.splitlines()
    header = out[0]
    assert header.split() == ["CHAT", "KIND", "TARGET", "KM", "PAUSED"]
    starts = [header.index(name) for name in ("CHAT", "KIND", "TARGET", "KM", "PAUSED")] + [None]
    rows = [[line[a:b].strip() for a, b in itertools.pairwise(starts)] for line in out[1:]]
    assert ["123", "near", "kafrah", "15", "no"] in rows
    assert ["@lookout_channel", "group", "isis", "", "no"] in rows
    assert ["-1001", "rule", "is-near-azaz", "", "yes (chat not found)"] in rows
    assert cli("unsubscribe", "--chat", "123", "--place", "Azaz") == 0
    assert cli("unsubscribe", "--chat", "123", "--all") == 0
    assert "removed 1 subscription(s)" in capsys.readouterr().out
    with sqlite_store.connect() as conn:
        assert subs.list_for_chat(conn, "123") == []
        assert len(subs.list_all(conn)) == 2


def test_cli_rejects_unknown_and_mismatched_names(cli, sqlite_store, capsys):
    assert cli("subscribe", "--chat", "123", "--place", "Azzaz") == 1
    err = capsys.readouterr().err
    assert "unknown place 'Azzaz'" in err and "Did you mean: azaz" in err
    assert cli("subscribe", "--chat", "123", "--place", "ISIS") == 1
    assert "is a group (isis), not a place" in capsys.readouterr().err
    assert cli("subscribe", "--chat", "123", "--near", "Azaz") == 1
    assert "--km" in capsys.readouterr().err
    assert cli("subscribe", "--chat", "not-a-chat", "--place", "Azaz") == 1
    assert cli("unsubscribe", "--chat", "123", "--place", "Azaz") == 1
    assert "not subscribed" in capsys.readouterr().err
    with sqlite_store.connect() as conn:
        assert subs.list_all(conn) == []


def test_cli_registers_three_commands():
    from lookout.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["subscribers"])  # the action is required
    args = parser.parse_args(["subscribers", "list"])
    assert args.func.__name__ == "cmd_list"
    assert parser.parse_args(["unsubscribe", "--chat", "1", "--all"]).all


def test_routing_a_seed_article_through_the_real_engine(store, seed_files, tmp_path):
    """The example rules (their notify channel on) on a sample article: the engine's output in,
    recipients out."""
    from rules import load_ruleset, match, scan
    from rules.types import Text

    ruleset = load_ruleset([example_rules_notifying(tmp_path)])
    raw = seed_files[0].read_text(encoding="utf-8")
    doc = Text(title=raw.splitlines()[0], text=raw)
    matches, mentions = match(doc, ruleset), scan(doc, ruleset)
    by_rule = {m.rule_id: m for m in matches}
    # What the article is about, per the engine (the routing below depends on it).
    assert "sdf-manbij" in by_rule and "is-near-azaz" in by_rule
    assert "azaz" in {p.id for p in mentions.places} and "nusra" not in mentions.groups
    notify = by_rule["is-near-azaz"].notify
    assert notify

    with store.begin() as conn:
        subs.add(conn, "1", "place", "azaz", now=NOW)
        subs.add(conn, "2", "rule", "sdf-manbij", now=NOW)
        subs.add(conn, "3", "near", "manbij", 5, now=NOW)
        subs.add(conn, "4", "group", "nusra", now=NOW)  # not in this article
        subs.add(conn, "5", "near", "jarez", 0.5, now=NOW)  # no matched place that close
    with store.connect() as conn:
        got = {r.chat_id: r for r in subs.recipients_for(conn, matches, mentions, ruleset, NOW)}
    assert set(got) == {"1", "2", "3", *notify}
    assert got["1"].alert_key == "place:azaz" and got["1"].label == "Azaz"
    assert got["2"].match == by_rule["sdf-manbij"]
    assert got["3"].alert_key == "near:manbij" and any(p.id == "manbij" for p in got["3"].match.places)
    assert got[notify[0]].alert_key in {m.rule_id for m in matches if notify[0] in m.notify}
