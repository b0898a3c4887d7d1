"""The matching engine on the seeds and on look-alikes: word bounds, case, folding, Arabic,
longest-name-wins, areas with a gazetteer, within, evidence and snippets."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from tests_support import EXAMPLE_CHANNEL, example_rules_notifying

from lookout.commands.rules import read_article
from rules import engine, load_ruleset, match, scan
from rules.gazetteer import Gazetteer, parse_geonames_dump
from rules.geo import describe_position
from rules.types import Match, PlaceRef, Severity, TermHit, Text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "rules" / "examples"

# GeoNames dump rows (19 tab-separated columns): a few real places for gazetteer tests.
DUMP_ROWS = [
    # id, name, ascii, alternates, lat, lon, class, code, cc, pop
    (
        2524818,
        "Gioiosa Marea",
        "Gioiosa Marea",
        "Giojosa Marea,Giujusa",
        38.17373,
        14.89932,
        "P",
        "PPL",
        "IT",
        7000,
    ),
    (
        163345,
        "Tall Rif‘at",
        "Tall Rif`at",
        "Tal Refaat,Tell Rifat,تل رفعت",
        36.47229,
        37.09471,
        "P",
        "PPL",
        "SY",
        20514,
    ),
    (99072, "Mosul", "Mosul", "Al Mawsil,الموصل", 36.335, 43.11889, "P", "PPLA", "IQ", 1739800),
    # Two villages called Sarrin: one near Kobani, one far south (more populous, made up for the test).
    (900001, "Sarrin", "Sarrin", "صرين", 36.6575, 38.2036, "P", "PPL", "SY", 900),
    (900002, "Sarrin", "Sarrin", "", 33.2, 36.4, "P", "PPL", "SY", 5000),
    (900003, "Some Hill", "Some Hill", "", 36.5, 37.0, "T", "HLL", "SY", 0),  # not a populated place
]


def write_dump(path: Path) -> Path:
    lines = []
    for gid, name, ascii_, alts, lat, lon, fclass, fcode, cc, pop in DUMP_ROWS:
        cols = [
            str(gid),
            name,
            ascii_,
            alts,
            str(lat),
            str(lon),
            fclass,
            fcode,
            cc,
            "",
            "",
            "",
            "",
            "",
            str(pop),
            "",
            "0",
            "Asia/Damascus",
            "2020-01-01",
        ]
        lines.append("\t".join(cols))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ruleset():
    return load_ruleset([EXAMPLES])


@pytest.fixture(scope="module")
def gazetteer(tmp_path_factory) -> Gazetteer:
    dump = write_dump(tmp_path_factory.mktemp("geonames") / "XX.txt")
    return Gazetteer(parse_geonames_dump(dump))


@pytest.fixture(scope="module")
def gaz_ruleset(gazetteer):
    return load_ruleset([EXAMPLES], gazetteer=gazetteer)


def rule_ids(doc, rs) -> list[str]:
    return [m.rule_id for m in match(doc, rs)]


def check_evidence(doc, m: Match) -> None:
    """Every hit's offsets point at its text; every mark in the snippet at a hit."""
    for h in m.hits:
        if h.field in ("title", "text"):
            assert getattr(doc, h.field)[h.start : h.end] == h.found
    found = {h.found for h in m.hits}
    for a, b in m.marks:
        assert m.snippet[a:b] in found


# -- the seeds -----------------------------------------------------------------------------------

SEED_EXPECTED = {
    "000": {
        "rules": [
            "is-near-azaz",
            "is-near-marea",
            "is-north-aleppo",
            "sdf-manbij",
            "north-aleppo-escalation",
        ],
        "places": {"aleppo", "marea", "kafr-kalbin", "azaz", "manbij"},
        "groups": {"islamic-state", "fsa", "sdf", "ypg"},
        "found": {
            "Islamic State",
            "IS",
            "Daesh",
            "Marea",
            "Azaz",
            "Kafr Kalbin",
            "Syria Democratic Forces",
            "SDF",
        },
    },
    "001": {
        # ISIS and Marea are never within 60 words of each other: no is-near-marea.
        "rules": [
            "is-near-azaz",
            "is-north-aleppo",
            "fighting-around-kafrah",
            "north-aleppo-escalation",
            "nusra-north-aleppo",
        ],
        "places": {"aleppo", "kafrah", "azaz", "jarez", "marea"},
        "groups": {"islamic-state", "ypg", "jaysh-al-thuwar", "nusra", "fsa"},
        "found": {"ISIS", "Kafrah", "Aazaz", "Marea", "Jarez", "Kurdish People’s Protection Units", "Nusra"},
    },
    "002": {
        "rules": ["is-near-azaz", "is-near-marea", "is-north-aleppo", "north-aleppo-escalation"],
        "places": {"aleppo", "azaz", "marea"},
        "groups": {"islamic-state", "fsa", "ypg", "sdf", "nusra"},
        "found": {"Islamic State", "IS", "ISIS", "Azaz", "Marea", "Nusra Front"},
    },
}


@pytest.mark.parametrize("seed", sorted(SEED_EXPECTED))
def test_seed_matches(seed, seed_files, ruleset):
    path = next(f for f in seed_files if f.name.startswith(seed))
    doc = read_article(str(path))
    expected = SEED_EXPECTED[seed]
    matches = match(doc, ruleset)
    assert [m.rule_id for m in matches] == expected["rules"]
    for m in matches:
        check_evidence(doc, m)
        assert m.snippet
    mentions = scan(doc, ruleset)
    assert {p.id for p in mentions.places} == expected["places"]
    assert set(mentions.groups) == expected["groups"]
    assert expected["found"] <= {h.found for h in mentions.hits}


def test_seed_001_ignores_lowercase_is_and_typo(seed_files, ruleset):
    doc = read_article(str(seed_files[1]))
    found = [h.found for h in scan(doc, ruleset).hits]
    assert "The YPG insists that is not involved" in doc.text
    assert "is" not in found  # the verb
    assert "YGP" not in found  # a typo is not an alias


def test_seed_000_bracketed_is_and_daesh(seed_files, ruleset, tmp_path):
    doc = read_article(str(seed_files[0]))
    m = next(m for m in match(doc, ruleset) if m.rule_id == "is-near-azaz")
    assert m.severity == "high" and m.notify == ()
    notifying = load_ruleset([example_rules_notifying(tmp_path)])
    m = next(m for m in match(doc, notifying) if m.rule_id == "is-near-azaz")
    assert m.notify == (EXAMPLE_CHANNEL,)
    hits = scan(doc, ruleset).hits
    assert any(h.found == "IS" and doc.text[h.start - 1] == "[" for h in hits)
    assert any(h.found == "Daesh" for h in hits)


# -- tricky cases ----------------------------------------------------------------------------------


def test_arabic_with_hamza_forms_and_proclitic(ruleset):
    doc = Text(text="اشتباكات عنيفة بين داعش وفصائل المعارضة في محيط أعزاز ومارع")
    ms = match(doc, ruleset)
    assert "is-near-azaz" in [m.rule_id for m in ms]
    assert "is-near-marea" in [m.rule_id for m in ms]
    mentions = scan(doc, ruleset)
    assert {p.id for p in mentions.places} == {"azaz", "marea"}
    assert {h.found for h in mentions.hits} == {"داعش", "أعزاز", "مارع"}  # و of ومارع not in the hit
    for m in ms:
        check_evidence(doc, m)


def test_arabic_word_containing_a_name_is_not_it(ruleset):
    # مارعين is not مارع; "السداعشي" is not داعش (letters before that are not a proclitic).
    assert scan(Text(text="قرية مارعين والسداعشي"), ruleset).places == ()
    assert scan(Text(text="قرية مارعين والسداعشي"), ruleset).groups == ()


def test_diacritics_and_curly_apostrophes(ruleset):
    for spelling in ("I‘zāz", "A’zaz", "A`zaz", "Iʿzaz", "AAZAZ"):
        doc = Text(text=f"ISIS fighters advanced toward {spelling} on Friday.")
        ms = match(doc, ruleset)
        assert "is-near-azaz" in [m.rule_id for m in ms], spelling
        hit = next(h for h in ms[0].hits if h.kind == "place")
        assert hit.found == spelling and doc.text[hit.start : hit.end] == spelling


def test_offsets_survive_expanding_fold(ruleset):
    # "ﬁ" folds to two letters and "ß" to "ss": offsets must still point into the original.
    doc = Text(text="Straße ﬁghts: Islamic State near Azaz")
    m = next(m for m in match(doc, ruleset) if m.rule_id == "is-near-azaz")
    check_evidence(doc, m)
    assert {h.found for h in m.hits} == {"Islamic State", "Azaz"}


def test_lowercase_is_is_the_verb(ruleset):
    doc = Text(title="The plan is to hold Azaz", text="Azaz is calm; this is a market town near Azaz.")
    assert rule_ids(doc, ruleset) == []
    assert scan(doc, ruleset).groups == ()


def test_all_caps_is_in_sports_headline(ruleset):
    doc = Text(title="IS THE TITLE RACE OVER? AZAZ SPORT CLUB BEAT MAREA 3-0")
    assert rule_ids(doc, ruleset) == []
    assert scan(doc, ruleset).groups == ()
    # The same alias in ordinary text is the group:
    assert "is-near-azaz" in rule_ids(Text(title="Syria: IS fighters enter Azaz"), ruleset)


def test_football_excludes(ruleset):
    doc = Text(text="ISIS fans watched the football match in Azaz.")
    assert "is-near-azaz" not in rule_ids(doc, ruleset)


def test_longer_gazetteer_place_containing_a_watched_name(gaz_ruleset, ruleset):
    doc = Text(text="Islamic State of mind: a summer in Gioiosa Marea, Sicily.")
    assert "is-near-marea" not in rule_ids(doc, gaz_ruleset)
    assert all(p.id != "marea" for p in scan(doc, gaz_ruleset).places)
    # Without the gazetteer there is nothing to know better with: the watched name is found.
    assert "is-near-marea" in rule_ids(doc, ruleset)


def test_longer_watched_name_wins_over_shorter(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text(
        "places:\n"
        "  kalbin: {name: Kalbin, at: [36.0, 37.0]}\n"
        "  kafr-kalbin: {name: Kafr Kalbin, at: [36.5, 37.1]}\n"
        "rules:\n"
        "  - {id: r, title: t, all: [{place: kalbin}]}\n",
        encoding="utf-8",
    )
    rs = load_ruleset([f])
    doc = Text(text="They captured the village of Kafr Kalbin.")
    assert [p.id for p in scan(doc, rs).places] == ["kafr-kalbin"]
    assert rule_ids(doc, rs) == []


def test_area_sees_gazetteer_place_and_not_far_away_one(gaz_ruleset, ruleset):
    near = Text(text="IS fighters shelled Tall Rif‘at overnight.")
    m = next(m for m in match(near, gaz_ruleset) if m.rule_id == "is-north-aleppo")
    place = next(p for p in m.places if p.area == "north-aleppo")
    assert place.name == "Tall Rif‘at" and place.id == "geonames:163345" and not place.watched
    assert place.distance_km is not None and 0 < place.distance_km < 50
    # From the landmark a reader knows (the place the Azaz corridor is drawn around), not the
    # nearest hamlet.
    assert describe_position(place, gaz_ruleset) == "13 km S of Azaz"  # about 12.5 km S, 4 km E
    check_evidence(near, m)
    far = Text(text="IS fighters shelled Mosul overnight.")
    assert rule_ids(far, gaz_ruleset) == []
    assert "is-north-aleppo" not in rule_ids(near, ruleset)  # no gazetteer: unknown village


def test_ambiguous_gazetteer_name_nearest_then_most_populous(gaz_ruleset):
    index = gaz_ruleset.index
    with_context = engine.analyse(Text(text="Fighting in Sarrin, south of Manbij."), gaz_ruleset)
    sarrin = next(fp.ref for fp in with_context.places if fp.ref.name == "Sarrin")
    assert sarrin.id == "geonames:900001"  # the one near Manbij
    alone = engine.analyse(Text(text="Fighting in Sarrin."), gaz_ruleset)
    assert next(fp.ref for fp in alone.places).id == "geonames:900002"  # the most populous
    assert index.gazetteer is not None


def test_gazetteer_names_need_a_capital(gaz_ruleset):
    found = engine.analyse(Text(text="ISIS near sarrin and mosul"), gaz_ruleset)
    assert found.places == []


def test_snippet_is_the_sentence_with_marks(ruleset):
    doc = Text(
        text="Markets were quiet. On Friday ISIS fighters advanced toward Azaz from the east. Later, rain."
    )
    m = next(m for m in match(doc, ruleset) if m.rule_id == "is-near-azaz")
    assert m.snippet == "On Friday ISIS fighters advanced toward Azaz from the east."
    assert [m.snippet[a:b] for a, b in m.marks] == ["ISIS", "Azaz"]
    assert [(p.id, p.lat, p.lon) for p in m.places] == [("azaz", 36.5866, 37.0463)]
    assert Match.from_json(m.to_json()) == m


def test_evidence_json_holds_every_field():
    # to_dict is written out for speed: it must still carry every field, nested ones included.
    hit = TermHit("area", "north-aleppo", "Marea", "text", 3, 8)
    place = PlaceRef("marea", "Marea", 36.6, 37.2, True, area="north-aleppo", distance_km=12.5)
    m = Match("r", "T", Severity.HIGH, (hit,), (place,), ("isis",), "s", ((0, 1),), ("@chan",))
    assert m.to_dict() == json.loads(json.dumps(asdict(m)))
    assert Match.from_json(m.to_json()) == m
    assert type(m.to_dict()["severity"]) is str and Match.from_json(m.to_json()).severity is Severity.HIGH


def test_snippet_of_a_long_run_is_a_window():
    doc = Text(text=("word " * 200) + "ISIS near Azaz " + ("word " * 200))
    rs = load_ruleset([EXAMPLES])
    m = next(m for m in match(doc, rs) if m.rule_id == "is-near-azaz")
    assert m.snippet.startswith("…") and m.snippet.endswith("…")
    assert len(m.snippet) < 2 * 120 + 30
    assert [m.snippet[a:b] for a, b in m.marks] == ["ISIS", "Azaz"]


def test_within_counts_words(ruleset):
    close = Text(text="Islamic State " + "x " * 50 + "near Marea.")
    far = Text(text="Islamic State " + "x " * 70 + "near Marea.")
    assert "is-near-marea" in rule_ids(close, ruleset)
    assert "is-near-marea" not in rule_ids(far, ruleset)


TERMS_YAML = """
places:
  azaz: {name: Azaz, at: [36.5866, 37.0463]}
groups:
  sdf: {name: Syrian Democratic Forces, aliases: [SDF]}
rules:
  - id: two-of
    title: two of three
    all:
      - at_least: {n: 2, of: [{keyword: shelling}, {keyword: clashes}, {regex: "air ?strikes?"}]}
  - id: exact-case
    title: the party called Future
    any: [{keyword: Future, case: sensitive}]
  - id: from-source
    title: this source, about Azaz, in Arabic
    all: [{source: Enab Baladi}, {lang: ar}, {place: azaz}]
  - id: nested
    title: SDF not with Azaz unless shelling
    all: [{group: sdf}]
    none:
      - all: [{place: azaz}, {none: [{keyword: shelling}]}]
"""


@pytest.fixture
def terms_rs(tmp_path):
    f = tmp_path / "terms.yaml"
    f.write_text(TERMS_YAML, encoding="utf-8")
    return load_ruleset([f])


def test_at_least_and_regex(terms_rs):
    assert rule_ids(Text(text="Shelling and airstrikes overnight."), terms_rs) == ["two-of"]
    assert rule_ids(Text(text="Shelling overnight."), terms_rs) == []
    m = match(Text(text="Clashes, then air strikes."), terms_rs)[0]
    assert {(h.kind, h.found) for h in m.hits} == {("keyword", "Clashes"), ("regex", "air strikes")}


def test_case_sensitive_keyword(terms_rs):
    assert rule_ids(Text(text="The Future movement met."), terms_rs) == ["exact-case"]
    assert rule_ids(Text(text="In the future we meet."), terms_rs) == []


def test_source_and_lang_terms(terms_rs):
    doc = Text(text="Azaz market", source="Enab Baladi", language="ar")
    assert rule_ids(doc, terms_rs) == ["from-source"]
    assert rule_ids(Text(text="Azaz market", source="Enab Baladi", language="en"), terms_rs) == []


def test_nested_none(terms_rs):
    assert rule_ids(Text(text="SDF statement."), terms_rs) == ["nested"]
    assert rule_ids(Text(text="SDF statement on Azaz."), terms_rs) == []
    assert rule_ids(Text(text="SDF statement on Azaz shelling."), terms_rs) == ["nested"]


def test_only_rules_with_a_found_term_are_evaluated(ruleset, monkeypatch):
    calls: list[str] = []
    real = engine.evaluate

    def counting(rule, *a, **k):
        calls.append(rule.id)
        return real(rule, *a, **k)

    monkeypatch.setattr(engine, "evaluate", counting)
    match(Text(text="Nusra fighters entered Damascus."), ruleset)
    assert calls == ["nusra-north-aleppo"]
    calls.clear()
    match(Text(text="Weather report: sunny."), ruleset)
    assert calls == []


def test_resolve_and_suggest(ruleset):
    assert ruleset.resolve("Azaz").id == "azaz"
    assert ruleset.resolve("i‘zāz").kind == "place"
    assert (ruleset.resolve("ISIS").kind, ruleset.resolve("ISIS").id) == ("group", "islamic-state")
    assert ruleset.resolve("is-near-azaz").kind == "rule"
    assert ruleset.resolve("Atlantis") is None
    assert ruleset.suggest("Azas")[0] == "azaz"
    assert "kafrah" in ruleset.suggest("Kafra h")


def test_describe_position(ruleset):
    kafrah = ruleset.places["kafrah"]
    ref = PlaceRef("x", "Somewhere", 36.60, 37.05, False)
    assert describe_position(ref, ruleset) == "2 km N of Azaz"
    near_azaz = PlaceRef("geonames:1", "I‘zāz", 36.58662, 37.04628, False)
    assert describe_position(near_azaz, ruleset) is None  # the watched town itself
    assert describe_position(
        PlaceRef(kafrah.id, kafrah.name, kafrah.lat, kafrah.lon, True), ruleset
    ) == "9 km SE of Azaz"
    # The area the place satisfied names its own landmark.
    assert describe_position(
        PlaceRef(kafrah.id, kafrah.name, kafrah.lat, kafrah.lon, True, area="azaz-corridor"), ruleset
    ) == "9 km SE of Azaz"


def test_match_and_scan_in_one_pass_equals_both_calls(ruleset, gaz_ruleset):
    from support.newssite import arabic_article, load_seed_articles

    from rules import match_and_scan

    pages = [*load_seed_articles(), arabic_article()]
    for rs in (ruleset, gaz_ruleset):
        for page in pages:
            doc = Text(page.title, page.text, page.lang, "test")
            both = match_and_scan(doc, rs)
            assert both == (match(doc, rs), scan(doc, rs))
    assert any(match_and_scan(Text(p.title, p.text), ruleset)[0] for p in pages)  # not vacuous
