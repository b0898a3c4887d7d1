"""The delivery lock: one ``lookout run`` (or ``lookout send``) per database.

Whoever holds it is the database's only dispatcher, which is what lets a dispatcher take back
the claims of any other owner (``alerts.ledger``): their process is gone.

On SQLite a lock file next to the database holds an exclusive ``flock`` for the life of the
process and records who holds it (pid, host, start time), so a refused second instance can say
which process to look at. The kernel drops a ``flock`` when its holder dies, so a file left by a
crashed process is stale by construction and is simply taken over. On PostgreSQL a session-level
advisory lock (``pg_try_advisory_lock``) on a dedicated connection does the same; the holder is
found through ``pg_locks`` and the ``application_name`` it set.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

from core.store import Store, utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection


class LockHeld(RuntimeError):
    """Another ``lookout run`` owns this database."""

    def __init__(self, holder: str, where: str):
        super().__init__(f"the database's delivery lock is held ({where}) by {holder}")
        self.holder = holder
        self.where = where


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started: str
    command: str = "lookout run"

    def describe(self) -> str:
        return f"{self.command}, pid {self.pid} on {self.host}, started {self.started}"


def _me(command: str) -> Holder:
    return Holder(os.getpid(), socket.gethostname(), utcnow().isoformat(timespec="seconds"), command)


def lock_path_for(database_url: str) -> Path | None:
    """The lock file for a SQLite database URL, or None for other backends."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or database_url.startswith(prefix + ":memory:"):
        return None
    return Path(database_url.removeprefix(prefix) + ".lock")


class FileLock:
    def __init__(self, path: Path, command: str = "lookout run"):
        self.path = path
        self.command = command
        self._fd: int | None = None

    def acquire(self, patience: float = 2.0) -> Holder:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        # ``lookout status`` peeks with a momentary shared lock: a start that coincides with it
        # must not be refused, so a conflict is retried briefly before it counts.
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                holder = read_holder(self.path)
                os.close(fd)
                raise LockHeld(holder.describe() if holder else "unknown process", str(self.path)) from None
        me = _me(self.command)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(me.__dict__).encode())
        os.fsync(fd)
        self._fd = fd
        return me

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            # Empty the file first: a reader never mistakes a released lock for a live holder.
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None


def read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return Holder(int(data["pid"]), str(data["host"]), str(data["started"]),
                      str(data.get("command") or "lookout run"))
    except (KeyError, TypeError, ValueError):
        return None


def file_lock_state(path: Path) -> Holder | None:
    """Who holds the lock now (None when free or stale), without taking it."""
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(path)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # nobody holds it: any content left is from a process that died
    finally:
        os.close(fd)


def _advisory_key(store: Store) -> int:
    # One lock per schema, so test schemas on a shared server do not collide.
    return zlib.crc32(f"lookout-service:{store.schema or 'public'}".encode()) & 0x7FFFFFFF


class AdvisoryLock:
    def __init__(self, store: Store, command: str = "lookout run"):
        self.store = store
        self.command = command
        self.key = _advisory_key(store)
        self._conn: Connection | None = None

    def acquire(self) -> Holder:
        me = _me(self.command)
        conn = self.store.engine.connect()
        try:
            # What a refused process quotes (PostgreSQL keeps 63 bytes of it).
            conn.execute(text("select set_config('application_name', :name, false)"),
                         {"name": me.describe()[:63]})
            got = conn.execute(text("select pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            conn.commit()
            if not got:
                holder = advisory_holder(conn, self.key)
                raise LockHeld(holder or "unknown process", "PostgreSQL advisory lock")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return me

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("select pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.commit()
        finally:
            self._conn.close()
            self._conn = None


def advisory_holder(conn: Connection, key: int) -> str | None:
    row = conn.execute(
        text(
            "select a.application_name, a.pid, a.client_addr from pg_locks l "
            "join pg_stat_activity a on a.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted and l.objid::text::bigint = :k "
            "and l.database = (select oid from pg_database where datname = current_database()) "
            "and l.pid <> pg_backend_pid()"
        ),
        {"k": key},
    ).first()
    if row is None:
        return None
    name, backend, addr = row
    return f"{name or 'unnamed client'} (backend {backend}, client {addr or 'local'})"


class ServiceLock:
    """The right lock for the store's backend, taken by ``command``. Use as a context manager."""

    def __init__(self, store: Store, command: str = "lookout run"):
        path = lock_path_for(store.url)
        self.impl: FileLock | AdvisoryLock = (FileLock(path, command) if path is not None
                                              else AdvisoryLock(store, command))
        self.holder: Holder | None = None
        self.acquired_at: datetime | None = None

    def acquire(self) -> Holder:
        self.holder = self.impl.acquire()
        self.acquired_at = utcnow()
        return self.holder

    def release(self) -> None:
        self.impl.release()

    def __enter__(self) -> ServiceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def service_holder(store: Store) -> str | None:
    """For ``lookout status``: who runs the service on this database now, if anyone."""
    path = lock_path_for(store.url)
    if path is not None:
        holder = file_lock_state(path)
        return holder.describe() if holder else None
    with store.connect() as conn:
        return advisory_holder(conn, _advisory_key(store))
