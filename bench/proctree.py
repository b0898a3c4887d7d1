"""CPU seconds and resident memory of a process and all its descendants, read from /proc (no
psutil): what the capacity bench (bench/capacity.py) charges to the service.

A thread samples the tree every ``interval`` seconds; ``cpu()`` takes a fresh sample. The tree's
CPU is, over every process that was ever in it, its own utime + stime:

* live members count their own time plus ``cutime + cstime``: the children they have waited for
  (a child that ran and exited between two samples is covered there, never seen by us);
* a member that vanishes while its parent (as last seen) is still a live member was reaped by that
  parent (a dead process stays in /proc as a zombie until reaped): its time is now in the parent's
  ``cutime``, so it is not counted again;
* any other member that vanishes (reparented to init after its parent died, then reaped there) is
  counted at its last seen times, so its CPU is not lost.

Members are remembered by (pid, start time) once seen, whatever their parent later becomes, so a
worker orphaned by its crawl process is still charged to the tree. Peak RSS is the largest sum of
live members' RSS over the samples (shared pages count once per process, as ``ps`` shows them).

    with ProcTree(pid) as tree:
        c0 = tree.cpu(); ...; c1 = tree.cpu()   # seconds
        tree.peak_rss                            # bytes
        tree.members()                           # live (pid, start time) pairs
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Self

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_PROC = Path("/proc")


@dataclass(frozen=True)
class _Stat:
    ppid: int
    start: int  # clock ticks after boot: with the pid, names a process uniquely
    own: float  # utime + stime, seconds
    reaped: float  # cutime + cstime: waited-for children, seconds
    rss: int  # bytes


def read_stat(pid: int) -> _Stat | None:
    """One process's /proc/<pid>/stat, or None once it is gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw.rsplit(b")", 1)[1].split()
    # fields[0] is field 3 (state): field k of proc(5) is fields[k - 3].
    return _Stat(
        ppid=int(fields[1]),
        start=int(fields[19]),
        own=(int(fields[11]) + int(fields[12])) / _TICK,
        reaped=(int(fields[13]) + int(fields[14])) / _TICK,
        rss=int(fields[21]) * _PAGE,
    )


def _all_pids() -> list[int]:
    return [int(p.name) for p in _PROC.iterdir() if p.name.isdigit()]


class ProcTree:
    def __init__(self, root: int, interval: float = 0.5):
        self.root = root
        self.interval = interval
        self.peak_rss = 0
        self._live: dict[int, _Stat] = {}  # pid -> last sample of a live member
        self._departed = 0.0  # CPU of members gone without a live member's cutime covering them
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sample()

    def sample(self) -> float:
        """Read the tree now; the tree's CPU seconds so far."""
        with self._lock:
            stats = self._scan()
            self._account_departed(stats)
            self._live = stats
            self.peak_rss = max(self.peak_rss, sum(s.rss for s in stats.values()))
            return self._departed + sum(s.own + s.reaped for s in stats.values())

    def cpu(self) -> float:
        return self.sample()

    def members(self) -> list[tuple[int, int]]:
        with self._lock:
            return [(pid, s.start) for pid, s in self._live.items()]

    def _scan(self) -> dict[int, _Stat]:
        """Known members still alive, plus every process whose parent is a member."""
        stats: dict[int, _Stat] = {}
        for pid, old in self._live.items():
            s = read_stat(pid)
            if s is not None and s.start == old.start:  # same process, not a reused pid
                stats[pid] = s
        if not self._live:
            root = read_stat(self.root)
            if root is not None:
                stats[self.root] = root
        candidates = {pid: s for pid in _all_pids() if pid not in stats and (s := read_stat(pid)) is not None}
        # New members: children of members, found until no more (grandchildren born in between).
        grew = True
        while grew:
            grew = False
            for pid, s in list(candidates.items()):
                if s.ppid in stats:
                    stats[pid] = candidates.pop(pid)
                    grew = True
        return stats

    def _account_departed(self, now: dict[int, _Stat]) -> None:
        for pid, last in self._live.items():
            if pid in now:
                continue
            if last.ppid in now:
                continue  # reaped by a live member: in its cutime from now on
            self._departed += last.own + last.reaped

    # -- sampling thread -------------------------------------------------------------------------
    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="proctree", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
