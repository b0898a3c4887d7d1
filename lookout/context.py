"""What a CLI command works with: the validated config and, on first use, the store and rules."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from core.store import Store
from lookout.loaders import gazetteer_for
from rules import load_ruleset

if TYPE_CHECKING:
    from lookout.config import Config
    from rules.index import CompiledRuleset


class AppContext:
    def __init__(self, config: Config):
        self.config = config

    @cached_property
    def store(self) -> Store:
        return Store(self.config.database_url())

    @cached_property
    def ruleset(self) -> CompiledRuleset:
        return load_ruleset(self.config.rule_paths(), gazetteer=gazetteer_for(self.config))

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.dispose()
