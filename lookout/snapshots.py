"""The rule and sources files the service has accepted, and the snapshots crawl children read.

Crawl subprocesses read the rules and sources from copies of the files the service last accepted,
never from the files on disk: a broken edit must not reach a crawl while the old rules and
schedule stay. The copies live in the service's state directory (``state_dir_for``).

``AcceptedRules.reload`` is the one way the rules are reloaded (the service's rule-file watcher
and the bot's /reload both come here): a changed set is re-read, an accepted one snapshotted, a
refused one leaves the previous rules and their snapshot in force. ``AcceptedSources.poll`` does
the same for the sources file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.located import LocatedErrors
from crawler.sources import load_sources
from lookout.loaders import sources_from_config
from rules.loader import load_ruleset_texts

if TYPE_CHECKING:
    from crawler.sources import Source
    from lookout.config import Config
    from rules.model import Ruleset
    from rules.reload import ReloadResult, RuleWatcher

log = logging.getLogger(__name__)

KEPT_RULE_SNAPSHOTS = 3  # the newest few: crawls already running may still read an older one
SIDE_FILES = ("*.geojson", "*/*.geojson", "*.json", "*/*.json")  # fences a rule file refers to


def state_dir_for(config: Config) -> Path:
    """Where the service keeps its snapshots: next to a SQLite database, else ``var/service-state``
    in the config file's folder."""
    url = config.database_url()
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite:///")).parent / "service-state"
    return config.base_dir / "var" / "service-state"


class AcceptedRules:
    """The rules in force (held by a ``RuleWatcher``) and their snapshot for crawl children."""

    def __init__(self, watcher: RuleWatcher, state_dir: Path):
        self.watcher = watcher
        self.root = state_dir / "rules"
        self.paths: list[str] = []  # the snapshot's rule files; empty: none taken yet
        self.errors: list[str] = []  # why the last edit was refused; empty once one is accepted
        self._snapshot()

    @property
    def current(self) -> Ruleset:
        return self.watcher.current

    def reload(self) -> ReloadResult:
        """Re-read the rule files if they changed (file I/O: run it in a thread)."""
        result = self.watcher.poll()
        if result.reloaded:
            self.errors = []
            self._snapshot()
        elif result.changed:
            self.errors = [str(e) for e in result.errors]
        return result

    def _snapshot(self) -> None:
        """Copy the accepted rule files where crawl children read them. Only written when the files
        on disk still hold exactly the accepted version (else the next poll sees the change)."""
        ruleset = self.watcher.current
        try:
            texts = {str(f): Path(f).read_text(encoding="utf-8") for f in ruleset.files}
            if load_ruleset_texts(texts).version != ruleset.version:
                return
        except Exception as exc:
            log.info("rule snapshot deferred: %s", exc)
            return
        root = self.root / ruleset.version
        paths = []
        for f in ruleset.files:
            src = Path(f).resolve()
            dest = root / src.relative_to(src.anchor)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(texts[str(f)], encoding="utf-8")
            _copy_side_files(src.parent, dest.parent)
            paths.append(str(dest))
        self.paths = paths
        log.info("rules in force version=%s files=%d", ruleset.version, len(paths))
        # Older snapshots are no longer read by new crawls.
        snapshots = sorted(self.root.iterdir(), key=lambda p: p.stat().st_mtime)
        for old in snapshots[:-KEPT_RULE_SNAPSHOTS]:
            shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class SourcesPoll:
    """What a look at the sources file found."""

    changed: bool  # the file differs from the last look
    accepted: list[Source] | None = None  # the edited sources, when the edit is accepted
    errors: tuple[str, ...] = ()  # why the edit was refused


class AcceptedSources:
    """The sources the service last accepted from ``config.sources`` and, when that is a file,
    the snapshot of it crawl children read."""

    def __init__(self, config: Config, state_dir: Path):
        self.config = config
        self.root = state_dir / "sources"
        self.path: str | None = None  # the snapshot file; None: inline sources, or none taken yet
        self.fingerprint: str | None = None  # of the file as last read, accepted or refused

    @property
    def from_file(self) -> bool:
        """The sources are a file (which ``poll`` watches), not a list inline in the config."""
        return isinstance(self.config.sources, str)

    def load(self) -> list[Source]:
        """The sources at start: errors are fatal (``LocatedErrors``), there is nothing to keep."""
        data = self._read()
        sources = sources_from_config(self.config)
        self.fingerprint = _sha(data)
        self._snapshot(data, sources)
        return sources

    def poll(self) -> SourcesPoll:
        """Re-read the sources file if it changed (file I/O: run it in a thread)."""
        data = self._read()
        fingerprint = _sha(data)
        if fingerprint == self.fingerprint:
            return SourcesPoll(changed=False)
        self.fingerprint = fingerprint
        try:
            fresh = sources_from_config(self.config)
        except LocatedErrors as exc:
            errors = tuple(str(e) for e in exc.errors)
            for e in errors:
                log.error("sources not reloaded: %s", e)
            return SourcesPoll(changed=True, errors=errors)
        self._snapshot(data, fresh)
        return SourcesPoll(changed=True, accepted=fresh)

    def _read(self) -> bytes | None:
        if not isinstance(self.config.sources, str):
            return None
        try:
            return self.config.resolve(self.config.sources).read_bytes()
        except OSError:
            return None

    def _snapshot(self, data: bytes | None, accepted: list[Source]) -> None:
        """Keep the accepted sources file where crawl children read it: a child reading the file
        on disk would fail on a refused edit while the schedule carries on with the old one."""
        if data is None:
            return
        path = self.root / f"{_sha(data)}.yaml"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if list(load_sources(path)) != list(accepted):
                return  # the file changed while being read: the next poll takes it
        except Exception as exc:
            log.info("sources snapshot deferred: %s", exc)
            return
        previous, self.path = self.path, str(path)
        if previous and previous != self.path:
            with contextlib.suppress(OSError):
                Path(previous).unlink()


def _copy_side_files(src_dir: Path, dest_dir: Path) -> None:
    """GeoJSON fences referenced relative to a rule file travel with the snapshot."""
    for pattern in SIDE_FILES:
        for f in src_dir.glob(pattern):
            target = dest_dir / f.relative_to(src_dir)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)


def _sha(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None
