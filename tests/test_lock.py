"""The service lock: a second instance on the same database is refused and told who holds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import lookout.lock as lock_module
from lookout.lock import LockHeld, ServiceLock, lock_path_for, service_holder

HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from core.store import Store
    from lookout.lock import ServiceLock
    store = Store(sys.argv[1], schema=sys.argv[2] or None, create=False)
    lock = ServiceLock(store)
    lock.acquire()
    print("locked", flush=True)
    sys.stdin.readline()
    lock.release()
    """
)


def _hold_in_subprocess(store):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, store.url, store.schema or ""],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


class _FakeClock:
    """``lookout.lock``'s view of time: its sleeps advance the clock instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_second_instance_refused_with_holders_pid(store, monkeypatch):
    proc = _hold_in_subprocess(store)
    # The file lock retries a conflict for 2 s before refusing (a ``lookout status`` peek must not
    # refuse a start, see below); on a fake clock that patience costs no real time.
    clock = _FakeClock()
    try:
        with monkeypatch.context() as patched, pytest.raises(LockHeld) as info:
            patched.setattr(lock_module, "time", clock)
            ServiceLock(store).acquire()
        if store.dialect == "sqlite":
            assert clock.slept >= 2.0, "refused before the patience ran out"
        assert f"pid {proc.pid}" in str(info.value) or f"pid={proc.pid}" in str(info.value)
        assert service_holder(store) is not None
        assert str(proc.pid) in service_holder(store)
    finally:
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(timeout=10)
    # Released on exit: the next instance gets it.
    lock = ServiceLock(store)
    lock.acquire()
    lock.release()
    assert service_holder(store) is None


def test_lock_of_a_dead_process_is_taken_over(sqlite_store):
    path = lock_path_for(sqlite_store.url)
    assert path is not None and path.name.endswith(".db.lock")
    # A process that died without cleaning up left its record but holds no flock.
    path.write_text(json.dumps({"pid": 999999, "host": "elsewhere", "started": "2020-01-01T00:00:00"}))
    assert service_holder(sqlite_store) is None
    with ServiceLock(sqlite_store) as lock:
        assert lock.holder.pid == os.getpid()
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_killed_holder_releases_lock(sqlite_store):
    proc = _hold_in_subprocess(sqlite_store)
    proc.kill()
    proc.wait(timeout=10)
    with ServiceLock(sqlite_store) as lock:
        assert lock.holder.pid == os.getpid()


def test_start_coinciding_with_a_status_peek_is_not_refused(sqlite_store):
    """``lookout status`` takes a momentary shared flock to see whether the lock is held; a
    service starting at that moment must still get the lock."""
    import fcntl
    import threading

    path = lock_path_for(sqlite_store.url)
    path.touch()
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # what file_lock_state does

    def release():
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    timer = threading.Timer(0.3, release)
    timer.start()
    try:
        with ServiceLock(sqlite_store) as lock:
            assert lock.holder.pid == os.getpid()
    finally:
        timer.join()
