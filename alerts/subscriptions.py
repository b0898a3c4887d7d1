"""Who receives what: the ``chats``, ``subscriptions`` and ``rule_mutes`` tables, and routing.

A chat watches places, groups, rules, or "near" a place within some km. ``recipients_for``
turns one article's matches and mentions into outbox recipients: a place or group subscription
gets every article mentioning it, a rule subscription every match of that rule, a near
subscription every match with a place in range, and a rule's ``notify`` chats every hit.
Paused chats and (chat, rule key) mutes are skipped. A chat gets one alert per article: when
several of its subscriptions fire, the most specific one (a rule match, highest severity) wins.

Rule keys name what an alert was sent for: a rule id, or ``place:<id>``, ``group:<id>``,
``near:<place-id>``; buttons under alerts and ``rule_mutes`` use the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import delete, select, update

from core.store import chats, insert_ignore, outbox, rule_mutes, subscriptions, utcnow
from rules.geo import haversine_km
from rules.types import Match, Mentions

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from sqlalchemy.engine import Connection

    from alerts.outbox import Recipient

Kind = Literal["place", "group", "rule", "near"]
KINDS: tuple[Kind, ...] = ("place", "group", "rule", "near")
_PREFIXED = ("place", "group", "near")
_SEVERITY = {"high": 3, "medium": 2, "low": 1}


@dataclass(frozen=True)
class Subscription:
    id: int
    chat_id: str
    kind: Kind
    target: str
    km: float | None
    created_at: datetime

    @property
    def rule_key(self) -> str:
        return rule_key(self.kind, self.target)


def rule_key(kind: str, target: str) -> str:
    return target if kind == "rule" else f"{kind}:{target}"


def parse_rule_key(key: str) -> tuple[Kind, str]:
    """``near:azaz`` -> ("near", "azaz"); a bare rule id -> ("rule", id)."""
    prefix, sep, rest = key.partition(":")
    if sep and prefix in _PREFIXED and rest:
        return prefix, rest  # type: ignore[return-value]
    return "rule", key


def chat_kind(chat_id: str) -> str:
    """Best guess from the id alone: ``@name`` is a channel, negative ids are groups."""
    if chat_id.startswith("@"):
        return "channel"
    return "group" if chat_id.startswith("-") else "private"


# --- chats -------------------------------------------------------------------------------------


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


def get_chat(conn: Connection, chat_id: str) -> Any | None:
    return conn.execute(select(chats).where(chats.c.chat_id == str(chat_id))).first()


def set_chat_prefs(conn: Connection, chat_id: str, **values: Any) -> None:
    """Update preference columns (muted_until, quiet_start, quiet_end, digest, digest_at, pins).

    Alerts already held under the old preferences become due now: the dispatcher holds them
    again if the new ones still say so, else sends them (``/unmute`` must not wait for the old
    mute's end)."""
    ensure_chat(conn, chat_id)
    conn.execute(update(chats).where(chats.c.chat_id == str(chat_id)).values(**values))
    conn.execute(
        update(outbox)
        .where(outbox.c.chat_id == str(chat_id), outbox.c.state == "pending", outbox.c.held.is_(True))
        .values(next_attempt_at=utcnow())
    )


def set_paused(conn: Connection, chat_id: str, paused: bool, reason: str | None = None) -> None:
    ensure_chat(conn, chat_id)
    conn.execute(
        update(chats).where(chats.c.chat_id == str(chat_id))
        .values(paused=paused, paused_reason=reason if paused else None)
    )


# --- subscriptions -----------------------------------------------------------------------------


def move_chat(conn: Connection, old: str, new: str, now: datetime) -> int:
    """Telegram upgraded a group to a supergroup (a new id): its preferences, subscriptions,
    rule mutes and pending alerts follow it. Returns how many pending alerts moved."""
    from alerts.outbox import move_chat_rows

    old, new = str(old), str(new)
    row = get_chat(conn, old)
    if row is not None:
        prefs = {k: v for k, v in row._mapping.items() if k != "chat_id"}
        insert_ignore(conn, chats, {**prefs, "chat_id": new})
        conn.execute(update(chats).where(chats.c.chat_id == new).values(paused=False, paused_reason=None))
    else:
        ensure_chat(conn, new, now=now)
    subs = [dict(r._mapping) for r in conn.execute(select(subscriptions).where(subscriptions.c.chat_id == old))]
    if subs:
        insert_ignore(conn, subscriptions, [
            {"chat_id": new, "kind": s["kind"], "target": s["target"], "km": s["km"], "created_at": s["created_at"]}
            for s in subs
        ])
    mutes = [dict(r._mapping) for r in conn.execute(select(rule_mutes).where(rule_mutes.c.chat_id == old))]
    if mutes:
        insert_ignore(conn, rule_mutes, [{**m, "chat_id": new} for m in mutes])
    moved = move_chat_rows(conn, old, new, now)
    for table in (subscriptions, rule_mutes):
        conn.execute(delete(table).where(table.c.chat_id == old))
    conn.execute(update(chats).where(chats.c.chat_id == old)
                 .values(paused=True, paused_reason=f"upgraded to supergroup {new}"))
    return moved


def _sub(row: Any) -> Subscription:
    return Subscription(row.id, row.chat_id, row.kind, row.target, row.km, row.created_at)


def add(
    conn: Connection, chat_id: str, kind: Kind, target: str, km: float | None = None,
    *, now: datetime | None = None,
) -> bool:
    """Subscribe; True if new. A repeated ``near`` with another distance updates the km."""
    if kind not in KINDS:
        raise ValueError(f"unknown subscription kind {kind!r}")
    if kind == "near" and (km is None or not km > 0):
        raise ValueError("a near subscription needs a distance in km greater than 0")
    chat_id = str(chat_id)
    now = now or utcnow()
    ensure_chat(conn, chat_id, now=now)
    inserted = insert_ignore(conn, subscriptions, {
        "chat_id": chat_id, "kind": kind, "target": target,
        "km": km if kind == "near" else None, "created_at": now,
    })
    if not inserted and kind == "near":
        conn.execute(
            update(subscriptions)
            .where(subscriptions.c.chat_id == chat_id, subscriptions.c.kind == kind,
                   subscriptions.c.target == target)
            .values(km=km)
        )
    return bool(inserted)


def remove(conn: Connection, chat_id: str, kind: str, target: str) -> bool:
    result = conn.execute(
        delete(subscriptions).where(
            subscriptions.c.chat_id == str(chat_id), subscriptions.c.kind == kind,
            subscriptions.c.target == target,
        )
    )
    return (result.rowcount or 0) > 0


def remove_key(conn: Connection, chat_id: str, key: str) -> bool:
    kind, target = parse_rule_key(key)
    return remove(conn, chat_id, kind, target)


def remove_all(conn: Connection, chat_id: str) -> int:
    result = conn.execute(delete(subscriptions).where(subscriptions.c.chat_id == str(chat_id)))
    return result.rowcount or 0


def list_for_chat(conn: Connection, chat_id: str) -> list[Subscription]:
    rows = conn.execute(
        select(subscriptions).where(subscriptions.c.chat_id == str(chat_id))
        .order_by(subscriptions.c.kind, subscriptions.c.target)
    )
    return [_sub(r) for r in rows]


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
    return [SubscriberRow(_sub(r), bool(r.paused), r.paused_reason) for r in rows]


# --- mutes -------------------------------------------------------------------------------------


def mute_rule(conn: Connection, chat_id: str, key: str, until: datetime) -> None:
    chat_id = str(chat_id)
    where = (rule_mutes.c.chat_id == chat_id, rule_mutes.c.rule_id == key)
    if not (conn.execute(update(rule_mutes).where(*where).values(until=until)).rowcount or 0):
        insert_ignore(conn, rule_mutes, {"chat_id": chat_id, "rule_id": key, "until": until})


def unmute_rules(conn: Connection, chat_id: str) -> int:
    return conn.execute(delete(rule_mutes).where(rule_mutes.c.chat_id == str(chat_id))).rowcount or 0


def active_mutes(conn: Connection, chat_id: str, now: datetime) -> dict[str, datetime]:
    rows = conn.execute(
        select(rule_mutes.c.rule_id, rule_mutes.c.until)
        .where(rule_mutes.c.chat_id == str(chat_id), rule_mutes.c.until > now)
    )
    return {r.rule_id: r.until for r in rows}


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
        if self.match is None:
            return (0, 0)
        return (1, _SEVERITY.get(self.match.severity, 0))


def _name(items: Any, key: str) -> str:
    obj = (items or {}).get(key) if hasattr(items, "get") else None
    return str(getattr(obj, "name", None) or key)


def _coords(ruleset: Any, place_id: str) -> tuple[float, float] | None:
    place = getattr(ruleset, "places", {}).get(place_id)
    lat, lon = getattr(place, "lat", None), getattr(place, "lon", None)
    if lat is None or lon is None:
        return None
    return float(lat), float(lon)


_ANY_SUBSCRIPTION = select(subscriptions.c.id).limit(1)


def has_subscriptions(conn: Connection) -> bool:
    """Whether any chat subscribes to anything: with none, only a rule's ``notify`` can alert,
    and the ingest of a bulk crawl skips ``recipients_for``'s queries for every article."""
    return conn.execute(_ANY_SUBSCRIPTION).first() is not None


def recipients_for(
    conn: Connection, matches: Iterable[Match], mentions: Mentions | None, ruleset: Any,
    now: datetime,
) -> list[Recipient]:
    """Every chat that should be alerted about one article, one ``Recipient`` per chat."""
    from alerts.outbox import Recipient

    matches = list(matches)
    mentions = mentions or Mentions()
    places = getattr(ruleset, "places", {}) or {}
    groups = getattr(ruleset, "groups", {}) or {}
    mentioned_places = {p.id for p in mentions.places}
    mentioned_groups = set(mentions.groups)
    rule_ids = {m.rule_id for m in matches}
    by_rule = {}
    for m in matches:  # one match per rule per article; keep the first if the engine repeats one
        by_rule.setdefault(m.rule_id, m)

    candidates: list[_Candidate] = []
    rows = conn.execute(
        select(subscriptions).where(
            (subscriptions.c.kind == "near")
            | ((subscriptions.c.kind == "place") & subscriptions.c.target.in_(sorted(mentioned_places)))
            | ((subscriptions.c.kind == "group") & subscriptions.c.target.in_(sorted(mentioned_groups)))
            | ((subscriptions.c.kind == "rule") & subscriptions.c.target.in_(sorted(rule_ids)))
        )
    ) if (mentioned_places or mentioned_groups or rule_ids) else []
    for row in rows:
        sub = _sub(row)
        if sub.kind == "place":
            candidates.append(_Candidate(sub.chat_id, sub.rule_key, None, _name(places, sub.target)))
        elif sub.kind == "group":
            candidates.append(_Candidate(sub.chat_id, sub.rule_key, None, _name(groups, sub.target)))
        elif sub.kind == "rule":
            candidates.append(_Candidate(sub.chat_id, sub.rule_key, by_rule[sub.target], None))
        else:
            centre = _coords(ruleset, sub.target)
            if centre is None or sub.km is None:
                continue  # the place left the rule files; nothing to measure from
            for m in by_rule.values():
                if any(haversine_km(centre[0], centre[1], p.lat, p.lon) <= sub.km for p in m.places):
                    label = f"within {sub.km:g} km of {_name(places, sub.target)}"
                    candidates.append(_Candidate(sub.chat_id, sub.rule_key, m, label))
                    break
    for m in by_rule.values():
        for chat_id in m.notify:
            candidates.append(_Candidate(str(chat_id), m.rule_id, m, None))

    if not candidates:
        return []
    chat_ids = sorted({c.chat_id for c in candidates})
    paused = set(conn.execute(
        select(chats.c.chat_id).where(chats.c.chat_id.in_(chat_ids), chats.c.paused.is_(True))
    ).scalars())
    muted = {(r.chat_id, r.rule_id) for r in conn.execute(
        select(rule_mutes.c.chat_id, rule_mutes.c.rule_id)
        .where(rule_mutes.c.chat_id.in_(chat_ids), rule_mutes.c.until > now)
    )}

    # Among equals the rule written first wins: authors list what matters most first.
    position = {rule_id: i for i, rule_id in enumerate(getattr(ruleset, "rules", {}) or {})}

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
        Recipient(chat_id=c.chat_id, rule_key=c.key, match=c.match, label=c.label)
        for chat_id, c in sorted(best.items())
    ]
