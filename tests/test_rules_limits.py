"""A rule file cannot exhaust the machine (issue 15, point 4): YAML anchors and aliases are refused
before anything is built (nine nested levels of aliases in a kilobyte once ran `rules check` past
120 s and 4 GB), terms nest at most ``MAX_DEPTH`` levels, and a rule file has a size limit; each a
located error among the file's others. The service's rule watcher and /reload load the same path."""

from __future__ import annotations

import pytest
from test_rules_loader import config

from core.located import LocatedErrors
from lookout.cli import main
from rules.loader import MAX_RULE_FILE_BYTES, load_ruleset_texts
from rules.terms import MAX_DEPTH


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """Each level lists the previous one ``width`` times: width**levels keywords from a kilobyte."""
    lines = ["rules:", "  - id: bomb", "    title: Bomb", "    any:"]
    items = ", ".join(["{keyword: lol}"] * width)
    lines.append(f"      - any: &l0 [{items}]")
    for level in range(1, levels):
        items = ", ".join([f"{{any: *l{level - 1}}}"] * width)
        lines.append(f"      - any: &l{level} [{items}]")
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    """A rule whose terms nest ``depth`` combinators deep (the rule's own ``any`` is the first)."""
    term = "{keyword: azaz}"
    for _ in range(depth - 1):
        term = f"{{any: [{term}]}}"
    return f"rules:\n  - id: deep\n    title: Deep\n    any: [{term}]\n"


def errors_of(texts: dict[str, str]) -> list[str]:
    with pytest.raises(LocatedErrors) as info:
        load_ruleset_texts(texts)
    return [str(e) for e in info.value.errors]


@pytest.mark.timeout(20)  # unrefused, the bomb runs for minutes: the timeout turns that into a failure
def test_the_alias_bomb_is_refused_before_it_is_built():
    text = alias_bomb()
    assert len(text) < 1500
    found = errors_of({"bomb.yaml": text})
    assert found[0] == "bomb.yaml:5:14: YAML anchor '&l0' is not allowed here: write each value out"
    assert any(e.startswith("bomb.yaml:6:") and e.endswith("YAML alias '*l0' is not allowed here: write the value out")
               for e in found)
    assert len(found) == 9 + 8 * 9  # every anchor and every alias, each at its place


def test_refusal_of_one_file_leaves_the_other_files_errors_reported():
    broken = "rules:\n  - id: r\n    title: t\n    all: [{keyword: x}]\n    severty: high\n"
    found = errors_of({"a-bomb.yaml": alias_bomb(2, 2), "b.yaml": broken})
    assert any(e.startswith("a-bomb.yaml:") and "anchor" in e for e in found)
    assert any(e.startswith("b.yaml:5:5: ") and "severty" in e for e in found)


def test_terms_nest_at_most_max_depth_levels():
    ruleset = load_ruleset_texts({"ok.yaml": nested(MAX_DEPTH)})
    assert "deep" in ruleset.rules
    found = errors_of({"deep.yaml": nested(MAX_DEPTH + 1)})
    assert len(found) == 1 and f"terms nested more than {MAX_DEPTH} levels deep" in found[0]
    assert found[0].startswith("deep.yaml:4:")
    deeper = errors_of({"deeper.yaml": nested(20_000)})  # refused before the parser, which slows with depth²
    assert deeper == ["deeper.yaml:4:234: YAML nested more than 64 levels deep"]


def test_a_rule_file_over_the_size_limit_is_one_located_error():
    filler = "# " + "x" * 1000 + "\n"
    text = nested(2) + filler * (MAX_RULE_FILE_BYTES // len(filler) + 1)
    assert errors_of({"huge.yaml": text}) == [f"huge.yaml:1:1: rule file over {MAX_RULE_FILE_BYTES // 1024} KB: "
                                              "split it into several files"]


def test_rules_check_reports_the_bomb_with_locations(tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(), encoding="utf-8")
    assert main(["--config", str(config(tmp_path)), "rules", "check", str(bomb)]) != 0
    printed = capsys.readouterr()
    assert f"{bomb}:5:14: YAML anchor '&l0' is not allowed here" in printed.out + printed.err
