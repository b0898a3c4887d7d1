"""Who receives what: the ``chats``, ``subscriptions`` and ``rule_mutes`` tables, and routing.

A chat watches places, groups, rules, or "near" a place within some km (``SubscriptionKind``).
``recipients_for`` turns one article's matches and mentions into outbox recipients: a place or
group subscription gets every article mentioning it, a rule subscription every match of that
rule, a near subscription every match with a place in range, and a rule's ``notify`` chats every
hit. Paused chats and (chat, alert key) mutes are skipped. A chat gets one alert per article:
when several of its subscriptions fire, the most specific one (a rule match, highest severity)
wins.

Each subscription has an alert key (``alerts.keys``): what an alert was sent for. The outbox,
the buttons under alerts and ``rule_mutes`` use the same keys. A chat that is gone is paused
here (``pause_chat``), and a group upgraded to a supergroup moves here (``move_chat``), each
with its undelivered alerts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update

from alerts.chatprefs import ChatPrefs, DigestMode
from alerts.keys import SubscriptionKind, alert_key, parse_alert_key
from alerts.outbox import OutboxState, Recipient, cancel_undelivered, match_rank, move_chat_rows
from core.store import chats, insert_ignore, outbox, rule_mutes, subscriptions, utcnow
from rules.geo import haversine_km
from rules.types import Match, Mentions

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from sqlalchemy.engine import Connection, Row

    from rules.model import Group, Place, Ruleset


@dataclass(frozen=True)
class Chat:
    """A ``chats`` row: the chat, its delivery preferences, and whether it is paused."""

    chat_id: str  # numeric id, or "@channelname"
    kind: str  # private | group | channel
    title: str | None
    muted_until: datetime | None
    quiet_start: str | None  # "23:00"
    quiet_end: str | None
    digest: DigestMode
    digest_at: str | None  # "08:00" for a daily digest
    pins: bool
    paused: bool  # blocked the bot or gone: nothing is queued for it
    paused_reason: str | None
    created_at: datetime
    tz: str | None = None  # IANA time zone of quiet hours, digest times and times shown; None: UTC

    @classmethod
    def from_row(cls, row: Row) -> Chat:
        return cls(
            chat_id=row.chat_id, kind=row.kind, title=row.title, muted_until=row.muted_until,
            quiet_start=row.quiet_start, quiet_end=row.quiet_end, digest=row.digest, digest_at=row.digest_at,
            pins=bool(row.pins), paused=bool(row.paused), paused_reason=row.paused_reason,
            created_at=row.created_at, tz=row._mapping.get("tz"),
        )

    @property
    def prefs(self) -> ChatPrefs:
        return ChatPrefs(muted_until=self.muted_until, quiet_start=self.quiet_start, quiet_end=self.quiet_end,
                         digest=self.digest, digest_at=self.digest_at, tz=self.tz)


@dataclass(frozen=True)
class Subscription:
    id: int
    chat_id: str
    kind: SubscriptionKind
    target: str  # a place, group or rule id
    km: float | None  # for a near subscription
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Subscription:
        return cls(row.id, row.chat_id, SubscriptionKind(row.kind), row.target, row.km, row.created_at)

    @property
    def alert_key(self) -> str:
        return alert_key(self.kind, self.target)


def chat_kind(chat_id: str) -> str:
    """Best guess from the id alone: ``@name`` is a channel, negative ids are groups."""
    if chat_id.startswith("@"):
        return "channel"
    return "group" if chat_id.startswith("-") else "private"


# --- chats -------------------------------------------------------------------------------------


class _Keep(Enum):
    """A preference ``set_chat_prefs`` leaves as it is (None is a value: it clears one)."""

    KEEP = "keep"


KEEP = _Keep.KEEP


def ensure_chat(
    conn: Connection, chat_id: str, *, kind: str | None = None, title: str | None = None,
    now: datetime | None = None, unpause: bool = False,
) -> None:
    """Create the chat row if missing; ``unpause``: the chat talks to us again, so resume it."""
    chat_id = str(chat_id)
    insert_ignore(conn, chats, {
        "chat_id": chat_id, "kind": kind or chat_kind(chat_id), "title": title,
        "digest": "off", "pins": False, "paused": False, "created_at": now or utcnow(),
    })
    values: dict[str, Any] = {}
    if title is not None:
        values["title"] = title
    if unpause:
        values.update(paused=False, paused_reason=None)
    if values:
        conn.execute(update(chats).where(chats.c.chat_id == chat_id).values(**values))


def get_chat(conn: Connection, chat_id: str) -> Chat | None:
    row = conn.execute(select(chats).where(chats.c.chat_id == str(chat_id))).first()
    return Chat.from_row(row) if row is not None else None


def chats_by_id(conn: Connection, chat_ids: Iterable[str]) -> dict[str, Chat]:
    """The chats among ``chat_ids`` that have a row (a chat only ever notified may have none)."""
    rows = conn.execute(select(chats).where(chats.c.chat_id.in_(sorted(set(chat_ids)))))
    return {row.chat_id: Chat.from_row(row) for row in rows}


def set_chat_prefs(
    conn: Connection, chat_id: str, *,
    muted_until: datetime | _Keep | None = KEEP,
    quiet_start: str | _Keep | None = KEEP,
    quiet_end: str | _Keep | None = KEEP,
    digest: DigestMode | _Keep = KEEP,
    digest_at: str | _Keep | None = KEEP,
    pins: bool | _Keep = KEEP,
    tz: str | _Keep | None = KEEP,
) -> None:
    """Update the preferences given (the others stay as they are). ``tz`` is an IANA name
    (``chatprefs.parse_tz``), None for UTC.

    Alerts already held under the old preferences become due now: the dispatcher holds them
    again if the new ones still say so, else sends them (``/unmute`` must not wait for the old
    mute's end)."""
    given = {"muted_until": muted_until, "quiet_start": quiet_start, "quiet_end": quiet_end,
             "digest": digest, "digest_at": digest_at, "pins": pins, "tz": tz}
    if isinstance(tz, str) and ChatPrefs(tz=tz).zone_name != tz:
        raise ValueError(f"unknown time zone {tz!r}")
    values = {column: value for column, value in given.items() if value is not KEEP}
    ensure_chat(conn, chat_id)
    if values:
        conn.execute(update(chats).where(chats.c.chat_id == str(chat_id)).values(**values))
    conn.execute(
        update(outbox)
        .where(outbox.c.chat_id == str(chat_id), outbox.c.state == OutboxState.PENDING, outbox.c.held.is_(True))
        .values(next_attempt_at=utcnow())
    )


def set_paused(
    conn: Connection, chat_id: str, paused: bool, reason: str | None = None, *, now: datetime | None = None,
) -> None:
    ensure_chat(conn, chat_id, now=now)
    conn.execute(
        update(chats).where(chats.c.chat_id == str(chat_id))
        .values(paused=paused, paused_reason=reason if paused else None)
    )


def pause_chat(conn: Connection, chat_id: str, reason: str, now: datetime) -> int:
    """The chat blocked the bot or is gone: pause it and cancel everything it still had coming.
    Returns how many alerts were cancelled."""
    cancelled = cancel_undelivered(conn, chat_id, reason, now)
    set_paused(conn, chat_id, True, reason, now=now)
    return cancelled


def move_chat(conn: Connection, old: str, new: str, now: datetime) -> int:
    """Telegram upgraded a group to a supergroup (a new id): its preferences, subscriptions,
    rule mutes and pending alerts follow it. Returns how many pending alerts moved."""
    old, new = str(old), str(new)
    chat = get_chat(conn, old)
    if chat is not None:
        insert_ignore(conn, chats, asdict(replace(chat, chat_id=new)))
        conn.execute(update(chats).where(chats.c.chat_id == new).values(paused=False, paused_reason=None))
    else:
        ensure_chat(conn, new, now=now)
    subs = list_for_chat(conn, old)
    if subs:
        insert_ignore(conn, subscriptions, [
            {"chat_id": new, "kind": s.kind, "target": s.target, "km": s.km, "created_at": s.created_at}
            for s in subs
        ])
    mutes = conn.execute(select(rule_mutes).where(rule_mutes.c.chat_id == old)).all()
    if mutes:
        insert_ignore(conn, rule_mutes, [{**m._mapping, "chat_id": new} for m in mutes])
    moved = move_chat_rows(conn, old, new, now)
    for table in (subscriptions, rule_mutes):
        conn.execute(delete(table).where(table.c.chat_id == old))
    conn.execute(update(chats).where(chats.c.chat_id == old)
                 .values(paused=True, paused_reason=f"upgraded to supergroup {new}"))
    return moved


# --- subscriptions -----------------------------------------------------------------------------


def add(
    conn: Connection, chat_id: str, kind: SubscriptionKind, target: str, km: float | None = None,
    *, now: datetime | None = None,
) -> bool:
    """Subscribe; True if new. A repeated ``near`` with another distance updates the km."""
    try:
        kind = SubscriptionKind(kind)
    except ValueError:
        raise ValueError(f"unknown subscription kind {kind!r}") from None
    if kind is SubscriptionKind.NEAR and (km is None or not km > 0):
        raise ValueError("a near subscription needs a distance in km greater than 0")
    chat_id = str(chat_id)
    now = now or utcnow()
    ensure_chat(conn, chat_id, now=now)
    inserted = insert_ignore(conn, subscriptions, {
        "chat_id": chat_id, "kind": kind, "target": target,
        "km": km if kind is SubscriptionKind.NEAR else None, "created_at": now,
    })
    if not inserted and kind is SubscriptionKind.NEAR:
        conn.execute(
            update(subscriptions)
            .where(subscriptions.c.chat_id == chat_id, subscriptions.c.kind == kind,
                   subscriptions.c.target == target)
            .values(km=km)
        )
    return bool(inserted)


def remove(conn: Connection, chat_id: str, kind: SubscriptionKind, target: str) -> bool:
    result = conn.execute(
        delete(subscriptions).where(
            subscriptions.c.chat_id == str(chat_id), subscriptions.c.kind == kind,
            subscriptions.c.target == target,
        )
    )
    return (result.rowcount or 0) > 0


def remove_key(conn: Connection, chat_id: str, key: str) -> bool:
    """Unsubscribe by alert key (``place:azaz``, a rule id, ...)."""
    kind, target = parse_alert_key(key)
    return remove(conn, chat_id, kind, target)


def remove_all(conn: Connection, chat_id: str) -> int:
    result = conn.execute(delete(subscriptions).where(subscriptions.c.chat_id == str(chat_id)))
    return result.rowcount or 0


def list_for_chat(conn: Connection, chat_id: str) -> list[Subscription]:
    rows = conn.execute(
        select(subscriptions).where(subscriptions.c.chat_id == str(chat_id))
        .order_by(subscriptions.c.kind, subscriptions.c.target)
    )
    return [Subscription.from_row(r) for r in rows]


@dataclass(frozen=True)
class SubscriberRow:
    subscription: Subscription
    paused: bool
    paused_reason: str | None


def list_all(conn: Connection) -> list[SubscriberRow]:
    rows = conn.execute(
        select(subscriptions, chats.c.paused, chats.c.paused_reason)
        .select_from(subscriptions.outerjoin(chats, chats.c.chat_id == subscriptions.c.chat_id))
        .order_by(subscriptions.c.chat_id, subscriptions.c.kind, subscriptions.c.target)
    )
    return [SubscriberRow(Subscription.from_row(r), bool(r.paused), r.paused_reason) for r in rows]


# --- mutes -------------------------------------------------------------------------------------


def mute_rule(conn: Connection, chat_id: str, key: str, until: datetime) -> None:
    """Hold back the alerts of one alert key (a rule, or a subscription's key) until ``until``."""
    chat_id = str(chat_id)
    where = (rule_mutes.c.chat_id == chat_id, rule_mutes.c.alert_key == key)
    if not (conn.execute(update(rule_mutes).where(*where).values(until=until)).rowcount or 0):
        insert_ignore(conn, rule_mutes, {"chat_id": chat_id, "alert_key": key, "until": until})


def unmute_rules(conn: Connection, chat_id: str) -> int:
    return conn.execute(delete(rule_mutes).where(rule_mutes.c.chat_id == str(chat_id))).rowcount or 0


def active_mutes(conn: Connection, chat_id: str, now: datetime) -> dict[str, datetime]:
    """The chat's mutes still running: alert key -> when it ends."""
    rows = conn.execute(
        select(rule_mutes.c.alert_key, rule_mutes.c.until)
        .where(rule_mutes.c.chat_id == str(chat_id), rule_mutes.c.until > now)
    )
    return {r.alert_key: r.until for r in rows}


# --- routing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    chat_id: str
    key: str
    match: Match | None
    label: str | None

    @property
    def rank(self) -> tuple[int, int]:
        # A rule match carries the richest evidence; then severity; place/group last.
        return match_rank(self.match)


def _name(named: Mapping[str, Place | Group], key: str) -> str:
    item = named.get(key)
    return (item.name if item is not None else None) or key


_ANY_SUBSCRIPTION = select(subscriptions.c.id).limit(1)


def has_subscriptions(conn: Connection) -> bool:
    """Whether any chat subscribes to anything: with none, only a rule's ``notify`` can alert,
    and the ingest of a bulk crawl skips ``recipients_for``'s queries for every article."""
    return conn.execute(_ANY_SUBSCRIPTION).first() is not None


def _subscribed(
    conn: Connection, by_rule: dict[str, Match], mentions: Mentions, ruleset: Ruleset,
) -> list[_Candidate]:
    """A candidate per subscription that fires on this article."""
    mentioned_places = sorted({p.id for p in mentions.places})
    mentioned_groups = sorted(set(mentions.groups))
    if not (mentioned_places or mentioned_groups or by_rule):
        return []
    kind = subscriptions.c.kind
    rows = conn.execute(
        select(subscriptions).where(
            (kind == SubscriptionKind.NEAR)
            | ((kind == SubscriptionKind.PLACE) & subscriptions.c.target.in_(mentioned_places))
            | ((kind == SubscriptionKind.GROUP) & subscriptions.c.target.in_(mentioned_groups))
            | ((kind == SubscriptionKind.RULE) & subscriptions.c.target.in_(sorted(by_rule)))
        )
    )
    candidates: list[_Candidate] = []
    for row in rows:
        sub = Subscription.from_row(row)
        if sub.kind is SubscriptionKind.PLACE:
            candidates.append(_Candidate(sub.chat_id, sub.alert_key, None, _name(ruleset.places, sub.target)))
        elif sub.kind is SubscriptionKind.GROUP:
            candidates.append(_Candidate(sub.chat_id, sub.alert_key, None, _name(ruleset.groups, sub.target)))
        elif sub.kind is SubscriptionKind.RULE:
            candidates.append(_Candidate(sub.chat_id, sub.alert_key, by_rule[sub.target], None))
        elif (near := _near_match(sub, by_rule, ruleset)) is not None:
            label = f"within {sub.km:g} km of {_name(ruleset.places, sub.target)}"
            candidates.append(_Candidate(sub.chat_id, sub.alert_key, near, label))
    return candidates


def _near_match(sub: Subscription, by_rule: dict[str, Match], ruleset: Ruleset) -> Match | None:
    """The first match with a place within the near subscription's km of its place."""
    centre = ruleset.places.get(sub.target)
    if centre is None or sub.km is None:
        return None  # the place left the rule files; nothing to measure from
    for m in by_rule.values():
        if any(haversine_km(centre.lat, centre.lon, p.lat, p.lon) <= sub.km for p in m.places):
            return m
    return None


def recipients_for(
    conn: Connection, matches: Iterable[Match], mentions: Mentions | None, ruleset: Ruleset,
    now: datetime,
) -> list[Recipient]:
    """Every chat that should be alerted about one article, one ``Recipient`` per chat."""
    by_rule: dict[str, Match] = {}
    for m in matches:  # one match per rule per article; keep the first if the engine repeats one
        by_rule.setdefault(m.rule_id, m)
    candidates = _subscribed(conn, by_rule, mentions or Mentions(), ruleset)
    candidates.extend(_Candidate(str(chat_id), m.rule_id, m, None) for m in by_rule.values() for chat_id in m.notify)
    if not candidates:
        return []
    chat_ids = sorted({c.chat_id for c in candidates})
    paused = set(conn.execute(
        select(chats.c.chat_id).where(chats.c.chat_id.in_(chat_ids), chats.c.paused.is_(True))
    ).scalars())
    muted = {(r.chat_id, r.alert_key) for r in conn.execute(
        select(rule_mutes.c.chat_id, rule_mutes.c.alert_key)
        .where(rule_mutes.c.chat_id.in_(chat_ids), rule_mutes.c.until > now)
    )}

    # Among equals the rule written first wins: authors list what matters most first.
    position = {rule_id: i for i, rule_id in enumerate(ruleset.rules)}

    def order(c: _Candidate) -> tuple[str, int, str]:
        return (c.chat_id, position.get(c.match.rule_id, len(position)) if c.match else len(position), c.key)

    best: dict[str, _Candidate] = {}
    for c in sorted(candidates, key=order):
        if c.chat_id in paused or (c.chat_id, c.key) in muted:
            continue
        current = best.get(c.chat_id)
        if current is None or c.rank > current.rank:
            best[c.chat_id] = c
    return [
        Recipient(chat_id=c.chat_id, alert_key=c.key, match=c.match, label=c.label)
        for _, c in sorted(best.items())
    ]
