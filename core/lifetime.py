"""A process's lifetime tied to its parent's, and its memory as the kernel counts it (Linux).

A crawl worker and its extraction processes must not outlive what started them: a SIGKILLed
service must not leave a worker crawling next to the one its replacement starts, nor a killed
worker its extraction processes. ``die_with_parent`` asks the kernel to kill this process when
its parent dies (``PR_SET_PDEATHSIG``): nothing to poll, and it holds for SIGKILL too."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def die_with_parent(parent: int | None = None) -> bool:
    """SIGKILL this process when its parent dies; False where the kernel cannot (not Linux).

    ``parent``: the pid expected as parent; if it is already gone (it died before this call),
    this process kills itself at once rather than living on as an orphan."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    return True


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of a process (this one by default), from ``/proc``; 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid or os.getpid()}/statm").read_text().split()
        return int(fields[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def children_of(pid: int | None = None) -> list[int]:
    """The direct children of a process (this one by default), from ``/proc``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid or os.getpid()}/task").glob("*/children"):
        try:
            found.extend(int(p) for p in task.read_text().split())
        except (OSError, ValueError):
            continue
    return found
