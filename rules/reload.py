"""Hot reload for the service: re-read the rule files when any changed (content hash, also
files added to or removed from a folder). A set with errors is refused, its errors logged and
returned, and the previous rules stay in force."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.located import LocatedError, LocatedErrors
from rules.loader import load_ruleset, rule_files

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

    from rules.gazetteer import Gazetteer
    from rules.model import Ruleset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    changed: bool  # the files differ from the last poll
    reloaded: bool  # a new rule set is now current
    errors: tuple[LocatedError, ...] = field(default=())
    version: str = ""  # the version now in force


class RuleWatcher:
    def __init__(
        self, paths: Iterable[str | os.PathLike[str]], *, gazetteer: Gazetteer | None = None
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.gazetteer = gazetteer
        self._stats: dict[Path, tuple[int, int]] = {}
        self._digest = ""
        self.current: Ruleset = load_ruleset(self.paths, gazetteer=gazetteer)  # errors here are fatal
        self._stats, self._digest = self._fingerprint()

    def _fingerprint(self) -> tuple[dict[Path, tuple[int, int]], str]:
        stats: dict[Path, tuple[int, int]] = {}
        digest = hashlib.sha256()
        for f in rule_files(self.paths):
            try:
                st = f.stat()
                data = f.read_bytes()
            except OSError:
                continue
            stats[f] = (st.st_mtime_ns, st.st_size)
            digest.update(str(f).encode() + b"\0" + data + b"\0")
        return stats, digest.hexdigest()

    def _stats_now(self) -> dict[Path, tuple[int, int]]:
        out = {}
        for f in rule_files(self.paths):
            try:
                st = f.stat()
            except OSError:
                continue
            out[f] = (st.st_mtime_ns, st.st_size)
        return out

    def poll(self) -> ReloadResult:
        """Cheap when nothing changed (stat only); re-reads and swaps when something did."""
        if self._stats_now() == self._stats:
            return ReloadResult(False, False, version=self.current.version)
        stats, digest = self._fingerprint()
        self._stats = stats
        if digest == self._digest:  # touched, not changed
            return ReloadResult(False, False, version=self.current.version)
        self._digest = digest
        try:
            fresh = load_ruleset(self.paths, gazetteer=self.gazetteer)
        except LocatedErrors as exc:
            for err in exc.errors:
                log.error("rules not reloaded: %s", err)
            log.error("keeping rules version %s in force", self.current.version)
            return ReloadResult(True, False, tuple(exc.errors), self.current.version)
        self.current = fresh
        log.info("rules reloaded: %s (version %s)", fresh.summary(), fresh.version)
        return ReloadResult(True, True, (), fresh.version)
