"""The dispatcher: drains the outbox to Telegram without losing an alert or flooding a chat.

Delivery guarantee. Each send is: reserve a rate-limit slot, mark the row "sending" and COMMIT,
call the Bot API, then mark it "sent" with the message id. A crash (or a store error) after
Telegram accepted the message but before "sent" is stored leaves the row in "sending"; the next
dispatcher retries it. So a crash at any moment costs at most one duplicate of the single message
in flight, never a lost alert. A row only leaves the queue as sent, failed (after
``telegram.max_attempts`` transient errors, with the reason) or cancelled (the chat blocked the
bot or is gone, with the reason; the chat is paused).

Chats are served concurrently, each chat's alerts in order; ``alerts.ratelimit`` keeps the global,
per-private-chat and per-group limits. Mutes, quiet hours and digest mode hold a chat's alerts;
when released they go out together as one digest.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from alerts import outbox as ob
from alerts.chatprefs import in_quiet_hours, release_time
from alerts.format import AlertView, primary_place, render_alert, render_digest, to_terminal
from alerts.keys import SubscriptionKind, parse_alert_key
from alerts.outbox import OutboxRow, OutboxState
from alerts.ratelimit import RateLimiter
from alerts.subscriptions import Chat, chats_by_id, move_chat, pause_chat
from alerts.telegram import (
    BadMarkup,
    Button,
    ChatGone,
    ChatMoved,
    DeliveryError,
    Fatal,
    NotModified,
    RetryLater,
    Sender,
    Transient,
    alert_buttons,
)
from core.store import Store, articles, matches, utcnow
from rules.geo import describe_position
from rules.types import Match

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from alerts.config import TelegramConfig
    from rules.model import Ruleset

log = logging.getLogger(__name__)


@dataclass
class DispatchSummary:
    sent: int = 0  # alerts delivered (a digest delivers several in one message)
    messages: int = 0  # messages Telegram accepted
    edited: int = 0  # "Also: ..." edits
    failed: int = 0
    cancelled: int = 0
    retrying: int = 0  # sends that will be retried later (429, transient)
    held: int = 0  # alerts held for a digest (mute, quiet hours, digest mode)
    plain: int = 0  # resent as plain text after the HTML was refused
    moved: int = 0  # alerts that followed a group upgraded to a supergroup
    waiting: int = 0  # still pending when drain() returned

    def add(self, other: DispatchSummary) -> None:
        for f in fields(self):
            if f.name != "waiting":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class Dispatcher:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        config: TelegramConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
        limiter: RateLimiter | None = None,
        backoff_base: float = 2.0,
        backoff_cap: float = 900.0,
        rng: Callable[[], float] = random.random,
        ruleset: Ruleset | None = None,  # for "9 km E of Azaz" place lines (alerts go out without)
        max_concurrency: int = 64,
        batch: int = 5000,
    ):
        self.store = store
        self.sender = sender
        self.config = config
        self.clock = clock
        self.limiter = limiter or RateLimiter.from_config(config)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.rng = rng
        self.ruleset = ruleset
        self.batch = batch
        self._gate = asyncio.Semaphore(max_concurrency)
        self._wake = asyncio.Event()
        self._recovered = False

    # -- entry points -----------------------------------------------------------------------------
    async def run_once(self) -> DispatchSummary:
        """One pass: everything due now (and pending "Also" edits), then return."""
        summary = DispatchSummary()
        now = self.clock()
        with self.store.begin() as conn:
            if not self._recovered:
                recovered = ob.recover_in_flight(conn, now)
                if recovered:
                    log.warning("retrying %d alert(s) left in flight by an interrupted dispatcher", recovered)
                self._recovered = True
            rows = ob.due_rows(conn, now, self.batch)
            edits = ob.edits_due(conn)
            chats_due = chats_by_id(conn, (r.chat_id for r in rows))
        by_chat: dict[str, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            by_chat[row.chat_id].append(row)
        work = [self._serve_chat(chat_id, chats_due.get(chat_id), due, summary) for chat_id, due in by_chat.items()]
        work += [self._edit(row, summary) for row in edits]
        results = await asyncio.gather(*work, return_exceptions=True)
        for result in results:
            if isinstance(result, Fatal):
                raise result
            if isinstance(result, BaseException):
                log.error("dispatch error: %s: %s", type(result).__name__, result)
        return summary

    async def drain(self, max_wait: float = 60.0) -> DispatchSummary:
        """Send everything pending; return when nothing is, or what remains waits > ``max_wait`` s."""
        total = DispatchSummary()
        while True:
            total.add(await self.run_once())
            with self.store.connect() as conn:
                nxt = ob.next_due(conn)
            if nxt is None:
                break
            wait = (nxt - self.clock()).total_seconds()
            if wait > max_wait:
                break
            await asyncio.sleep(min(max(wait, 0.02), max_wait))
        with self.store.connect() as conn:
            total.waiting = ob.counts(conn).get(OutboxState.PENDING, 0)
        return total

    def wake(self) -> None:
        """Dispatch now (a crawl just queued alerts) rather than at the next poll."""
        self._wake.set()

    async def run_forever(
        self, stop: asyncio.Event, *, poll: float = 2.0,
        on_pass: Callable[[DispatchSummary], Awaitable[None]] | None = None,
    ) -> None:
        """The service loop: a pass, then sleep until ``wake()``, the next due row or ``poll``
        seconds. Returns on ``stop``, or when Telegram refuses the token (nothing can be sent)."""
        while not stop.is_set():
            self._wake.clear()
            wait = poll
            try:
                summary = await self.run_once()
                if on_pass is not None:
                    await on_pass(summary)
                with self.store.connect() as conn:
                    nxt = ob.next_due(conn)
                if nxt is not None:
                    wait = min(poll, max((nxt - self.clock()).total_seconds(), 0.05))
            except Fatal as exc:
                log.error("telegram refused the bot token; delivery stopped: %s", exc.reason)
                return
            except Exception as exc:  # a store hiccup must not end delivery
                log.error("dispatcher pass failed: %s: %s", type(exc).__name__, exc)
            await _first_of(stop, self._wake, within=wait)

    # -- one chat ---------------------------------------------------------------------------------
    async def _serve_chat(
        self, chat_id: str, chat: Chat | None, rows: list[OutboxRow], summary: DispatchSummary,
    ) -> None:
        now = self.clock()
        if chat is not None and chat.paused:
            with self.store.begin() as conn:
                summary.cancelled += pause_chat(conn, chat_id, chat.paused_reason or "chat paused", now)
            return
        released = any(r.held for r in rows)
        hold_until = _release_time(chat, now)
        if hold_until is not None and (not released or _silenced(chat, now)):
            with self.store.begin() as conn:
                ob.mark_held(conn, [r.id for r in rows], hold_until, now)
            summary.held += len(rows)
            return
        units = self._digest_units(rows) if released and len(rows) > 1 else [[r] for r in rows]
        async with self._gate:
            for unit in units:
                if not await self._deliver(chat_id, chat, unit, summary):
                    break  # keep the chat's order: the rest waits for the next pass

    def _digest_units(self, rows: list[OutboxRow]) -> list[list[OutboxRow]]:
        """Rows grouped so each group renders as one digest message (within Telegram's limit)."""
        views = self._views(rows)
        units: list[list[OutboxRow]] = []
        current: list[OutboxRow] = []
        current_views: list[AlertView] = []
        for row in rows:
            trial = [*current_views, views[row.id]]
            if current and len(render_digest(trial)) > 1:
                units.append(current)
                current, current_views = [], []
            current.append(row)
            current_views.append(views[row.id])
        if current:
            units.append(current)
        return units

    async def _deliver(
        self, chat_id: str, chat: Chat | None, unit: list[OutboxRow], summary: DispatchSummary,
    ) -> bool:
        """Send one message for ``unit`` (one alert, or a digest). False: stop this chat's pass."""
        # The ledger: committed before Telegram hears anything (and before the rate-limit wait,
        # so the HTTP call follows its slot closely). Store work runs off the event loop: a slow
        # commit must not bunch other chats' sends together.
        claimed = await asyncio.to_thread(self._claim, [r.id for r in unit])
        if claimed is None:
            return True  # another dispatcher took them
        fresh, views = claimed
        buttons: tuple[Button, ...] = ()
        if len(fresh) == 1:
            html = render_alert(views[fresh[0].id])
            buttons = alert_buttons(fresh[0].alert_key)
        else:
            html = render_digest([views[r.id] for r in fresh])[0]
        ids = [r.id for r in fresh]
        note = None
        await self.limiter.acquire(chat_id)
        try:
            try:
                message_id = await self.sender.send_message(chat_id, html, buttons)
            except BadMarkup as exc:
                log.warning("chat %s refused the alert's HTML (%s); resending as plain text", chat_id, exc.reason)
                await self.limiter.acquire(chat_id)
                message_id = await _send_plain(self.sender, chat_id, html, buttons)
                note = f"sent as plain text: {exc.reason}"
                summary.plain += 1
        except DeliveryError as exc:
            if isinstance(exc, RetryLater):
                self.limiter.block(chat_id, exc.retry_after)
            return await asyncio.to_thread(self._failed_send, chat_id, fresh, exc, summary)
        await asyncio.to_thread(self._mark_sent, ids, message_id, note)
        summary.sent += len(ids)
        summary.messages += 1
        if chat is not None and chat.pins and len(fresh) == 1:
            await self._pin(chat_id, views[fresh[0].id])
        return True

    def _claim(self, ids: list[int]) -> tuple[list[OutboxRow], dict[int, AlertView]] | None:
        with self.store.begin() as conn:
            if ob.mark_sending(conn, ids, self.clock()) == 0:
                return None
            fresh = [r for r in ob.load_rows(conn, ids) if r.state is OutboxState.SENDING]
        return fresh, self._views(fresh)

    def _mark_sent(self, ids: list[int], message_id: int, note: str | None) -> None:
        with self.store.begin() as conn:
            ob.mark_sent(conn, ids, message_id, self.clock(), note)

    def _failed_send(
        self, chat_id: str, rows: Sequence[OutboxRow], exc: DeliveryError, summary: DispatchSummary,
    ) -> bool:
        """Record a refused send (runs in a worker thread); False: stop this chat's pass."""
        ids = [r.id for r in rows]
        now = self.clock()
        with self.store.begin() as conn:
            if isinstance(exc, RetryLater):
                ob.mark_retry(conn, ids, now + timedelta(seconds=exc.retry_after), exc.reason, now,
                              count_attempt=False)
                summary.retrying += 1
                log.warning("chat %s: flood wait %.0f s (%s)", chat_id, exc.retry_after, exc.reason)
                return False
            if isinstance(exc, ChatMoved):
                n = move_chat(conn, chat_id, exc.new_chat_id, now)
                summary.moved += n
                log.warning("chat %s became supergroup %s: %d alert(s) and its subscriptions moved",
                            chat_id, exc.new_chat_id, n)
                return False
            if isinstance(exc, ChatGone):
                n = pause_chat(conn, chat_id, exc.reason, now)
                summary.cancelled += n
                log.warning("chat %s paused, %d alert(s) cancelled: %s", chat_id, n, exc.reason)
                return False
            if isinstance(exc, Fatal):
                ob.mark_retry(conn, ids, now, exc.reason, now, count_attempt=False)
                raise exc
            attempts = max(r.attempts for r in rows)
            if isinstance(exc, Transient) and attempts < self.config.max_attempts:
                delay = self._backoff(attempts)
                ob.mark_retry(conn, ids, now + timedelta(seconds=delay), exc.reason, now)
                summary.retrying += 1
                log.info("chat %s: attempt %d failed (%s); retrying in %.1f s", chat_id, attempts, exc.reason,
                         delay)
                return False
            ob.mark_failed(conn, ids, exc.reason, now)
            summary.failed += len(ids)
            log.error("chat %s: alert(s) %s failed after %d attempt(s): %s", chat_id, ids, attempts, exc.reason)
            return True

    def _backoff(self, attempts: int) -> float:
        """Exponential with full jitter in its upper half: base·2^(n-1) · [0.5, 1)."""
        raw = min(self.backoff_cap, self.backoff_base * (2 ** max(attempts - 1, 0)))
        return raw * (0.5 + self.rng() / 2)

    async def _pin(self, chat_id: str, view: AlertView) -> None:
        place = primary_place(view.match)
        if place is None:
            return
        await self.limiter.acquire(chat_id)
        try:
            await self.sender.send_location(chat_id, place.lat, place.lon)
        except DeliveryError as exc:
            if isinstance(exc, RetryLater):
                self.limiter.block(chat_id, exc.retry_after)
            log.warning("chat %s: map pin not sent: %s", chat_id, exc.reason)

    # -- "Also: <outlet>" edits -------------------------------------------------------------------
    async def _edit(self, row: OutboxRow, summary: DispatchSummary) -> None:
        assert row.message_id is not None  # ob.edits_due: sent rows only
        message_id = row.message_id
        with self.store.connect() as conn:
            same = ob.in_message(conn, row.chat_id, message_id) or [row]
        views = self._views(same)
        buttons: tuple[Button, ...] = ()
        if len(same) == 1:
            html, buttons = render_alert(views[row.id]), alert_buttons(row.alert_key)
        else:
            rendered = render_digest([views[r.id] for r in same])
            if len(rendered) > 1:
                with self.store.begin() as conn:
                    ob.clear_edit(conn, row.id, self.clock(), "also-edit skipped: digest would not fit")
                return
            html = rendered[0]
        await self.limiter.acquire(row.chat_id)
        note: str | None = None
        try:
            await self.sender.edit_message(row.chat_id, message_id, html, buttons)
            summary.edited += 1
        except NotModified:
            pass
        except RetryLater as exc:
            self.limiter.block(row.chat_id, exc.retry_after)
            return  # stays flagged: next pass
        except Transient as exc:
            log.info("chat %s: edit of message %s postponed: %s", row.chat_id, message_id, exc.reason)
            return
        except ChatGone as exc:
            with self.store.begin() as conn:
                summary.cancelled += pause_chat(conn, row.chat_id, exc.reason, self.clock())
            note = f"edit not possible: {exc.reason}"
        except DeliveryError as exc:
            note = f"edit not possible: {exc.reason}"
        with self.store.begin() as conn:
            for r in same:
                ob.clear_edit(conn, r.id, self.clock(), note)

    # -- what an alert shows ----------------------------------------------------------------------
    def _views(self, rows: Sequence[OutboxRow]) -> dict[int, AlertView]:
        article_ids = {r.article_id for r in rows}
        match_ids = {r.match_id for r in rows if r.match_id is not None}
        with self.store.connect() as conn:
            arts = {a.id: a for a in conn.execute(select(articles).where(articles.c.id.in_(article_ids)))}
            evid = {m.id: m.evidence for m in conn.execute(
                select(matches.c.id, matches.c.evidence).where(matches.c.id.in_(match_ids)))} if match_ids else {}
        views: dict[int, AlertView] = {}
        for r in rows:
            art = arts.get(r.article_id)
            raw = evid.get(r.match_id) if r.match_id is not None else r.evidence
            match = _load_match(raw)
            kind, target = parse_alert_key(r.alert_key)
            is_rule = kind is SubscriptionKind.RULE
            label = r.label or (None if is_rule else target)
            views[r.id] = AlertView(
                title=art.title if art else "",
                url=art.url if art else "",
                outlet=(art.outlet or art.source) if art else None,
                published=art.published if art else None,
                language=art.language if art else None,
                rule_title=match.title if (match and is_rule) else None,
                severity=match.severity if match else None,
                label=None if is_rule else label,
                match=match,
                text=art.text if (art and match is None) else "",
                also=r.also,
                place_line=self._place_line(match),
            )
        return views

    def _place_line(self, match: Match | None) -> str | None:
        place = primary_place(match)
        if place is None or self.ruleset is None:
            return None  # the formatter computes one from the match's own places
        try:
            where = describe_position(place, self.ruleset)
        except Exception:  # a rules-side problem must not stop an alert
            return None
        return f"{place.name} — {where}" if where else place.name


def _load_match(raw: dict[str, Any] | str | None) -> Match | None:
    if not raw:
        return None
    try:
        return Match.from_json(raw)
    except (TypeError, ValueError, KeyError):
        return None


def _release_time(chat: Chat | None, now: datetime) -> datetime | None:
    return release_time(chat.prefs, now) if chat is not None else None


def _silenced(chat: Chat | None, now: datetime) -> bool:
    """Muted or in quiet hours right now: even a digest that is due waits (a dispatcher that was
    down when the quiet hours ended must not release it in the next night's quiet hours)."""
    if chat is None:
        return False
    if chat.muted_until and chat.muted_until > now:
        return True
    return in_quiet_hours(chat.prefs, now)


async def _send_plain(sender: Sender, chat_id: str, html: str, buttons: Sequence[Button]) -> int:
    return await sender.send_plain(chat_id, to_terminal(html, show_links=True), buttons)


async def _first_of(*events: asyncio.Event, within: float) -> None:
    """Return when any event is set, or after ``within`` seconds."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
