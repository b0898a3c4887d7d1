"""The rule language and its matching engine (pure: no I/O beyond reading rule files).

from rules import load_ruleset, match, scan, match_and_scan, Ruleset
"""

from rules.engine import match, match_and_scan, scan
from rules.loader import load_ruleset
from rules.model import Ruleset

__all__ = ["Ruleset", "load_ruleset", "match", "match_and_scan", "scan"]
