"""Rule-author checks beyond loading: run every rule's ``examples`` and report the failures
as located errors (the example's own line), for ``lookout rules check``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.located import LocatedError, Location
from rules.engine import match
from rules.types import Text

if TYPE_CHECKING:
    from rules.index import CompiledRuleset


def run_examples(ruleset: CompiledRuleset) -> tuple[int, list[LocatedError]]:
    """(examples run, failures)."""
    failures: list[LocatedError] = []
    count = 0
    for rule in ruleset.rules.values():
        for example in rule.examples:
            count += 1
            fired = any(m.rule_id == rule.id for m in match(Text(text=example.text), ruleset))
            if fired != example.expect_match:
                where = example.location or rule.location or Location(rule.path, 1, 1)
                verb = "should match but does not" if example.expect_match else "should not match but does"
                failures.append(LocatedError(where, f"rule '{rule.id}': example {verb}: {example.text!r}"))
    return count, failures
