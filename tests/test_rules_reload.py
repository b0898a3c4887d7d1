"""Hot reload: a changed rule file is re-read; a broken edit is refused and the previous rules
stay in force; files added to or removed from a folder count as changes."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from rules import match
from rules.reload import RuleWatcher
from rules.types import Text

if TYPE_CHECKING:
    from pathlib import Path

GOOD = """\
places:
  azaz: {name: Azaz, at: [36.5866, 37.0463]}
rules:
  - {id: azaz, title: Azaz, any: [{place: azaz}]}
"""


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a visibly new mtime


def test_reload_cycle(tmp_path, caplog):
    folder = tmp_path / "rules"
    folder.mkdir()
    f = folder / "a.yaml"
    _write(f, GOOD)
    watcher = RuleWatcher([folder])
    first = watcher.current
    assert list(first.rules) == ["azaz"]
    assert watcher.poll().changed is False

    _write(f, GOOD)  # touched, same content
    assert watcher.poll().reloaded is False and watcher.current is first

    _write(
        f, GOOD.replace("aliases: []", "") + "  - {id: azaz-2, title: Azaz again, any: [{keyword: Aazaz}]}\n"
    )
    result = watcher.poll()
    assert result.changed and result.reloaded and not result.errors
    assert list(watcher.current.rules) == ["azaz", "azaz-2"]
    assert result.version == watcher.current.version != first.version

    good = watcher.current
    with caplog.at_level(logging.ERROR, logger="rules.reload"):
        _write(f, GOOD + "  - {id: broken, title: x, any: [{place: azza}]}\n")
        result = watcher.poll()
    assert result.changed and not result.reloaded
    assert [str(e) for e in result.errors] == [
        f"{f}:5:42: place: unknown place id 'azza' (did you mean 'azaz'?)"
    ]
    assert watcher.current is good  # the previous rules stay in force
    assert [m.rule_id for m in match(Text(text="Aazaz"), watcher.current)] == ["azaz-2"]
    assert "unknown place id 'azza'" in caplog.text and "keeping rules version" in caplog.text
    assert watcher.poll().changed is False  # the broken file is not re-read until it changes again

    second = folder / "b.yaml"
    _write(f, GOOD)
    _write(second, "rules:\n  - {id: b, title: B, any: [{keyword: Marea}]}\n")
    assert watcher.poll().reloaded
    assert sorted(watcher.current.rules) == ["azaz", "b"]

    second.unlink()
    assert watcher.poll().reloaded
    assert list(watcher.current.rules) == ["azaz"]
