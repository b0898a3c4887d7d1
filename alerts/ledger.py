"""The delivery ledger: the dispatcher's side of the outbox.

A send claims its rows first: "sending", with the claim's owner (``ClaimOwner``: host, process,
instance), when it was made and a lease, committed before Telegram hears anything. So the
ledger always says which dispatcher may have a message in flight, and a claim is only ever taken
back when its owner is gone: the dispatcher that recovers holds the database's delivery lock
(``lookout.lock``), so a claim of any other owner was left by a process that no longer runs; its
own claims come back only when their lease ran out and no send of theirs is still in flight.

Everything else here is what the dispatcher asks of the queue: each chat's due rows in order
(a chat whose oldest undelivered alert is not due sends nothing: its order is kept), the next due
time, rescheduling a chat that must wait, and the counts ``lookout send`` reports.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, or_, select, update

from alerts.outbox import UNDELIVERED, OutboxRow, OutboxState
from core.store import outbox

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection

_IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit


@dataclass(frozen=True)
class ClaimOwner:
    """Who claims rows: one dispatcher in one process (the instance tells apart two processes
    that got the same pid, as every container's first process does)."""

    host: str
    pid: int
    instance: str

    @classmethod
    def current(cls) -> ClaimOwner:
        return cls(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.instance}"


# -- what is due ----------------------------------------------------------------------------------

def due_by_chat(conn: Connection, now: datetime, *, skip: Collection[str] = (),
                limit: int = 5000) -> dict[str, list[OutboxRow]]:
    """Each chat's pending rows whose time has come, oldest first, for the chats whose oldest
    undelivered row is among them (else that chat's order would break); ``skip``: chats already
    being served."""
    rows = conn.execute(
        select(outbox)
        .where(outbox.c.state == OutboxState.PENDING,
               or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now))
        .order_by(outbox.c.id)
        .limit(limit)
    )
    by_chat: dict[str, list[OutboxRow]] = defaultdict(list)
    for row in rows:
        if row.chat_id not in skip:
            by_chat[row.chat_id].append(OutboxRow.from_row(row))
    heads = _oldest_undelivered(conn, list(by_chat))
    return {chat: due for chat, due in by_chat.items() if heads.get(chat) == due[0].id}


def _oldest_undelivered(conn: Connection, chat_ids: Sequence[str]) -> dict[str, int]:
    heads: dict[str, int] = {}
    for i in range(0, len(chat_ids), _IN_CHUNK):
        chunk = list(chat_ids[i:i + _IN_CHUNK])
        rows = conn.execute(
            select(outbox.c.chat_id, func.min(outbox.c.id))
            .where(outbox.c.chat_id.in_(chunk), outbox.c.state.in_(UNDELIVERED))
            .group_by(outbox.c.chat_id)
        )
        heads.update(dict(rows.all()))
    return heads


def next_due_after(conn: Connection, now: datetime) -> datetime | None:
    """When the next pending row not yet due comes due."""
    return conn.execute(
        select(func.min(outbox.c.next_attempt_at))
        .where(outbox.c.state == OutboxState.PENDING, outbox.c.next_attempt_at > now)
    ).scalar()


def edits_due(conn: Connection, *, skip: Collection[str] = (), limit: int = 500) -> list[OutboxRow]:
    """Sent alerts whose "Also: ..." grew since: their message needs an edit."""
    rows = conn.execute(
        select(outbox).where(outbox.c.state == OutboxState.SENT, outbox.c.needs_edit.is_(True),
                             outbox.c.message_id.is_not(None))
        .order_by(outbox.c.id).limit(limit)
    )
    return [OutboxRow.from_row(r) for r in rows if r.chat_id not in skip]


def in_message(conn: Connection, chat_id: str, message_id: int) -> list[OutboxRow]:
    """The sent alerts one Telegram message shows (one alert, or the alerts of a digest)."""
    rows = conn.execute(
        select(outbox).where(outbox.c.chat_id == chat_id, outbox.c.message_id == message_id,
                             outbox.c.state == OutboxState.SENT).order_by(outbox.c.id)
    )
    return [OutboxRow.from_row(r) for r in rows]


# -- claims ---------------------------------------------------------------------------------------

def claim(conn: Connection, ids: Sequence[int], owner: ClaimOwner, now: datetime, lease_until: datetime) -> int:
    """Claim pending rows for a send; returns how many were still pending (claimed)."""
    result = conn.execute(
        update(outbox).where(outbox.c.id.in_(list(ids)), outbox.c.state == OutboxState.PENDING)
        .values(state=OutboxState.SENDING, attempts=outbox.c.attempts + 1, updated_at=now,
                claimed_by=str(owner), claimed_at=now, lease_until=lease_until)
    )
    return result.rowcount or 0


def recover_in_flight(conn: Connection, owner: ClaimOwner, now: datetime, *,
                      in_flight: Collection[int] = ()) -> int:
    """Claims whose owner is gone go back to pending, due now (Telegram may or may not have their
    message: this is the one duplicate a crash can cost). The caller holds the delivery lock, so
    another owner's claim is a dead process's; its own come back once their lease ran out and
    they are not ``in_flight``."""
    gone = or_(outbox.c.claimed_by.is_(None), outbox.c.claimed_by != str(owner),
               outbox.c.lease_until.is_(None), outbox.c.lease_until < now)
    cond = and_(outbox.c.state == OutboxState.SENDING, gone)
    if in_flight:
        cond = and_(cond, outbox.c.id.not_in(list(in_flight)))
    result = conn.execute(
        update(outbox).where(cond)
        .values(state=OutboxState.PENDING, next_attempt_at=now, updated_at=now, **_unclaimed(),
                last_error="retried after an interrupted send (may arrive twice)")
    )
    return result.rowcount or 0


def _unclaimed() -> dict[str, Any]:
    return {"claimed_by": None, "claimed_at": None, "lease_until": None}


# -- outcomes -------------------------------------------------------------------------------------

def mark_sent(conn: Connection, ids: Sequence[int], message_id: int | None, now: datetime,
              note: str | None = None) -> None:
    conn.execute(
        update(outbox).where(outbox.c.id.in_(list(ids)))
        .values(state=OutboxState.SENT, message_id=message_id, sent_at=now, updated_at=now, last_error=note,
                next_attempt_at=None, held=False, **_unclaimed())
    )


def mark_retry(conn: Connection, ids: Sequence[int], next_at: datetime, error: str, now: datetime,
               *, count_attempt: bool = True) -> None:
    values: dict[str, Any] = {"state": OutboxState.PENDING, "next_attempt_at": next_at, "last_error": error,
                              "updated_at": now, **_unclaimed()}
    if not count_attempt:  # a flood wait is not the message's fault
        values["attempts"] = case((outbox.c.attempts > 0, outbox.c.attempts - 1), else_=0)
    conn.execute(update(outbox).where(outbox.c.id.in_(list(ids))).values(**values))


def mark_failed(conn: Connection, ids: Sequence[int], error: str, now: datetime) -> None:
    conn.execute(
        update(outbox).where(outbox.c.id.in_(list(ids)))
        .values(state=OutboxState.FAILED, last_error=error, updated_at=now, next_attempt_at=None, **_unclaimed())
    )


def mark_held(conn: Connection, ids: Sequence[int], until: datetime, now: datetime) -> None:
    conn.execute(
        update(outbox).where(outbox.c.id.in_(list(ids)), outbox.c.state == OutboxState.PENDING)
        .values(held=True, next_attempt_at=until, updated_at=now)
    )


def reschedule_chat(conn: Connection, chat_id: str, at: datetime, now: datetime, reason: str | None = None) -> int:
    """Nothing pending for this chat goes before ``at`` (it is rate-limited or in a flood wait)."""
    values: dict[str, Any] = {"next_attempt_at": at, "updated_at": now}
    if reason is not None:
        values["last_error"] = reason
    result = conn.execute(
        update(outbox).where(
            outbox.c.chat_id == chat_id, outbox.c.state == OutboxState.PENDING,
            or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at < at),
        ).values(**values)
    )
    return result.rowcount or 0


def clear_edit(conn: Connection, row_id: int, now: datetime, note: str | None = None) -> None:
    values: dict[str, Any] = {"needs_edit": False, "updated_at": now}
    if note is not None:
        values["last_error"] = note
    conn.execute(update(outbox).where(outbox.c.id == row_id).values(**values))


# -- what is left ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Waiting:
    """Pending alerts and when they are due: what ``lookout send`` leaves behind."""

    count: int
    first_due: datetime | None
    last_due: datetime | None


def waiting(conn: Connection) -> Waiting:
    count, first, last = conn.execute(
        select(func.count(), func.min(outbox.c.next_attempt_at), func.max(outbox.c.next_attempt_at))
        .where(outbox.c.state.in_(UNDELIVERED))
    ).one()
    return Waiting(count, first, last)


def oldest_pending_since(conn: Connection) -> datetime | None:
    """When the oldest alert still on its way was queued (alerts held on purpose by a mute, quiet
    hours or a digest left out): how far delivery is behind."""
    return conn.execute(
        select(func.min(outbox.c.created_at))
        .where(outbox.c.state.in_(UNDELIVERED), outbox.c.held.is_(False))
    ).scalar()
