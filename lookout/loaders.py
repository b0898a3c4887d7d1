"""What the configuration points at, loaded: the sources list, the gazetteer and the rules.

The stages take plain values (a path, a list of countries); only the root knows how the
configuration names them and resolves its relative paths.
"""

from __future__ import annotations

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


def gazetteer_for(config: Config) -> Gazetteer:
    """The gazetteer the ``gazetteer:`` section asks for, cached under its ``cache_dir``."""
    return load_gazetteer(config.gazetteer.countries, config.resolve(config.gazetteer.cache_dir))
