"""Loading rule files: every problem reported at once, located, with did-you-mean; and
`lookout rules check` on good and broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests_support import EXAMPLE_CHANNEL, example_rules_notifying

from core.located import LocatedErrors
from lookout.cli import main
from rules import load_ruleset
from rules.types import Severity

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "rules" / "examples"

BROKEN = """\
places:
  azaz:
    name: Azaz
    at: [96.5, 37.0]
    colour: red
  marea:
    name: [Marea]
    at: [36.48, 37.19]
groups:
  islamic-state:
    name: Islamic State
areas:
  bowtie:
    polygon: [[0, 0], [1, 1], [0, 1], [1, 0]]
  fence:
    geojson: fences/missing.geojson
rules:
  - id: r1
    title: one
    all:
      - group: islamic-stat
      - regex: "(unclosed"
      - place: azaz
  - id: r1
    title: two
    severity: urgent
    any:
      - keyword: x
"""

OTHER = """\
places:
  azaz:
    name: Azaz again
    at: [36.58, 37.04]
rules:
  - id: r3
    title: three
    all:
      - area: fenc
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_example_file_loads(tmp_path):
    rs = load_ruleset([EXAMPLES])
    assert rs.summary() == "1 file(s), 7 places, 6 groups, 3 areas, 7 rules"
    assert rs.places["azaz"].aliases == ("Aazaz", "A'zaz", "I'zaz", "إعزاز", "أعزاز")
    assert (rs.places["marea"].lat, rs.places["marea"].lon) == (36.4806, 37.1994)
    assert rs.areas["azaz-corridor"].radius_km == 25 and rs.areas["azaz-corridor"].around == "azaz"
    assert rs.areas["north-aleppo"].contains(36.5, 37.0) and not rs.areas["north-aleppo"].contains(36.2, 37.1)
    rule = rs.rules["is-near-azaz"]
    assert (rule.severity, rule.within, rule.notify) == ("high", 60, ())  # shipped: notifies no one
    enabled = load_ruleset([example_rules_notifying(tmp_path)])
    assert enabled.rules["is-near-azaz"].notify == (EXAMPLE_CHANNEL,)
    assert rule.severity is Severity.HIGH and rs.rules["sdf-manbij"].severity is Severity.MEDIUM
    assert {t.key for t in rule.positive_terms} == {
        ("group", "islamic-state"),
        ("place", "azaz"),
        ("area", "azaz-corridor"),
    }
    assert len(rs.version) == 16


def test_all_errors_at_once_with_locations(tmp_path):
    a = write(tmp_path / "rules", "a.yaml", BROKEN)
    write(tmp_path / "rules", "b.yaml", OTHER)
    write(tmp_path / "rules", "c.yaml", "places: [unclosed\n")
    with pytest.raises(LocatedErrors) as info:
        load_ruleset([tmp_path / "rules"])
    lines = str(info.value).splitlines()
    pa, pb, pc = (str(tmp_path / "rules" / n) for n in ("a.yaml", "b.yaml", "c.yaml"))
    expected = [
        f"{pa}:4:9: place 'azaz': at: latitude 96.5 out of range (-90..90)",
        f"{pa}:5:5: unknown key 'colour' in place 'azaz'",
        f"{pa}:7:11: place 'marea': name: expected a non-empty text, got a list",
        f"{pa}:14:14: area 'bowtie': invalid polygon: Self-intersection",
        f"{pa}:16:14: area 'fence': geojson file not found",
        f"{pa}:21:16: group: unknown group id 'islamic-stat' (did you mean 'islamic-state'?)",
        f"{pa}:22:16: rule 'r1': bad regex '(unclosed': missing )",
        f"{pa}:24:9: duplicate rule id 'r1' (first defined at {pa}:18:9)",
        f"{pa}:26:15: rule 'r1': severity must be one of low, medium, high",
        f"{pb}:2:3: duplicate place id 'azaz' (first defined at {pa}:2:3)",
        f"{pb}:9:15: area: unknown area id 'fenc' (did you mean 'fence'?)",
        f"{pc}:2:1: YAML syntax",
    ]
    assert len(lines) == len(expected), "\n".join(lines)
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(want), f"{line!r} does not start with {want!r}"
    assert a.exists()


def test_structure_errors(tmp_path):
    f = write(
        tmp_path,
        "r.yaml",
        """\
rules:
  - id: bad terms
    title: t
    all:
      - football
      - {place: azaz, group: x}
      - at_least: {n: 3, of: [{keyword: a}, {keyword: b}]}
      - {keyword: Future, case: upper}
  - title: no id
    none: [{keyword: a}]
    within: -3
    examples: {match: "not a list"}
topics: []
""",
    )
    with pytest.raises(LocatedErrors) as info:
        load_ruleset([f])
    text = str(info.value)
    for fragment in (
        ":2:9: rule id 'bad terms': use letters",
        ":5:9: rule 'bad terms': a term is a mapping such as '- place: azaz', got 'football'"
        " (write '- keyword: football')",
        ":6:9: rule 'bad terms': a term needs exactly one of",
        ":7:23: rule 'bad terms': at_least.n is 3 but 'of' has 2 terms",
        ":8:33: rule 'bad terms': case: expected 'sensitive' or 'insensitive'",
        ":9:5: rules[1]: missing id",
        ":9:5: rules[1]: needs 'all' or 'any'",
        ":11:13: rules[1]: within: expected a positive number of words",
        ":12:23: rules[1]: examples.match: expected a list of texts",
        ":13:1: unknown key 'topics' in the rule file",
    ):
        assert fragment in text, f"missing {fragment!r} in:\n{text}"


def test_bad_radius_does_not_hide_a_bad_centre(tmp_path):
    f = write(
        tmp_path,
        "r.yaml",
        """\
places:
  azaz: {name: Azaz, at: [36.58, 37.04]}
areas:
  ring:
    around: azazz
    radius_km: -3
  dot:
    around: [136.0, 37.0]
    radius_km: 0
""",
    )
    with pytest.raises(LocatedErrors) as info:
        load_ruleset([f])
    text = str(info.value)
    for fragment in (
        ":5:13: place: unknown place id 'azazz' (did you mean 'azaz'?)",
        ":6:16: area 'ring': radius_km: expected a positive number",
        ":8:13: area 'dot': around: latitude 136.0 out of range",
        ":9:16: area 'dot': radius_km: expected a positive number",
    ):
        assert fragment in text, f"missing {fragment!r} in:\n{text}"


def test_geojson_area_relative_to_file(tmp_path):
    fence = {
        "type": "Feature",
        "properties": {},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[36.9, 36.4], [37.3, 36.4], [37.3, 36.7], [36.9, 36.7], [36.9, 36.4]]],
        },
    }
    write(tmp_path / "fences", "n.geojson", json.dumps(fence))
    f = write(
        tmp_path,
        "r.yaml",
        """\
places:
  azaz: {name: Azaz, at: [36.5866, 37.0463]}
  manbij: {name: Manbij, at: [36.5281, 37.9549]}
areas:
  north: {geojson: fences/n.geojson}
rules:
  - {id: r, title: t, all: [{keyword: shelling}, {area: north}]}
""",
    )
    rs = load_ruleset([f])
    assert rs.areas["north"].contains(36.5866, 37.0463)
    assert not rs.areas["north"].contains(36.5281, 37.9549)


def test_check_command_ok(capsys, tmp_path):
    assert main(["--config", str(config(tmp_path)), "rules", "check", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "ok: 1 file(s), 7 places, 6 groups, 3 areas, 7 rules, 18 examples pass"


def test_check_command_defaults_to_config_rules(capsys, tmp_path):
    assert main(["--config", str(config(tmp_path, rules=[str(EXAMPLES)])), "rules", "check"]) == 0
    assert "7 rules" in capsys.readouterr().out


def test_check_command_errors(capsys, tmp_path):
    write(tmp_path / "rules", "a.yaml", BROKEN)
    assert main(["--config", str(config(tmp_path)), "rules", "check", str(tmp_path / "rules")]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 9
    assert f"{tmp_path / 'rules' / 'a.yaml'}:21:16: group: unknown group id 'islamic-stat'" in captured.out
    assert "9 error(s)" in captured.err


def test_check_command_failing_examples(capsys, tmp_path):
    write(
        tmp_path / "rules",
        "r.yaml",
        """\
places:
  azaz: {name: Azaz, at: [36.5866, 37.0463]}
rules:
  - id: azaz-anything
    title: anything about Azaz
    any: [{place: azaz}]
    examples:
      match: ["Azaz today", "nothing here"]
      no_match: ["Azaz market"]
""",
    )
    path = tmp_path / "rules" / "r.yaml"
    assert main(["--config", str(config(tmp_path)), "rules", "check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{path}:8:29: rule 'azaz-anything': example should match but does not: 'nothing here'",
        f"{path}:9:18: rule 'azaz-anything': example should not match but does: 'Azaz market'",
    ]


def config(tmp_path: Path, rules: list[str] | None = None) -> Path:
    cfg = tmp_path / "lookout.yaml"
    cfg.write_text(
        json.dumps(
            {
                "database": f"sqlite:///{tmp_path / 'lookout.db'}",
                "rules": rules or [str(EXAMPLES)],
                "gazetteer": {"countries": [], "cache_dir": str(tmp_path / "gazetteer")},
            }
        ),
        encoding="utf-8",
    )
    return cfg
