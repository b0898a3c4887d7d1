"""The rule language: rule files loaded into a compiled ruleset, and documents matched against it.

* ``rules.engine`` is pure: ``match(doc, ruleset) -> list[Match]``, ``scan`` and
  ``match_and_scan`` read and write nothing.
* ``rules.loader`` reads rule files (and the GeoJSON files they name); ``rules.reload`` reads
  them again when they change.
* ``rules.gazetteer`` reads GeoNames data and writes its cache under ``gazetteer.cache_dir``.

from rules import load_ruleset, match, scan, match_and_scan, Ruleset
"""

from rules.engine import match, match_and_scan, scan
from rules.loader import load_ruleset
from rules.model import Ruleset

__all__ = ["Ruleset", "load_ruleset", "match", "match_and_scan", "scan"]
