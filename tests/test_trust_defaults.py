"""Safe defaults: with no ``rules:`` in the configuration the packaged example rules load, and
they notify no chat or channel that nobody configured."""

from __future__ import annotations

from pathlib import Path

from lookout.config import Config
from lookout.loaders import example_rules_warning
from rules import load_ruleset

EXAMPLES = Path(__file__).resolve().parent.parent / "rules" / "examples"


def test_the_default_rules_are_the_examples_and_notify_no_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no rules folder here: the packaged examples are the default
    paths = Config().rule_paths()
    assert [p.resolve() for p in paths] == [EXAMPLES.resolve()]
    ruleset = load_ruleset(paths)
    assert len(ruleset.rules) == 7
    assert {rule_id: rule.notify for rule_id, rule in ruleset.rules.items() if rule.notify} == {}


def test_the_example_file_says_how_to_enable_notify():
    text = (EXAMPLES / "north-aleppo.yaml").read_text(encoding="utf-8")
    live = [line for line in text.splitlines() if line.strip().startswith("notify:")]
    assert live == []
    assert "# notify:" in text and "To enable, uncomment" in text
    assert "@north_aleppo_alerts" not in text  # not even commented out: no real channel's name


def test_running_on_the_example_rules_is_warned_about(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    warning = example_rules_warning(Config())
    assert warning is not None and "example rules" in warning and "rules:" in warning
    pointed = Config(rules=[str(EXAMPLES / "north-aleppo.yaml")])
    assert example_rules_warning(pointed) is not None
    own = tmp_path / "mine.yaml"
    own.write_text((EXAMPLES / "north-aleppo.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert example_rules_warning(Config(rules=[str(own)])) is None
