"""RE2's refusals in a rule author's words (issue 15, point 3): what RE2 leaves out on purpose
(look-around, back-references, atomic groups, possessive repeats) is named as such, at the
term's location, instead of "invalid perl operator"."""

from __future__ import annotations

import pytest

from core.located import LocatedErrors
from rules.loader import load_ruleset_texts
from rules.regexes import regex_problem

ENGINE = "RE2, the engine of rule regexes, has no"


@pytest.mark.parametrize(("pattern", "named"), [
    ("(?<=Azaz )road", "look-behind ((?<=...)"),
    ("(?<!football )club", "negative look-behind ((?<!...)"),
    ("Azaz(?= road)", "look-ahead ((?=...)"),
    ("Azaz(?! United)", "negative look-ahead ((?!...)"),
    ("(?>Marea)", "atomic groups ((?>...)"),
    (r"(\w+) \1", "back-references (\\1 ...)"),
    ("(?P<town>Azaz) (?P=town)", "back-references ((?P=...)"),
    ("Aza++z", "possessive repeats (++, *+)"),
])
def test_constructs_re2_leaves_out_are_named(pattern, named):
    problem = regex_problem(pattern)
    assert problem is not None and problem.startswith(f"{ENGINE} {named}")
    assert "invalid perl operator" not in problem


def test_other_mistakes_keep_re2s_own_words_and_good_patterns_pass():
    assert regex_problem("(unclosed") == "missing ): (unclosed"
    assert regex_problem(r"\bAzaz\b") is None


def test_the_loader_reports_them_at_the_term():
    text = "rules:\n  - id: r\n    title: t\n    all:\n      - regex: '(?<=Azaz )road'\n"
    with pytest.raises(LocatedErrors) as info:
        load_ruleset_texts({"r.yaml": text})
    [error] = [str(e) for e in info.value.errors]
    assert error.startswith("r.yaml:5:") and f"{ENGINE} look-behind" in error
