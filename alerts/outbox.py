"""The outbox: alerts waiting for delivery, one row per chat × story × alert key; queueing them
and the queries operators run (``alerts.ledger`` has the dispatcher's).

``enqueue`` runs inside the caller's transaction (the one that stores the article and its
matches), so a match never exists without its alert rows. A chat gets one alert per story: a
syndicated copy (same story, another outlet) adds "Also: <outlet>" to the chat's first alert
(edited in place when it was already sent) instead of a new message.

States (``OutboxState``): pending → sending → sent, or back to pending (retry), failed (gave
up), cancelled (the chat blocked us or is gone). A row in "sending" is claimed by a dispatcher,
committed before the Bot API call (``alerts.ledger``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select, update

from alerts.keys import SubscriptionKind, parse_alert_key
from core.store import articles, chats, insert_ignore, outbox
from rules.types import Severity

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection, Row

    from rules.types import Match


class OutboxState(StrEnum):
    """Where one alert row stands, as the ``outbox.state`` column stores it."""

    PENDING = "pending"  # waiting for its chat's turn (or for ``next_attempt_at``)
    SENDING = "sending"  # handed to Telegram; a crash leaves it here, and a restart resends it
    SENT = "sent"
    FAILED = "failed"  # gave up after ``telegram.max_attempts``; ``lookout alerts retry`` requeues
    CANCELLED = "cancelled"  # its chat blocked the bot or was deleted


UNDELIVERED = (OutboxState.PENDING, OutboxState.SENDING)  # what a chat still has coming


@dataclass(frozen=True)
class Recipient:
    """One chat that should hear about an article, and why."""

    chat_id: str
    alert_key: str  # alerts.keys: a rule id, or "place:<id>" / "group:<id>" / "near:<id>"
    match: Match | None = None
    label: str | None = None  # what a subscription heading shows ("Azaz")


@dataclass(frozen=True)
class OutboxRow:
    """One alert as the dispatcher works on it: an ``outbox`` row."""

    id: int
    chat_id: str
    story_id: str
    alert_key: str
    article_id: int
    match_id: int | None  # the ``matches`` row with the evidence, else ``evidence`` holds it
    evidence: dict[str, Any] | None  # rules.types.Match as JSON
    state: OutboxState
    attempts: int
    held: bool  # waited on mute/quiet hours/digest: goes out in a digest
    label: str | None
    also: tuple[str, ...]  # other outlets that ran the same story
    message_id: int | None  # Telegram's, once sent

    @classmethod
    def from_row(cls, row: Row) -> OutboxRow:
        return cls(
            id=row.id, chat_id=row.chat_id, story_id=row.story_id, alert_key=row.alert_key,
            article_id=row.article_id, match_id=row.match_id, evidence=row.evidence,
            state=OutboxState(row.state), attempts=row.attempts, held=bool(row.held), label=row.label,
            also=tuple(row.also or ()), message_id=row.message_id,
        )


@dataclass
class EnqueueResult:
    new_rows: int = 0
    also_updates: int = 0  # existing alerts that gained an "Also: <outlet>"
    row_ids: list[int] = field(default_factory=list)


def match_rank(match: Match | None) -> tuple[int, int]:
    """How telling a reason to alert is: a rule match beats a plain mention, a higher severity a
    lower one."""
    if match is None:
        return (0, 0)
    return (1, Severity(match.severity.lower()).rank)


def _rank(r: Recipient) -> tuple[int, int]:
    # Only a rule's own key ranks by its match: a near subscription's match ranks as a mention.
    if parse_alert_key(r.alert_key)[0] is SubscriptionKind.RULE:
        return match_rank(r.match)
    return (0, 0)


def enqueue(
    conn: Connection,
    *,
    article_id: int,
    story_id: str,
    outlet: str | None,
    recipients: Sequence[Recipient],
    match_ids: dict[str, int],
    first_seen: datetime,
    now: datetime,
) -> EnqueueResult:
    result = EnqueueResult()
    # One alert per story per chat: keep the most telling reason for each chat.
    best: dict[str, Recipient] = {}
    for r in recipients:
        chat = str(r.chat_id)
        if chat not in best or _rank(r) > _rank(best[chat]):
            best[chat] = r
    if not best:
        return result
    paused = set(conn.execute(
        select(chats.c.chat_id).where(chats.c.chat_id.in_(list(best)), chats.c.paused.is_(True))
    ).scalars())
    for chat, r in best.items():
        if chat in paused:
            continue
        existing = conn.execute(
            select(outbox.c.id, outbox.c.article_id, outbox.c.state, outbox.c.also)
            .where(outbox.c.chat_id == chat, outbox.c.story_id == story_id)
            .order_by(outbox.c.id)
            .limit(1)
        ).first()
        if existing is not None:
            if existing.article_id != article_id and _add_also(conn, existing, outlet, now):
                result.also_updates += 1
            continue
        match_id = match_ids.get(r.match.rule_id if r.match else r.alert_key)
        evidence = None
        if r.match is not None and match_id is None:
            evidence = r.match.to_dict()
        inserted = insert_ignore(conn, outbox, {
            "chat_id": chat, "story_id": story_id, "alert_key": r.alert_key, "article_id": article_id,
            "match_id": match_id, "state": OutboxState.PENDING, "attempts": 0, "created_at": now,
            "updated_at": now, "next_attempt_at": now, "first_seen_at": first_seen, "also": [],
            "needs_edit": False, "held": False, "label": r.label, "evidence": evidence,
        })
        if inserted:
            result.new_rows += 1
            result.row_ids.append(conn.execute(
                select(outbox.c.id).where(outbox.c.chat_id == chat, outbox.c.story_id == story_id,
                                          outbox.c.alert_key == r.alert_key)
            ).scalar_one())
    return result


def _add_also(conn: Connection, existing: Row, outlet: str | None, now: datetime) -> bool:
    if not outlet:
        return False
    first_outlet = conn.execute(
        select(articles.c.outlet, articles.c.source).where(articles.c.id == existing.article_id)
    ).first()
    if first_outlet is not None and outlet in (first_outlet.outlet, first_outlet.source):
        return False
    also = list(existing.also or [])
    if outlet in also:
        return False
    also.append(outlet)
    values: dict[str, Any] = {"also": also, "updated_at": now}
    # Sent (or in flight): the message on screen lacks it, so edit. Pending: the first send shows it.
    if existing.state in (OutboxState.SENT, OutboxState.SENDING):
        values["needs_edit"] = True
    conn.execute(update(outbox).where(outbox.c.id == existing.id).values(**values))
    return True


def cancel_undelivered(conn: Connection, chat_id: str, reason: str, now: datetime) -> int:
    """Cancel everything the chat still had coming (``alerts.subscriptions.pause_chat`` pauses
    the chat with it); returns how many alerts were cancelled."""
    result = conn.execute(
        update(outbox).where(outbox.c.chat_id == chat_id, outbox.c.state.in_(UNDELIVERED))
        .values(state=OutboxState.CANCELLED, last_error=reason, updated_at=now, next_attempt_at=None)
    )
    return result.rowcount or 0


def move_chat_rows(conn: Connection, old: str, new: str, now: datetime) -> int:
    """A group became a supergroup: what it still had coming goes to the new id, due now."""
    moved = 0
    rows = conn.execute(
        select(outbox.c.id, outbox.c.story_id, outbox.c.alert_key)
        .where(outbox.c.chat_id == old, outbox.c.state.in_(UNDELIVERED))
    ).all()
    for row in rows:
        taken = conn.execute(select(outbox.c.id).where(
            outbox.c.chat_id == new, outbox.c.story_id == row.story_id, outbox.c.alert_key == row.alert_key
        )).first()
        if taken is not None:  # the new chat already has this alert: never send it twice
            conn.execute(update(outbox).where(outbox.c.id == row.id).values(
                state=OutboxState.CANCELLED, last_error=f"chat moved to {new}", updated_at=now,
                next_attempt_at=None))
            continue
        conn.execute(update(outbox).where(outbox.c.id == row.id).values(
            chat_id=new, state=OutboxState.PENDING, next_attempt_at=now, updated_at=now))
        moved += 1
    return moved


# -- operator queries -----------------------------------------------------------------------------

def counts(conn: Connection) -> dict[OutboxState, int]:
    rows = conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state))
    return {OutboxState(state): n for state, n in rows}


def list_rows(conn: Connection, *, states: Iterable[str] | None = None, limit: int = 50) -> list[Row]:
    """The latest alerts with their article's title, newest first (``lookout alerts list``)."""
    stmt = (
        select(outbox.c.id, outbox.c.chat_id, outbox.c.alert_key, outbox.c.story_id, outbox.c.state,
               outbox.c.attempts, outbox.c.last_error, outbox.c.created_at, outbox.c.sent_at,
               outbox.c.next_attempt_at, articles.c.title)
        .select_from(outbox.join(articles, articles.c.id == outbox.c.article_id))
        .order_by(outbox.c.id.desc()).limit(limit)
    )
    if states:
        stmt = stmt.where(outbox.c.state.in_(list(states)))
    return list(conn.execute(stmt).all())


def retry(conn: Connection, ids: Sequence[int] | None, now: datetime) -> int:
    """Failed rows (all, or the given ids, also cancelled ones) go back to pending, attempts reset."""
    cond = outbox.c.state == OutboxState.FAILED
    if ids:
        cond = and_(outbox.c.id.in_(list(ids)), outbox.c.state.in_((OutboxState.FAILED, OutboxState.CANCELLED)))
    result = conn.execute(
        update(outbox).where(cond)
        .values(state=OutboxState.PENDING, attempts=0, next_attempt_at=now, updated_at=now)
    )
    return result.rowcount or 0


def load_rows(conn: Connection, ids: Sequence[int]) -> list[OutboxRow]:
    rows = conn.execute(select(outbox).where(outbox.c.id.in_(list(ids))).order_by(outbox.c.id))
    return [OutboxRow.from_row(r) for r in rows]
