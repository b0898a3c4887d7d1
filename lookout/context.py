"""What a CLI command works with: the validated config and, on first use, the store and rules.

A read-only context (commands that only look) opens an existing database without creating
anything, and raises ``NoDatabase`` when there is none yet."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect

from core.store import Store, outbox, redact_url
from lookout.loaders import gazetteer_for
from rules import load_ruleset

if TYPE_CHECKING:
    from lookout.config import Config
    from rules.index import CompiledRuleset


class NoDatabase(Exception):
    """A command that only reads found no database (nothing was crawled or subscribed yet)."""

    def __init__(self, where: str):
        self.where = where
        super().__init__(f"no database yet at {where} (`lookout crawl`, `lookout subscribe` or "
                         "`lookout run` creates it)")


class AppContext:
    def __init__(self, config: Config, *, read_only: bool = False):
        self.config = config
        self.read_only = read_only  # ``store`` never creates a database, a folder or a table

    @cached_property
    def store(self) -> Store:
        if self.read_only:
            return self.existing_store()
        return Store(self.config.database_url())

    def existing_store(self) -> Store:
        """The store of a Lookout database that exists (no file or folder made for it), brought
        up to date as every command does (tables added or columns renamed since it was made);
        ``NoDatabase`` when there is none."""
        url = self.config.database_url()
        path = sqlite_path(url)
        if path is not None and not path.is_file():
            raise NoDatabase(str(path))
        store = Store(url, create=False)
        try:
            with store.connect() as conn:
                found = inspect(conn).has_table(outbox.name, schema=store.schema)
            if found:
                store.create()  # an older database: a query must not meet a table added since
        except Exception:
            store.dispose()
            raise
        if not found:
            store.dispose()
            raise NoDatabase(str(path) if path is not None else redact_url(url))
        return store

    @cached_property
    def ruleset(self) -> CompiledRuleset:
        return load_ruleset(self.config.rule_paths(), gazetteer=gazetteer_for(self.config))

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.dispose()


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite database URL; None for other backends and in-memory databases."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.removeprefix(prefix) in ("", ":memory:"):
        return None
    return Path(url.removeprefix(prefix))
