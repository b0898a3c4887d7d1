"""What the configuration points at, loaded: the sources list, the gazetteer and the rules.

The stages take plain values (a path, a list of countries); only the root knows how the
configuration names them and resolves its relative paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.located import LocatedError, LocatedErrors, Location
from crawler.sources import Source, load_sources, parse_sources
from rules.gazetteer import Gazetteer, load_gazetteer

if TYPE_CHECKING:
    from lookout.config import Config


def sources_from_config(config: Config) -> list[Source]:
    """``config.sources``: a path (relative to the config file) or an inline list."""
    if isinstance(config.sources, str):
        path = config.resolve(config.sources)
        if not path.exists():
            raise LocatedErrors([LocatedError(Location(str(path), 1, 1), "sources file not found")])
        return load_sources(path)
    return parse_sources(config.sources, config.origin or "<config>")


SHIPPED_EXAMPLES = Path(__file__).resolve().parent.parent / "rules" / "examples"


def example_rules_warning(config: Config) -> str | None:
    """A warning when the rules in use are the packaged examples (no ``rules:`` configured, or
    pointing at them): they show what rules look like, not what an operator watches."""
    shipped = SHIPPED_EXAMPLES.resolve()
    used = [p for p in config.rule_paths() if p.resolve() == shipped or shipped in p.resolve().parents]
    if not used:
        return None
    return (
        f"running on the example rules in {shipped} (no `rules:` of your own in the configuration): "
        "they alert no one unasked; write your rule files and list them under `rules:`"
    )


def gazetteer_for(config: Config) -> Gazetteer:
    """The gazetteer the ``gazetteer:`` section asks for, cached under its ``cache_dir``."""
    return load_gazetteer(config.gazetteer.countries, config.resolve(config.gazetteer.cache_dir))
