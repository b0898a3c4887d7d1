"""What the test processes of one pytest run share (xdist starts several): a folder, and results
made once, by whichever process asks first, under a lock the others wait on.

Not left to ``xdist_group`` alone: with pytest 9.2 and pytest-xdist 3.8, ``--dist loadgroup``
no longer keeps a group on one worker (pytest-xdist issue #1386: xdist still renames
``item._nodeid``, which pytest 9.2 no longer reads), so a module-scoped fixture runs once per
worker that gets one of its tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import pytest


def run_folder(factory: pytest.TempPathFactory) -> Path:
    """This run's temporary folder: the one above each xdist worker's own, else the basetemp."""
    root = factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if need be) across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def once(folder: Path, name: str, make: Callable[[], Any]) -> Any:
    """``make()`` (a JSON value) run once in ``folder``'s run; every later call reads its result."""
    result = folder / f"{name}.json"
    with locked(folder / f"{name}.lock"):
        if not result.exists():
            tmp = result.with_suffix(".tmp")
            tmp.write_text(json.dumps(make()), encoding="utf-8")
            tmp.replace(result)
        return json.loads(result.read_text(encoding="utf-8"))
